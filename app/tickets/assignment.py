"""Assignment inside a skill group: round robin, least open tickets, or by skill tags.

A group without GroupSettings is assigned by hand ("manual"). Only members who are active, on duty and under
their capacity (open tickets < Staff.capacity) are chosen. When nobody is available the ticket waits unassigned
in the group's queue; `assign_waiting` hands the queue out when someone comes on duty (the duty endpoint calls
it) and from a cron, which also empties the after-hours queue into the groups that have opened. The assignee is
told by a WeCom card (outbox: wecom_app / staff_card).
"""

from __future__ import annotations

from typing import Any

from tortoise.expressions import F
from tortoise.functions import Count

from app.logs import get_logger
from app.staff.models import SkillGroup, Staff
from app.tickets import calendar as bizcal
from app.tickets.models import GroupSettings, StaffSkills, Ticket, TicketEvent
from app.timeutil import utcnow
from app.uow import atomic

log = get_logger(__name__)

STRATEGIES = ("round_robin", "least_open", "skills", "manual")
LIVE = ("new", "open", "pending")


async def open_counts(*, staff_ids: list[int]) -> dict[int, int]:
    """Live tickets per staff member."""
    if not staff_ids:
        return {}
    rows = await Ticket.filter(assignee_id__in=staff_ids, status__in=LIVE).group_by("assignee_id").annotate(
        n=Count("id")).values_list("assignee_id", "n")
    return {int(a): int(n) for a, n in rows}


async def available(*, group_id: int) -> tuple[list[Staff], dict[int, int]]:
    """Members of the group who are active, on duty and under capacity (by id), with their open counts."""
    members = await Staff.filter(groups__id=group_id, status="active", on_duty=True).order_by("id")
    counts = await open_counts(staff_ids=[m.id for m in members])
    return [m for m in members if counts.get(m.id, 0) < m.capacity], counts


def _ticket_skills(ticket: Ticket) -> set[str]:
    skills = {str(t) for t in (ticket.tags or [])}
    if ticket.category:
        skills.add(ticket.category)
    return skills


async def choose(*, ticket: Ticket, group_id: int) -> Staff | None:
    """The member who should take the ticket under the group's strategy, or None (nobody available)."""
    settings = await GroupSettings.get_or_none(group_id=group_id)
    # a group nobody configured is worked by hand (tickets wait in its queue), as before this module existed
    strategy = settings.assignment if settings else "manual"
    if strategy == "manual":
        return None
    candidates, counts = await available(group_id=group_id)
    if not candidates:
        return None
    if strategy == "round_robin":
        last = settings.last_assignee_id if settings else None
        after = [m for m in candidates if last is not None and m.id > last]
        return (after or candidates)[0]
    if strategy == "skills":
        wanted = _ticket_skills(ticket)
        skills = {s.staff_id: set(s.tags or []) for s in  # type: ignore[attr-defined]
                  await StaffSkills.filter(staff_id__in=[m.id for m in candidates])}
        scored = sorted(candidates, key=lambda m: (-len(wanted & skills.get(m.id, set())), counts.get(m.id, 0), m.id))
        return scored[0]
    return min(candidates, key=lambda m: (counts.get(m.id, 0), m.id))


async def assign(*, ticket: Ticket) -> Staff | None:
    """Assign an unassigned ticket inside its group when someone is available (idempotent)."""
    if ticket.assignee_id is not None or ticket.group_id is None or ticket.status not in LIVE:  # type: ignore[attr-defined]
        return None
    if ticket.after_hours_until is not None and ticket.after_hours_until > utcnow():
        return None
    group_id: int = ticket.group_id  # type: ignore[attr-defined]
    async with atomic():
        staff = await choose(ticket=ticket, group_id=group_id)
        if staff is None:
            return None
        updated = await Ticket.filter(id=ticket.id, assignee_id=None, version=ticket.version).update(
            assignee_id=staff.id, version=F("version") + 1, updated_at=utcnow(), after_hours_until=None)
        if not updated:
            return None  # someone else assigned or changed it meanwhile
        ticket.assignee_id = staff.id  # type: ignore[attr-defined]
        ticket.version += 1
        ticket.after_hours_until = None
        await TicketEvent.create(ticket_id=ticket.id, kind="assigned", actor_kind="system", new=str(staff.id),
                                 reason="自动分配")
        await GroupSettings.update_or_create(group_id=group_id, defaults={"last_assignee_id": staff.id})
        from app.notifications import staff as staff_cards

        await staff_cards.ticket_assigned(ticket=ticket)
    log.info("ticket.auto_assigned", ticket_id=ticket.id, staff_id=staff.id)
    return staff


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
