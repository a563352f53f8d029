"""Closing with confirmation: a resolved ticket asks the customer to confirm, in the channel they wrote from.

The resolved notice (notifications' status_changed template) asks them to reply 1 to close or 2 if it is not
solved. A 1 closes the ticket, a 2 (or any other message) reopens it, and silence closes it after
AUTO_CLOSE_DAYS days (the `close_resolved_tick` cron). Other packages (approvals: refund confirmation codes) can
look at a customer's reply first through `REPLY_HOOKS`. A reopen tells the customer the ticket is handled again
(app.notifications.service.ticket_reopened).

Staff close in two steps: `require_close_confirmation` refuses a close that was not confirmed (the API answers 409
`confirmation_required` until the body carries `"confirm": true`, the H5 page shows a confirmation dialog first),
with a stronger warning for a ticket nobody has answered yet. The customer's confirmation stays the 1 / 2 reply.
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

#: the questions a staff close must confirm (API error message, H5 dialog)
CLOSE_WARNING = "确认关闭该工单吗？关闭后工单即结束，客户之后再来消息会登记为新工单。"
UNANSWERED_WARNING = "该工单还没有回复过客户，直接关闭后客户收不到任何处理结果。确定要关闭吗？"
#: what the API adds to the question
CONFIRM_HINT = "请确认后带上 confirm: true 重新提交。"

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
        # the reopen notice goes out from the status-change listener (notifications), as for every reopen
        await states.transition(ticket_id=ticket.id, to=states.Status.OPEN.value, expected_version=ticket.version,
                                actor=customer_actor(), reason="客户表示问题未解决")
        return True
    return False


class ConfirmationRequired(DomainError):
    """409: the change needs the caller's explicit confirmation (a staff close)."""

    status_code = 409
    code = "confirmation_required"


def close_warning(*, ticket: Ticket, to: str) -> tuple[str, str] | None:
    """(warning kind, question) a staff move of `ticket` to `to` must confirm, or None when it needs none."""
    if to != states.Status.CLOSED.value or ticket.status == states.Status.CLOSED.value:
        return None
    if ticket.first_responded_at is None:
        return "unanswered", UNANSWERED_WARNING
    return "close", CLOSE_WARNING


def require_close_confirmation(*, ticket: Ticket, to: str | None, confirmed: bool) -> None:
    """Refuse a staff close that was not confirmed (ConfirmationRequired, 409), with the question to ask."""
    warning = close_warning(ticket=ticket, to=to) if to else None
    if warning is None or confirmed:
        return
    kind, question = warning
    raise ConfirmationRequired(question + CONFIRM_HINT,
                               details={"warning": kind, "status": ticket.status, "confirm_field": "confirm"})


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
