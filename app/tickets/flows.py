"""What happens when a ticket changes: handlers named after events, run inside the change's transaction.

They only write rows (audit, outbox through app.notifications); delivery happens after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import events
from app.logs import get_logger
from app.notifications import service as notify

if TYPE_CHECKING:
    from app.conversations.models import Message
    from app.security.scope import Actor
    from app.tickets.models import Ticket

log = get_logger(__name__)


async def on_created(*, ticket: Ticket, actor: Actor) -> None:
    """Acknowledge the ticket to the customer (with its number) and tell the assignee."""
    log.info(events.TICKET_CREATED, ticket_id=ticket.id, number=ticket.number, actor=actor.kind)
    await notify.ticket_acknowledged(ticket=ticket)


async def on_status_changed(*, ticket: Ticket, old: str, new: str, actor: Actor, reason: str) -> None:
    """Tell the customer about the moves they care about."""
    log.info(events.TICKET_STATUS_CHANGED, ticket_id=ticket.id, old=old, new=new, actor=actor.kind)
    if actor.kind != "customer":
        await notify.status_changed(ticket=ticket, old=old, new=new, reason=reason)


async def on_updated(*, ticket: Ticket, before: Ticket, changed: set[str], actor: Actor) -> None:
    """Fields other than status changed (assignment, priority, group)."""
    log.info(events.TICKET_UPDATED, ticket_id=ticket.id, fields=sorted(changed), actor=actor.kind)


async def on_replied(*, ticket: Ticket, message: Message, actor: Actor) -> None:
    """Send a staff reply to the customer's channel."""
    log.info(events.TICKET_REPLIED, ticket_id=ticket.id, message_id=message.id)
    await notify.staff_reply(ticket=ticket, message=message)
