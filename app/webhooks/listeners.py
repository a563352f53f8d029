"""Ticket events as webhook events: each listener writes one delivery (and outbox row) per active subscription,
in the transaction of the change. Registered by ``app.setup``.

    ticket.created                                -> ticket.created
    ticket.updated                                -> ticket.updated
    ticket.status_changed                         -> ticket.status_changed
    ticket.replied, ticket.customer_message       -> message.created
    sla.warning, sla.breached                     -> the same names (the clock and its due time)
    csat.submitted                                -> csat.submitted (score, comment, the score it replaced)
    approval.decided                              -> approval.decided (kind, decision, comment)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.conversations.models import Message
from app.security.pii import mask_text
from app.security.scope import SYSTEM, Actor
from app.tickets import serializers
from app.tickets.models import Ticket
from app.webhooks import service


def _actor(actor: Actor | None) -> dict[str, Any]:
    if actor is None:
        return {"kind": "system", "staff_id": None}
    return {"kind": actor.kind, "staff_id": actor.staff_id}


async def _publish(event: str, ticket: Ticket, **data: Any) -> None:
    if not await service.wants(event):
        return
    body = {"ticket": serializers.ticket(ticket, actor=SYSTEM), **data}
    await service.publish(event=event, data=body, ticket_id=ticket.id)


async def ticket_created(*, ticket: Ticket, actor: Actor | None = None, **_: Any) -> None:
    """ticket.created."""
    await _publish("ticket.created", ticket, actor=_actor(actor))


async def ticket_updated(*, ticket: Ticket, changed: set[str] | None = None, actor: Actor | None = None,
                         **_: Any) -> None:
    """ticket.updated, naming the changed fields."""
    await _publish("ticket.updated", ticket, changed=sorted(changed or ()), actor=_actor(actor))


async def status_changed(*, ticket: Ticket, old: str, new: str, actor: Actor | None = None, reason: str = "",
                         **_: Any) -> None:
    """ticket.status_changed with the old and new status."""
    await _publish("ticket.status_changed", ticket, old=old, new=new, reason=reason, actor=_actor(actor))


async def staff_replied(*, ticket: Ticket, message: Message, actor: Actor | None = None, **_: Any) -> None:
    """message.created for a staff reply."""
    await _publish("message.created", ticket, message=serializers.message(message, actor=SYSTEM),
                   actor=_actor(actor))


async def customer_message(*, ticket: Ticket, message: Message, **_: Any) -> None:
    """message.created for a customer's message on a ticket."""
    await _publish("message.created", ticket, message=serializers.message(message, actor=SYSTEM),
                   actor={"kind": "customer", "staff_id": None})


async def sla_warning(*, ticket: Ticket, clock: str, due: datetime, **_: Any) -> None:
    """sla.warning: a clock is about to run out."""
    await _publish("sla.warning", ticket, clock=clock, due=due.isoformat())


async def sla_breached(*, ticket: Ticket, clock: str, due: datetime, **_: Any) -> None:
    """sla.breached: a clock ran out."""
    await _publish("sla.breached", ticket, clock=clock, due=due.isoformat())


async def csat_submitted(*, ticket_id: int, rating: Any, replaced: int | None = None, **_: Any) -> None:
    """csat.submitted: the customer rated the ticket (the comment masked)."""
    if not await service.wants("csat.submitted"):
        return
    ticket = await Ticket.get(id=ticket_id)
    await _publish("csat.submitted", ticket, rating={
        "score": rating.score, "comment": mask_text(rating.comment or ""), "source": rating.source,
        "replaced": replaced})


async def approval_decided(*, ticket_id: int, approval: Any, decision: str, comment: str = "",
                           actor: Actor | None = None, **_: Any) -> None:
    """approval.decided: an escalation approval was approved or rejected."""
    if not await service.wants("approval.decided"):
        return
    ticket = await Ticket.get(id=ticket_id)
    await _publish("approval.decided", ticket, approval={
        "id": approval.id, "kind": approval.kind, "decision": decision, "comment": mask_text(comment)},
        actor=_actor(actor))
