"""The list's own statement (app.tickets.listing) shows exactly what the tortoise query and serializers.ticket show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.security.scope import Actor
from app.tickets import listing, ratings, serializers, service
from app.tickets.models import Ticket, TicketRating
from tests import factories

BASE = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
#: texts a statement returning JSON must carry through unchanged: quotes, backslashes, control characters, emoji
SUBJECTS = ["", 'a "quoted" \\ back\\slash', "换行\n和\t制表 😀", "<b>&amp;</b> '单引号'", "\u0000零"]


async def _tickets() -> dict[str, Any]:
    data = await factories.org()
    groups, people = data["groups"], data["people"]
    cust = await factories.customer()
    other = await factories.customer(name="另一位客户")
    statuses = ["new", "open", "pending", "resolved", "closed"]
    placements = [(groups["service"], people["agent"]), (groups["service"], None), (groups["tech"], people["agent"]),
                  (groups["tech"], people["tech"]), (None, None), (groups["aftersales"], people["lead"])]
    made = []
    for i in range(30):
        group, assignee = placements[i % len(placements)]
        # pairs of tickets share a moment (the order falls back to id) and every third moment has no fraction
        moment = BASE - timedelta(minutes=i // 2, microseconds=0 if i % 3 == 0 else 1000 * i + 7)
        due = None if i % 4 == 0 else moment + timedelta(hours=4, microseconds=i)
        ticket = await Ticket.create(
            number=f"GD-20261205-{i + 1:04d}", subject=SUBJECTS[i] if i < len(SUBJECTS)
            else f"退款没到账 13812345{i:03d}" if i % 5 == 0 else f"问题 {i}",
            status=statuses[i % len(statuses)], priority="high" if i % 2 else "normal", category="售后" * (i % 2),
            order_no=f"2026{i:06d}" if i % 3 else None, customer_id=(cust if i % 2 else other).id,
            group_id=group.id if group else None, assignee_id=assignee.id if assignee else None,
            tags=["退款", f't"{i}\\'] if i % 2 else [], last_activity_at=moment, first_response_due=due,
            next_response_due=None, resolution_due=due and due + timedelta(days=1))
        if i % 4 == 1:
            await TicketRating.create(ticket_id=ticket.id, score=1 + i % 5, source="h5_page", at=moment)
        made.append(ticket)
    return {**data, "customer": cust, "tickets": made}


async def _pages(actor: Actor, *, light: bool, **filters: Any) -> list[tuple[list[dict[str, Any]], str | None]]:
    """Every page of the list, 4 tickets at a time, as the API shows it."""
    pages = []
    cursor = None
    while True:
        page = await service.list_tickets(actor=actor, cursor=cursor, limit=4, light=light, **filters)
        if light:
            items = [serializers.list_item(t, actor=actor) for t in page.items]
        else:
            scores = await ratings.scores_for(ticket_ids=[t.id for t in page.items])
            items = [{**serializers.ticket(t, actor=actor), "rating": scores.get(t.id)} for t in page.items]
        pages.append((items, page.next_cursor))
        if page.next_cursor is None or len(pages) > 20:
            return pages
        cursor = page.next_cursor


async def test_light_pages_are_the_full_pages_for_every_actor_and_filter(db: None) -> None:
    data = await _tickets()
    groups, people = data["groups"], data["people"]
    nobody = Actor(kind="staff", staff_id=people["tech"].id, role="agent", group_ids=frozenset(), name="无组")
    actors = [await factories.actor(p) for p in people.values()] + [nobody]
    filter_sets: list[dict[str, Any]] = [
        {}, {"status": ["new", "open", "pending"]}, {"assignee_id": people["agent"].id},
        {"assignee_id": people["agent"].id, "status": ["new", "open", "pending"]},
        {"assignee_id": people["tech"].id}, {"group_id": groups["service"].id}, {"group_id": groups["tech"].id},
        {"unassigned": True}, {"customer_id": data["customer"].id, "status": ["closed"]}, {"text": "退款"},
    ]
    shown = 0
    for actor in actors:
        for filters in filter_sets:
            light = await _pages(actor, light=True, **filters)
            assert light == await _pages(actor, light=False, **filters), (actor.name, filters)
            shown += sum(len(items) for items, _ in light)
    # the comparison saw tickets, ratings and masked subjects, not only empty pages
    assert shown == 283
    every = [item for items, _ in await _pages(actors[0], light=True) for item in items]
    assert len(every) == 30 and {i["rating"] for i in every} == {None, 1, 2, 3, 4, 5}
    assert any("138****" in i["subject"] for i in every)
    assert any(i["last_activity_at"].endswith(":00+00:00") for i in every)


async def test_my_open_tickets_stay_in_scope_and_newest_first(db: None) -> None:
    data = await _tickets()
    agent = await factories.actor(data["people"]["agent"])
    page = await service.list_tickets(actor=agent, assignee_id=agent.staff_id, status=["new", "open", "pending"],
                                      light=True)
    expected = await Ticket.filter(assignee_id=agent.staff_id, status__in=["new", "open", "pending"]).order_by(
        "-last_activity_at", "-id").values_list("id", flat=True)
    assert [t.id for t in page.items] == list(expected) and len(expected) == 6
    # a ticket of another group assigned to the agent is in the agent's scope, and listed
    assert {t.group_id for t in page.items} == {data["groups"]["service"].id, data["groups"]["tech"].id}
    # another agent's tickets stay out of the agent's scope even when asked for by assignee
    theirs = await service.list_tickets(actor=agent, assignee_id=data["people"]["tech"].id, light=True)
    assert theirs.items == []


def test_my_open_tickets_statement_has_no_scope_condition_and_a_queue_outside_the_scope_keeps_it() -> None:
    agent = Actor(kind="staff", staff_id=7, role="agent", group_ids=frozenset({3}), name="lina")
    assert listing._scope_implied(agent, group_id=None, assignee_id=7)
    assert listing._scope_implied(agent, group_id=3, assignee_id=None)
    assert not listing._scope_implied(agent, group_id=4, assignee_id=None)
    assert not listing._scope_implied(agent, group_id=None, assignee_id=8)
    mine = listing.statement("mysql", (None, False, 3, False, True, False, False, False))
    assert mine.endswith(" WHERE t.`status` IN (%s,%s,%s) AND t.`assignee_id`=%s "
                         "ORDER BY t.`last_activity_at` DESC,t.`id` DESC LIMIT %s")
    queue = listing.statement("sqlite", (1, True, 0, True, False, False, False, True))
    assert ' WHERE (t."group_id" IN (?) OR t."assignee_id"=?) AND t."group_id"=? AND (t."last_activity_at"<? OR ' \
           '(t."last_activity_at"=? AND t."id"<?)) ORDER BY' in queue


@pytest.mark.parametrize("stored", ["2026-12-05 07:50:59.000000", "2026-12-05 07:50:59.000100",
                                    "2026-12-05 07:50:59.123456", "2026-12-05 07:50:59"])
def test_mysql_datetime_text_is_what_isoformat_gives(stored: str) -> None:
    assert listing._mysql_iso(stored) == datetime.fromisoformat(stored).replace(tzinfo=UTC).isoformat()


@pytest.mark.parametrize("stored", ["2026-12-05 07:50:59+00:00", "2026-12-05 15:50:59.000100+08:00",
                                    "2026-12-05 07:50:59.123456"])
def test_sqlite_datetime_text_is_read_as_tortoise_reads_it(stored: str) -> None:
    moment = datetime.fromisoformat(stored)
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert listing._sqlite_iso(stored) == utc.isoformat()
