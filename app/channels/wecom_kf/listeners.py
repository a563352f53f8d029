"""The kf session state follows the ticket: listeners of app.events, registered by app.setup.

By default the desk is the receptionist: WeCom's session stays with the API (state 0/1), so the bot and the agents
answering in Gongdan can send (kf/send_msg is refused in states 2 and 3, 发送消息 path/94677). An account whose
config says ``{"transfer_to_servicer": true}`` hands the session to WeCom's own kf client instead: the bot's
hand-off moves it to the queue (2) or the assignee (3), and a new assignee takes it (3). Closing the ticket ends
the session (4) either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.channels.models import ChannelAccount
from app.channels.wecom_kf import state as kf_state

if TYPE_CHECKING:
    from app.tickets.models import Ticket

def transfers(account: ChannelAccount) -> bool:
    """Whether this kf account hands sessions to WeCom's own kf client (state 3) instead of keeping them."""
    return bool((account.config or {}).get("transfer_to_servicer"))


async def _kf_account(ticket: Ticket) -> ChannelAccount | None:
    account_id = ticket.channel_account_id  # type: ignore[attr-defined]
    if account_id is None:
        return None
    account = await ChannelAccount.get_or_none(id=account_id)
    return account if account is not None and account.kind == "wecom_kf" else None


async def ticket_created(*, ticket: Ticket, record: dict[str, Any] | None = None, **_: Any) -> None:
    """A bot hand-off on an account that transfers: the session goes to the queue or the assignee."""
    if not str((record or {}).get("reason", "")).startswith("bot:"):
        return
    account = await _kf_account(ticket)
    if account is None or not transfers(account):
        return
    # the bot has said it is handing over (its message goes out before the move: see the adapter's ordering)
    await kf_state.request_servicer(account=account, customer_id=ticket.customer_id,  # type: ignore[attr-defined]
                                    ticket=ticket)


async def ticket_updated(*, ticket: Ticket, changed: set[str], **_: Any) -> None:
    """A new assignee takes a transferred session."""
    if "assignee_id" not in changed:
        return
    account = await _kf_account(ticket)
    if account is not None and transfers(account):
        await kf_state.ticket_assigned(ticket=ticket)


async def status_changed(*, ticket: Ticket, new: str, **_: Any) -> None:
    """Closing the ticket ends the kf session."""
    if new == "closed" and ticket.channel_account_id is not None:  # type: ignore[attr-defined]
        await kf_state.ticket_closed(ticket=ticket)
