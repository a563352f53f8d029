"""The ticket state machine: the transition table and the only code that writes `Ticket.status`.

    new ──► open ──► pending (waiting for the customer) ──► open
     │        │  ╲                                           │
     │        │   ╲──► resolved ──► closed                   │
     │        ▼          │   ▲        │                      │
     └──────► resolved ◄─┘   └────────┴── reopen ──► open ◄──┘
    any live state ──► merged (terminal)

Every change carries the version the caller read; a stale version is refused with the current state
(VersionConflict → HTTP 409). Every change writes a TicketEvent (actor, old, new, reason) and runs the
`ticket.status_changed` listeners (app.events) in the same transaction, so its outbox rows commit with it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F

from app import events
from app.errors import InvalidTransition, NotFound, VersionConflict
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from app.uow import atomic

if TYPE_CHECKING:
    from app.security.scope import Actor


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"
    MERGED = "merged"


STATUS_LABELS = {
    Status.NEW: "新建",
    Status.OPEN: "处理中",
    Status.PENDING: "待客户回复",
    Status.RESOLVED: "已解决",
    Status.CLOSED: "已关闭",
    Status.MERGED: "已合并",
}

#: statuses in which the ticket is still being worked
LIVE = frozenset({Status.NEW, Status.OPEN, Status.PENDING})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED, Status.MERGED}),
    Status.OPEN: frozenset({Status.PENDING, Status.RESOLVED, Status.CLOSED, Status.MERGED}),
    Status.PENDING: frozenset({Status.OPEN, Status.RESOLVED, Status.CLOSED, Status.MERGED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.CLOSED, Status.MERGED}),
    Status.CLOSED: frozenset({Status.OPEN}),
    Status.MERGED: frozenset(),
}


def can_transition(old: str, new: str) -> bool:
    """Whether the table allows old → new."""
    try:
        return Status(new) in TRANSITIONS[Status(old)]
    except ValueError:
        return False


def _timestamps(new: Status, now: datetime) -> dict[str, Any]:
    if new == Status.RESOLVED:
        return {"resolved_at": now}
    if new == Status.CLOSED:
        return {"closed_at": now}
    if new == Status.OPEN:
        return {"resolved_at": None, "closed_at": None}
    return {}


async def transition(
    *,
    ticket_id: int,
    to: str,
    expected_version: int,
    actor: Actor,
    reason: str = "",
    merged_into_id: int | None = None,
) -> Ticket:
    """Move a ticket to `to` if the table allows it and nobody changed it since `expected_version`."""
    try:
        new = Status(to)
    except ValueError as exc:
        raise InvalidTransition(f"unknown status {to!r}", code="unknown_status") from exc
    async with atomic():
        current = await Ticket.get_or_none(id=ticket_id)
        if current is None:
            raise NotFound("ticket not found")
        if current.version != expected_version:
            raise _conflict(current)
        old = Status(current.status)
        if new == old:
            return current
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(
                f"a {old.value} ticket cannot become {new.value}",
                details={"status": old.value, "allowed": sorted(s.value for s in TRANSITIONS[old])},
            )
        now = utcnow()
        changes: dict[str, Any] = {"status": new.value, "version": F("version") + 1, "updated_at": now,
                                   **_timestamps(new, now)}
        if new == Status.MERGED:
            changes["merged_into_id"] = merged_into_id
        updated = await Ticket.filter(id=ticket_id, version=expected_version, status=old.value).update(**changes)
        if not updated:
            # a locking read sees the committed row, not this transaction's snapshot
            fresh = await Ticket.filter(id=ticket_id).select_for_update().get()
            raise _conflict(fresh)
        await TicketEvent.create(
            ticket_id=ticket_id,
            kind="status_changed",
            actor_kind=actor.kind,
            actor_id=actor.staff_id,
            old=old.value,
            new=new.value,
            reason=reason[:500],
            data={"merged_into": merged_into_id} if merged_into_id else {},
        )
        ticket = await Ticket.get(id=ticket_id)
        await events.emit(events.TICKET_STATUS_CHANGED, ticket=ticket, old=old.value, new=new.value, actor=actor,
                          reason=reason)
        return ticket


def _conflict(current: Ticket) -> VersionConflict:
    return VersionConflict(
        "工单已被他人修改，请刷新后重试",
        details={"current": {"version": current.version, "status": current.status,
                             "priority": current.priority, "assignee_id": current.assignee_id}},  # type: ignore[attr-defined]
    )


conflict = _conflict
