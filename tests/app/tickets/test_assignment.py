"""Assignment inside a group: strategies, duty and capacity, waiting queue, after-hours queue."""

from __future__ import annotations

import re
from typing import Any

from app.staff.models import Staff
from app.tickets import assignment
from app.tickets.models import GroupSettings, StaffSkills, Ticket, TicketEvent
from tests.app.tickets.sla_helpers import Clock, cn, tech_org, ticket
from tests.sqlcount import count_statements


async def assignee(t: Ticket) -> str | None:
    fresh = await Ticket.get(id=t.id).prefetch_related("assignee")
    return fresh.assignee.userid if fresh.assignee else None


async def test_unconfigured_group_is_worked_by_hand(db: None) -> None:
    org = await tech_org()
    assert await assignee(await ticket(group=org["group"])) is None


async def test_least_open_picks_the_member_with_fewest_live_tickets(db: None) -> None:
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="least_open")
    people = org["people"]
    await ticket(group=org["group"], assignee=people["chenjing"])
    assert await assignee(await ticket(group=org["group"])) == "xiaoli"
    assert await assignee(await ticket(group=org["group"])) == "chenjing"  # 1 each: lowest id wins
    event = await TicketEvent.filter(kind="assigned", actor_kind="system").order_by("-id").first()
    assert event is not None and event.reason == "自动分配"


async def test_round_robin_takes_turns(db: None) -> None:
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="round_robin")
    got = [await assignee(await ticket(group=org["group"])) for _ in range(4)]
    assert got == ["chenjing", "xiaoli", "chenjing", "xiaoli"]


async def test_skills_match_ticket_tags_and_category(db: None) -> None:
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="skills")
    await StaffSkills.create(staff=org["people"]["xiaoli"], tags=["数据库", "故障"])
    t = await ticket(group=org["group"])
    assert await assignee(t) == "chenjing"  # no skills asked: the fewest open tickets, lowest id
    t2 = await Ticket.create(number="X-1", subject="数据库挂了", customer_id=t.customer_id,  # type: ignore[attr-defined]
                             group=org["group"], category="故障", tags=["数据库"], last_activity_at=t.last_activity_at)
    assert (await assignment.assign(ticket=t2)) == org["people"]["xiaoli"].id
    assert await assignee(t2) == "xiaoli"


async def test_choosing_reads_of_the_members_only_their_ids_and_capacities(db: None) -> None:
    # every new ticket in an automatic group reads its members: their whole staff rows cost more to parse than the
    # round trip, and choosing needs two columns
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="least_open")
    t = await ticket(group=org["group"], assignee=org["people"]["chenjing"])
    await Ticket.filter(id=t.id).update(assignee_id=None)
    t = await Ticket.get(id=t.id)
    with count_statements() as statements:
        assert await assignment.assign(ticket=t) == org["people"]["chenjing"].id
    members = [s for s in statements if "skill_group_member" in s]
    assert len(members) == 1, statements
    assert re.match(r'SELECT s\.[`"]id[`"],s\.[`"]capacity[`"] FROM ', members[0]), members


async def test_nobody_on_duty_or_under_capacity_waits_then_coming_on_duty_takes_the_queue(db: None) -> None:
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="least_open")
    people = org["people"]
    await Staff.filter(id=people["chenjing"].id).update(on_duty=False)
    await Staff.filter(id=people["xiaoli"].id).update(capacity=1)
    first = await ticket(group=org["group"])
    waiting = [await ticket(group=org["group"]) for _ in range(2)]
    assert await assignee(first) == "xiaoli"
    assert [await assignee(t) for t in waiting] == [None, None]
    assert await assignment.set_on_duty(staff_id=people["chenjing"].id, on_duty=True) == 2
    assert [await assignee(t) for t in waiting] == ["chenjing", "chenjing"]


async def test_after_hours_queue_is_emptied_when_the_group_opens(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 20, 0))  # the evening before National Day
    org = await tech_org()
    await GroupSettings.create(group=org["group"], assignment="least_open")
    t = await ticket(group=org["group"])
    await Ticket.filter(id=t.id).update(assignee_id=None, after_hours_until=cn(2025, 10, 9, 9, 0))
    clock.to(cn(2025, 10, 8, 9, 0))
    assert await assignment.release_after_hours() == 0
    clock.to(cn(2025, 10, 9, 9, 0))
    assert await assignment.release_after_hours() == 1
    fresh = await Ticket.get(id=t.id)
    assert fresh.after_hours_until is None and fresh.assignee_id is not None  # type: ignore[attr-defined]
    assert await TicketEvent.filter(ticket_id=t.id, kind="queue_released").count() == 1


async def test_a_strategy_stored_through_the_sla_document_applies_to_the_next_ticket_at_once(db: None) -> None:
    from app.tickets import sla_config

    org = await tech_org()
    assert await assignee(await ticket(group=org["group"])) is None  # manual, and now cached
    document = await sla_config.export()
    document["groups"][org["group"].name] = {**document["groups"].get(org["group"].name, {}),
                                             "assignment": "least_open"}
    await sla_config.store(document=sla_config.parse_document(document))
    assert await assignee(await ticket(group=org["group"])) == "chenjing"


async def test_a_strategy_changed_by_another_process_applies_once_the_cache_is_old(db: None,
                                                                                   monkeypatch: Any) -> None:
    org = await tech_org()
    now = [1000.0]
    monkeypatch.setattr(assignment._strategies, "clock", lambda: now[0])
    first = await ticket(group=org["group"])
    assert await assignee(first) is None
    await GroupSettings.create(group=org["group"], assignment="round_robin")  # as another process would
    waiting = await ticket(group=org["group"])
    assert await assignee(waiting) is None  # this process still holds "manual"
    now[0] += assignment.CACHE_SECONDS
    assert await assignee(await ticket(group=org["group"])) == "chenjing"
    assert await assignment.assignment_tick({}) == 2  # the cron hands out what waited meanwhile, oldest first
    assert [await assignee(first), await assignee(waiting)] == ["xiaoli", "chenjing"]
