"""What the ticket domain itself does when a ticket changes: listeners of app.events (registered by app.setup) and
the customer-message step that lets the closing hooks consume a reply first.

Listeners run inside the change's transaction and only write rows (their tables, the outbox through notifications).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app import events
from app.tickets import assignment, closing, sla

if TYPE_CHECKING:
    from app.conversations.models import Message
    from app.tickets.models import Ticket


async def on_customer_message(*, ticket: Ticket, message: Message) -> bool:
    """A customer's message joined a ticket; True when a closing hook consumed it (1/2, a confirmation code)."""
    if await closing.on_customer_message(ticket=ticket, message=message):
        return True
    await events.emit(events.CUSTOMER_MESSAGE, ticket=ticket, message=message)
    return False


async def start_sla(*, ticket: Ticket, decision: Any = None, **_: Any) -> None:
    """ticket.created: start the clocks of the routed policy (or the best matching one)."""
    await sla.on_created(ticket=ticket)


async def auto_assign(*, ticket: Ticket, **_: Any) -> None:
    """ticket.created: assign inside the group unless someone holds it or it is parked after hours."""
    await assignment.on_created(ticket=ticket)


async def sla_on_status(*, ticket: Ticket, old: str, new: str, **_: Any) -> None:
    """ticket.status_changed: pause, resume, stop or restart the clocks."""
    await sla.on_status_changed(ticket=ticket, old=old, new=new)


async def sla_on_reply(*, ticket: Ticket, **_: Any) -> None:
    """ticket.replied: a staff reply meets the response clocks."""
    await sla.on_staff_reply(ticket_id=ticket.id)


async def sla_on_customer_message(*, ticket: Ticket, **_: Any) -> None:
    """ticket.customer_message: the next-response clock starts."""
    await sla.on_customer_message(ticket_id=ticket.id, ticket=ticket)
