"""WeCom's kf session state kept in step with ours, and the sending rules the desk knows before it calls.

会话状态 https://developer.work.weixin.qq.com/document/path/94669 and path/94698: 0 new, 1 智能助手 (our bot),
2 待接入池, 3 人工接待 (a servicer), 4 ended. The bot holds the session in 1; a hand-off puts it in 2, or in 3 with the
assignee's WeCom userid; closing the ticket ends it (4). Changes go out as outbox rows (kind
``kf_service_state``), written with their cause, and the adapter makes the call.

发送消息 path/94677: the API may send only in states 0 and 1, within 48 hours of the customer's last message and at
most 5 messages after it. ``check_send`` says beforehand whether a message can go out and, when not, what staff
should do instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.channels.models import ChannelAccount
from app.channels.wecom_kf.models import KfSession
from app.customers.models import CustomerIdentity
from app.outbox import service as outbox
from app.staff.models import Staff
from app.tickets.models import Ticket
from app.timeutil import utcnow

WINDOW = timedelta(hours=48)
MAX_SENDS = 5
#: the platform's refusals and what staff read (the same words as check_send)
REFUSALS = {
    95001: ("kf_quota_exceeded",
            "客户上次来信后已发送 5 条消息，需等客户再次发消息后才能继续发送；如需联系客户请致电。"),
    95002: ("kf_window_closed",
            "客户超过 48 小时没有发消息，微信客服已不能再发送；请等客户再次来信，或致电联系。"),
    95018: ("kf_state_forbids",
            "会话已由人工在企业微信客服中接待或已结束，接口不能发送；请在企业微信客服中直接回复客户。"),
}


@dataclass(frozen=True)
class SendCheck:
    ok: bool
    code: str = ""
    reason: str = ""


async def check_send(*, open_kfid: str, external_userid: str) -> SendCheck:
    """Whether a message to this customer can go out through the API now, and why not."""
    session = await KfSession.get_or_none(open_kfid=open_kfid, external_userid=external_userid)
    if session is None or session.last_customer_at is None or utcnow() - session.last_customer_at > WINDOW:
        code, reason = REFUSALS[95002]
        return SendCheck(ok=False, code=code, reason=reason)
    if session.service_state not in (0, 1):
        code, reason = REFUSALS[95018]
        return SendCheck(ok=False, code=code, reason=reason)
    if session.sent_since >= MAX_SENDS:
        code, reason = REFUSALS[95001]
        return SendCheck(ok=False, code=code, reason=reason)
    return SendCheck(ok=True)


async def _target(ticket: Ticket) -> tuple[ChannelAccount, str] | None:
    account_id = ticket.channel_account_id  # type: ignore[attr-defined]
    account = await ChannelAccount.get_or_none(id=account_id) if account_id else None
    if account is None or account.kind != "wecom_kf":
        return None
    identity = await CustomerIdentity.filter(customer_id=ticket.customer_id,  # type: ignore[attr-defined]
                                             kind="kf_external_userid", scope=account.key).first()
    return (account, identity.value) if identity else None


async def _state_row(*, account: ChannelAccount, external_userid: str, ticket: Ticket, state: int,
                     servicer_userid: str, key: str, text: str = "") -> None:
    payload: dict[str, object] = {"service_state": state, "servicer_userid": servicer_userid}
    if text:
        payload["text"] = text
    await outbox.create(channel="wecom_kf", kind="kf_service_state", recipient=external_userid, payload=payload,
                        channel_account_id=account.id, ticket_id=ticket.id,
                        dedupe_key=f"kfstate:{ticket.id}:{key}")


async def _servicer(ticket: Ticket) -> str:
    assignee_id = ticket.assignee_id  # type: ignore[attr-defined]
    staff = await Staff.get_or_none(id=assignee_id) if assignee_id else None
    return staff.userid if staff else ""


async def request_servicer(*, account: ChannelAccount, customer_id: int, ticket: Ticket, text: str = "") -> None:
    """The bot hands off: the session goes to the assignee (3) or, with nobody assigned, to the queue (2); `text`
    is said with the move (send_msg_on_event with the msg_code the move returns)."""
    target = await _target(ticket)
    if target is None:
        return
    servicer = await _servicer(ticket)
    await _state_row(account=target[0], external_userid=target[1], ticket=ticket, state=3 if servicer else 2,
                     servicer_userid=servicer, key="handoff", text=text)


async def ticket_assigned(*, ticket: Ticket) -> None:
    """A queued kf session goes to the ticket's new assignee."""
    target = await _target(ticket)
    servicer = await _servicer(ticket)
    if target is None or not servicer:
        return
    await _state_row(account=target[0], external_userid=target[1], ticket=ticket, state=3, servicer_userid=servicer,
                     key=f"assign:{servicer}:{ticket.version}")


async def ticket_closed(*, ticket: Ticket) -> None:
    """Closing the ticket ends the kf session (4)."""
    target = await _target(ticket)
    if target is None:
        return
    await _state_row(account=target[0], external_userid=target[1], ticket=ticket, state=4, servicer_userid="",
                     key=f"close:{ticket.version}")
