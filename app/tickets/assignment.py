"""Assignment inside a skill group: round robin, least open tickets, or by skill tags.

A group without GroupSettings is assigned by hand ("manual"). Only members who are active, on duty and under
their capacity (open tickets < Staff.capacity) are chosen. When nobody is available the ticket waits unassigned
in the group's queue; `assign_waiting` hands the queue out when someone comes on duty (the duty endpoint calls
it) and from a cron, which also empties the after-hours queue into the groups that have opened. The assignee is
told by a WeCom card (outbox: wecom_app / staff_card).
"""

from __future__ import annotations

from typing import Any

from app.db import dialect_sql
from app.logs import get_logger
from app.staff.models import SkillGroup, Staff
from app.tickets import calendar as bizcal
from app.tickets.models import GroupSettings, StaffSkills, Ticket, TicketEvent
from app.timeutil import utcnow
from app.ttl import Expiring
from app.uow import joined

log = get_logger(__name__)

STRATEGIES = ("round_robin", "least_open", "skills", "manual")
LIVE = ("new", "open", "pending")


#: the reads of every automatic assignment (each new ticket in a group): SQL written once (`app.db.dialect_sql`), as
#: tortoise's query building cost more CPU than the round trips; of the members only what choosing needs (a whole
#: staff row's columns cost more to parse than the round trip)
_LAST = "SELECT {q}last_assignee_id{q} FROM {q}group_settings{q} WHERE {q}group_id{q}={m} LIMIT 1"
_OPEN_COUNTS = ("SELECT {q}assignee_id{q},COUNT({q}id{q}) {q}n{q} FROM {q}ticket{q} "
                "WHERE {q}assignee_id{q} IN ({marks}) AND {q}status{q} IN ("
                + ",".join(f"'{s}'" for s in LIVE) + ") GROUP BY {q}assignee_id{q}")
_MEMBERS = ("SELECT s.{q}id{q},s.{q}capacity{q} FROM {q}staff{q} s JOIN {q}skill_group_member{q} g "
            "ON g.{q}staff_id{q}=s.{q}id{q} WHERE g.{q}skill_group_id{q}={m} AND s.{q}status{q}='active' "
            "AND s.{q}on_duty{q}=1 ORDER BY s.{q}id{q}")
#: and its writes
_ASSIGN = ("UPDATE {q}ticket{q} SET {q}assignee_id{q}={m},{q}version{q}={q}version{q}+1,{q}updated_at{q}={m},"
           "{q}after_hours_until{q}=NULL WHERE {q}id{q}={m} AND {q}assignee_id{q} IS NULL AND {q}version{q}={m}")
_ASSIGNED_EVENT = ("INSERT INTO {q}ticket_event{q} ({q}ticket_id{q},{q}kind{q},{q}actor_kind{q},{q}new{q},{q}reason{q},"
                   "{q}data{q},{q}created_at{q}) VALUES ({m},'assigned','system',{m},'自动分配',{m},{m})")
_LAST_ASSIGNEE = "UPDATE {q}group_settings{q} SET {q}last_assignee_id{q}={m} WHERE {q}group_id{q}={m}"


#: group id -> strategy of every configured group: read again after CACHE_SECONDS (as the routing rules are), so a
#: new ticket in a group worked by hand costs no read; a strategy changed in another process holds here for that
#: long, and a ticket it left waiting is handed out by `assignment_tick`
CACHE_SECONDS = 5.0
_strategies: Expiring[dict[int, str]] = Expiring(CACHE_SECONDS)


def invalidate() -> None:
    """Forget the cached strategies (after the SLA document is stored; other processes within CACHE_SECONDS)."""
    _strategies.clear()


async def strategy(*, group_id: int) -> str:
    """The group's assignment strategy: "manual" for a group nobody configured."""
    known = _strategies.get()
    if known is None:
        rows = await GroupSettings.all().values_list("group_id", "assignment")
        known = _strategies.put({int(gid): str(kind) for gid, kind in rows})  # type: ignore[misc]
    return known.get(group_id, "manual")


async def open_counts(*, staff_ids: list[int]) -> dict[int, int]:
    """Live tickets per staff member."""
    if not staff_ids:
        return {}
    conn: Any = Ticket._meta.db
    marks = ",".join("{m}" for _ in staff_ids)
    rows = await conn.execute_query_dict(dialect_sql(_OPEN_COUNTS.replace("{marks}", marks), conn.capabilities.dialect),
                                         list(staff_ids))
    return {int(r["assignee_id"]): int(r["n"]) for r in rows}


async def available(*, group_id: int) -> tuple[list[int], dict[int, int]]:
    """Ids of the group's members who are active, on duty and under capacity (ascending), with their open counts."""
    conn: Any = Staff._meta.db
    members = [(int(r["id"]), int(r["capacity"])) for r in
               await conn.execute_query_dict(dialect_sql(_MEMBERS, conn.capabilities.dialect), [group_id])]
    counts = await open_counts(staff_ids=[staff_id for staff_id, _ in members])
    return [staff_id for staff_id, capacity in members if counts.get(staff_id, 0) < capacity], counts


def _ticket_skills(ticket: Ticket) -> set[str]:
    skills = {str(t) for t in (ticket.tags or [])}
    if ticket.category:
        skills.add(ticket.category)
    return skills


