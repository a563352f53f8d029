"""Ticket events: their names (Chatwoot-style strings) and the one place that tells listeners about them.

Ticket creation, `states.transition` and the other ticket changes call `emit` inside their transaction; the
listeners (SLA clocks, assignment, notifications, CSAT, a channel's session state, ...) are registered by
`app.setup.setup()` only, never as a side effect of an import, so what runs does not depend on import order.
Listeners write rows (their own tables, the outbox); they commit or roll back with the change that caused them.

Each listener takes the event's keyword arguments and ignores the ones it does not need (`**_`):

    ticket.created          ticket, actor, decision (the routing Decision or None)
    ticket.status_changed   ticket, old, new, actor, reason
    ticket.updated          ticket, before, changed (field names), actor
    ticket.replied          ticket, message, actor
    ticket.customer_message ticket, message (after the closing hooks left it unconsumed)
    sla.warning             ticket, clock, due
    sla.breached            ticket, clock, due
    csat.submitted          ticket_id, rating (the TicketRating), replaced (the earlier score or None)
    approval.decided        ticket_id, approval (the ApprovalRequest), decision (approved | rejected), comment, actor
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

TICKET_CREATED = "ticket.created"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_ASSIGNED = "ticket.assigned"
TICKET_UPDATED = "ticket.updated"
TICKET_REPLIED = "ticket.replied"
TICKET_NOTE_ADDED = "ticket.note_added"
TICKET_MERGED = "ticket.merged"
CUSTOMER_MESSAGE = "ticket.customer_message"
SLA_BREACHED = "sla.breached"
SLA_WARNING = "sla.warning"
CSAT_SUBMITTED = "csat.submitted"
APPROVAL_DECIDED = "approval.decided"

#: the events `emit` accepts
NAMES = frozenset({TICKET_CREATED, TICKET_STATUS_CHANGED, TICKET_ASSIGNED, TICKET_UPDATED, TICKET_REPLIED,
                   TICKET_NOTE_ADDED, TICKET_MERGED, CUSTOMER_MESSAGE, SLA_BREACHED, SLA_WARNING, CSAT_SUBMITTED,
                   APPROVAL_DECIDED})

Listener = Callable[..., Awaitable[Any]]

_listeners: dict[str, list[Listener]] = {}


def listen(event: str, listener: Listener) -> None:
    """Call `listener` on every `event` (registration order is call order; registering twice is a no-op)."""
    if event not in NAMES:
        raise ValueError(f"unknown event {event!r}")
    chain = _listeners.setdefault(event, [])
    if listener not in chain:
        chain.append(listener)


def registered() -> dict[str, list[str]]:
    """Every event's listeners by qualified name, for tests and `gongdan doctor`-style output."""
    return {event: [f"{fn.__module__}.{fn.__qualname__}" for fn in chain] for event, chain in _listeners.items()}


def reset() -> None:
    """Forget every listener (setup() calls this before registering, so it can run again)."""
    _listeners.clear()


@contextmanager
def only(event: str, listener: Listener) -> Iterator[None]:
    """Inside the block `event` has just `listener` and nothing else listens (a benchmark measuring one listener);
    the wired table comes back afterwards, so the process it runs in is unchanged."""
    saved = {name: list(chain) for name, chain in _listeners.items()}
    _listeners.clear()
    _listeners[event] = [listener]
    try:
        yield
    finally:
        _listeners.clear()
        _listeners.update(saved)


async def emit(event: str, **payload: Any) -> None:
    """Run the listeners of `event`, in order, in the caller's transaction."""
    for listener in _listeners.get(event, ()):
        await listener(**payload)
