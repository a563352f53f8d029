"""What happens when a ticket changes: handlers named after events, run inside the change's transaction.

They only write rows (audit, outbox through app.notifications); delivery happens after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import events
from app.logs import get_logger
from app.notifications import service as notify
from app.notifications import staff as staff_cards

if TYPE_CHECKING:
    from app.conversations.models import Message
    from app.security.scope import Actor
    from app.tickets.models import Ticket

log = get_logger(__name__)


async def on_created(*, ticket: Ticket, actor: Actor) -> None:
    """Acknowledge the ticket to the customer (with its number) and tell the assignee."""
    log.info(events.TICKET_CREATED, ticket_id=ticket.id, number=ticket.number, actor=actor.kind)
    await notify.ticket_acknowledged(ticket=ticket)
    if ticket.assignee_id is not None:  # type: ignore[attr-defined]
        await staff_cards.ticket_assigned(ticket=ticket, actor_staff_id=actor.staff_id)
    from app.tickets import assignment, sla

    await sla.on_created(ticket=ticket)
    await assignment.on_created(ticket=ticket)


async def on_status_changed(*, ticket: Ticket, old: str, new: str, actor: Actor, reason: str) -> None:
    """Tell the customer about the moves they care about."""
    log.info(events.TICKET_STATUS_CHANGED, ticket_id=ticket.id, old=old, new=new, actor=actor.kind)
    if actor.kind != "customer":
        await notify.status_changed(ticket=ticket, old=old, new=new, reason=reason)
    from app.tickets import sla

    await sla.on_status_changed(ticket=ticket, old=old, new=new)
    if new == "closed":
        from app.channels.wecom_kf import state as kf_state  # closing the ticket ends the kf session

        await kf_state.ticket_closed(ticket=ticket)


async def on_updated(*, ticket: Ticket, before: Ticket, changed: set[str], actor: Actor) -> None:
    """Fields other than status changed (assignment, priority, group)."""
    log.info(events.TICKET_UPDATED, ticket_id=ticket.id, fields=sorted(changed), actor=actor.kind)
    if "assignee_id" in changed:
        await staff_cards.ticket_assigned(ticket=ticket, actor_staff_id=actor.staff_id)
        from app.channels.wecom_kf import state as kf_state  # a queued kf session goes to the assignee

        await kf_state.ticket_assigned(ticket=ticket)


async def on_replied(*, ticket: Ticket, message: Message, actor: Actor) -> None:
    """Send a staff reply to the customer's channel."""
    log.info(events.TICKET_REPLIED, ticket_id=ticket.id, message_id=message.id)
    await notify.staff_reply(ticket=ticket, message=message)
    from app.tickets import sla

    await sla.on_staff_reply(ticket_id=ticket.id)


async def on_customer_message(*, ticket: Ticket, message: Message) -> bool:
    """A customer's message joined a live or resolved ticket; True when a reply hook consumed it (1/2, codes)."""
    from app.tickets import closing, sla

    if await closing.on_customer_message(ticket=ticket, message=message):
        return True
    await sla.on_customer_message(ticket_id=ticket.id)
    await staff_cards.customer_message(ticket=ticket, message_id=message.id, text=message.text or "")
    return False
