"""Closing with confirmation: a resolved ticket asks the customer to confirm, in the channel they wrote from.

The resolved notice (notifications' status_changed template) asks them to reply 1 to close or 2 if it is not
solved. A 1 closes the ticket, a 2 (or any other message) reopens it, and silence closes it after
AUTO_CLOSE_DAYS days (the `close_resolved_tick` cron). Other packages (approvals: refund confirmation codes) can
look at a customer's reply first through `REPLY_HOOKS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.errors import DomainError
from app.logs import get_logger
from app.security.scope import SYSTEM, customer_actor
from app.settings import get_settings
from app.tickets import states
from app.tickets.models import Ticket
from app.timeutil import utcnow

if TYPE_CHECKING:
    from app.conversations.models import Message

log = get_logger(__name__)

CONFIRM = frozenset({"1", "１"})
NOT_SOLVED = frozenset({"2", "２"})

#: hooks that see a customer's reply on a ticket first; True means "consumed, do nothing else with it"
ReplyHook = Callable[[Ticket, "Message"], Awaitable[bool]]
REPLY_HOOKS: list[ReplyHook] = []


def register_reply_hook(hook: ReplyHook) -> None:
    """Let a package look at customers' replies on tickets (once per hook)."""
    if hook not in REPLY_HOOKS:
        REPLY_HOOKS.append(hook)


async def on_customer_message(*, ticket: Ticket, message: Message) -> bool:
    """Handle 1 / 2 on a resolved ticket (and the registered hooks); True when the message was consumed."""
    for hook in REPLY_HOOKS:
        if await hook(ticket, message):
            return True
    if ticket.status != states.Status.RESOLVED:
        return False
    text = (message.text or "").strip()
    if text in CONFIRM:
        await states.transition(ticket_id=ticket.id, to=states.Status.CLOSED.value, expected_version=ticket.version,
                                actor=customer_actor(), reason="客户确认已解决")
        return True
    if text in NOT_SOLVED:
        await states.transition(ticket_id=ticket.id, to=states.Status.OPEN.value, expected_version=ticket.version,
                                actor=customer_actor(), reason="客户表示问题未解决")
        return True
    return False


async def close_silent(*, now: datetime | None = None, limit: int = 500) -> int:
    """Close resolved tickets whose customer stayed silent for AUTO_CLOSE_DAYS; returns how many."""
    now = now or utcnow()
    days = get_settings().workflow.auto_close_days
    rows = await Ticket.filter(status=states.Status.RESOLVED.value, resolved_at__lte=now - timedelta(days=days)
                               ).order_by("resolved_at").limit(limit).values_list("id", "version")
    closed = 0
    for ticket_id, version in rows:
        try:
            await states.transition(ticket_id=int(ticket_id), to=states.Status.CLOSED.value,
                                    expected_version=int(version), actor=SYSTEM,
                                    reason=f"客户 {days} 天未回复，自动关闭")
            closed += 1
        except DomainError:
            # the customer or an agent moved it meanwhile: their change wins
            log.info("closing.skipped", ticket_id=ticket_id)
    return closed


async def close_resolved_tick(ctx: dict[str, Any]) -> int:
    """Cron job: close silent resolved tickets."""
    return await close_silent()
