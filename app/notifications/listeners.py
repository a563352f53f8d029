"""Who is told about ticket events: listeners of app.events (registered by app.setup) over the notification writers.

Each writes outbox rows only, in the transaction of the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.notifications import service as notify
from app.notifications import staff as staff_cards

if TYPE_CHECKING:
    from app.conversations.models import Message
    from app.security.scope import Actor
    from app.tickets.models import Ticket


async def ticket_created(*, ticket: Ticket, actor: Actor, decision: Any = None,
                         customer_target: tuple[str, int, str] | None = None, **_: Any) -> None:
    """Acknowledge the ticket to the customer (with its number and, after hours, when we open), and tell a
    preset assignee (automatic assignment tells its own)."""
    if customer_target is not None:
        notify.remember_target(ticket, customer_target)
    await notify.ticket_acknowledged(ticket=ticket)
    if decision is not None and getattr(decision, "auto_reply", None):
        await notify.auto_reply(ticket=ticket, template=decision.auto_reply, group=decision.group)
    if ticket.assignee_id is not None:  # type: ignore[attr-defined]
        await staff_cards.ticket_assigned(ticket=ticket, actor_staff_id=actor.staff_id)


async def status_changed(*, ticket: Ticket, old: str, new: str, actor: Actor, reason: str, **_: Any) -> None:
    """Tell the customer about the moves they care about (a reopen too, whoever reopened)."""
    if actor.kind != "customer" or (new == "open" and old in ("resolved", "closed")):
        await notify.status_changed(ticket=ticket, old=old, new=new, reason=reason)


async def ticket_updated(*, ticket: Ticket, changed: set[str], actor: Actor, **_: Any) -> None:
    """A new assignee gets a card."""
    if "assignee_id" in changed:
        await staff_cards.ticket_assigned(ticket=ticket, actor_staff_id=actor.staff_id)


async def staff_replied(*, ticket: Ticket, message: Message, **_: Any) -> None:
    """A staff reply goes to the customer's channel."""
    await notify.staff_reply(ticket=ticket, message=message)


async def customer_wrote(*, ticket: Ticket, message: Message, **_: Any) -> None:
    """The assignee hears of the customer's message."""
    await staff_cards.customer_message(ticket=ticket, text=message.text or "")