async def choose(*, ticket: Ticket, group_id: int) -> int | None:
    """The id of the member who should take the ticket under the group's strategy, or None (nobody available)."""
    # a group nobody configured is worked by hand (tickets wait in its queue), as before this module existed
    kind = await strategy(group_id=group_id)
    if kind == "manual":
        return None
    candidates, counts = await available(group_id=group_id)
    if not candidates:
        return None
    if kind == "round_robin":
        conn: Any = GroupSettings._meta.db
        found = await conn.execute_query_dict(dialect_sql(_LAST, conn.capabilities.dialect), [group_id])
        last = found[0]["last_assignee_id"] if found else None
        after = [staff_id for staff_id in candidates if last is not None and staff_id > last]
        return (after or candidates)[0]
    if kind == "skills":
        wanted = _ticket_skills(ticket)
        skills = {s.staff_id: set(s.tags or []) for s in  # type: ignore[attr-defined]
                  await StaffSkills.filter(staff_id__in=candidates)}
        return sorted(candidates, key=lambda i: (-len(wanted & skills.get(i, set())), counts.get(i, 0), i))[0]
    return min(candidates, key=lambda i: (counts.get(i, 0), i))


async def assign(*, ticket: Ticket) -> int | None:
    """Assign an unassigned ticket inside its group when someone is available (idempotent): the assignee's id."""
    if ticket.assignee_id is not None or ticket.group_id is None or ticket.status not in LIVE:  # type: ignore[attr-defined]
        return None
    if ticket.after_hours_until is not None and ticket.after_hours_until > utcnow():
        return None
    group_id: int = ticket.group_id  # type: ignore[attr-defined]
    # inside a new ticket's transaction no savepoint: nothing here is caught and retried, so a failure fails the
    # caller's whole transaction either way (the savepoint cost two round trips on every routed ticket)
    async with joined():
        staff_id = await choose(ticket=ticket, group_id=group_id)
        if staff_id is None:
            return None
        conn: Any = Ticket._meta.db
        dialect = conn.capabilities.dialect
        now = Ticket._meta.fields_map["updated_at"].to_db_value(utcnow(), Ticket)
        updated, _ = await conn.execute_query(dialect_sql(_ASSIGN, dialect), [staff_id, now, ticket.id, ticket.version])
        if not updated:
            return None  # someone else assigned or changed it meanwhile
        ticket.assignee_id = staff_id  # type: ignore[attr-defined]
        ticket.version += 1
        ticket.after_hours_until = None
        await conn.execute_query(dialect_sql(_ASSIGNED_EVENT, dialect), [
            ticket.id, str(staff_id), TicketEvent._meta.fields_map["data"].to_db_value({}, TicketEvent),
            TicketEvent._meta.fields_map["created_at"].to_db_value(utcnow(), TicketEvent)])
        # the group has a settings row (its strategy is not "manual"), unless it was deleted since the cache was read
        moved, _ = await conn.execute_query(dialect_sql(_LAST_ASSIGNEE, dialect), [staff_id, group_id])
        if not moved:
            await GroupSettings.update_or_create(group_id=group_id, defaults={"last_assignee_id": staff_id})
        from app.notifications import staff as staff_cards

        await staff_cards.ticket_assigned(ticket=ticket)
    log.info("ticket.auto_assigned", ticket_id=ticket.id, staff_id=staff_id)
    return staff_id


async def on_created(*, ticket: Ticket) -> None:
    """Assign a new ticket that has a group and no assignee."""
    await assign(ticket=ticket)


async def assign_waiting(*, group_id: int | None = None, limit: int = 200) -> int:
    """Hand out waiting tickets (oldest first) to available members; returns how many were assigned."""
    query = Ticket.filter(assignee_id=None, status__in=LIVE, group_id__not_isnull=True)
    if group_id is not None:
        query = query.filter(group_id=group_id)
    now = utcnow()
    assigned = 0
    full: set[int] = set()
    for ticket in await query.order_by("id").limit(limit):
        gid: int = ticket.group_id  # type: ignore[attr-defined]
        if gid in full or (ticket.after_hours_until is not None and ticket.after_hours_until > now):
            continue
        if await assign(ticket=ticket):
            assigned += 1
        else:
            full.add(gid)
    return assigned


async def release_after_hours(*, now: Any = None) -> int:
    """Empty the after-hours queue into the groups that have opened; returns how many tickets left it."""
    now = now or utcnow()
    ids = await Ticket.filter(after_hours_until__lte=now).order_by("after_hours_until").limit(1000).values_list(
        "id", flat=True)
    for ticket_id in ids:
        ticket = await Ticket.get(id=ticket_id)
        cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
        if not cal.is_open(now):
            await Ticket.filter(id=ticket.id).update(after_hours_until=cal.next_open(now))
            continue
        await Ticket.filter(id=ticket.id).update(after_hours_until=None)
        ticket.after_hours_until = None
        await TicketEvent.create(ticket_id=ticket.id, kind="queue_released", actor_kind="system",
                                 reason="技能组已开始工作，离开非工作时间队列")
        await assign(ticket=ticket)
    return len(ids)


async def set_on_duty(*, staff_id: int, on_duty: bool) -> int:
    """Put a member on or off duty; coming on duty takes waiting tickets of their groups. Returns how many."""
    await Staff.filter(id=staff_id).update(on_duty=on_duty)
    if not on_duty:
        return 0
    total = 0
    for gid in await SkillGroup.filter(members__id=staff_id).values_list("id", flat=True):
        total += await assign_waiting(group_id=int(gid))  # type: ignore[call-overload]
    return total


async def assignment_tick(ctx: dict[str, Any]) -> int:
    """Cron job: release the after-hours queue, then hand out waiting tickets."""
    released = await release_after_hours()
    return released + await assign_waiting()
