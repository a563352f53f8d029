"""kf system events and the session bookkeeping of pulled messages (接收消息和事件
https://developer.work.weixin.qq.com/document/path/94670, event types per path/94699's list).

Each handler is idempotent: a replayed page handles an item again only if it was not remembered yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from app.channels.models import ChannelAccount
from app.channels.wecom_kf.models import KfSession
from app.conversations.models import Message
from app.customers import service as customers
from app.logs import get_logger
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.staff.models import Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow

log = get_logger(__name__)

WELCOME = "您好，我是智能客服。请直接描述您的问题；需要人工服务请回复“人工”。"
#: msg_send_fail fail_type (path/94670): what staff read on the failed row
FAIL_TYPES = {
    0: "未知原因", 1: "客服帐号已删除", 2: "应用已关闭", 4: "会话已过期，超过48小时", 5: "会话已关闭",
    6: "超过5条限制", 8: "主体未验证", 10: "用户拒收", 11: "企业未有成员登录企业微信App",
    12: "发送的消息为视频号商品卡片且过期",
}
#: session_status_change change_type -> (our state, whose userid is the servicer after it)
SESSION_CHANGES = {1: (3, "new"), 2: (3, "new"), 3: (4, ""), 4: (3, "new")}


def _when(item: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(item.get("send_time") or 0), UTC) if item.get("send_time") else utcnow()


async def session_of(*, open_kfid: str, external_userid: str) -> KfSession:
    """Our record of WeCom's session with a customer (state 4 = none yet)."""
    row, _ = await KfSession.get_or_create(open_kfid=open_kfid, external_userid=external_userid,
                                           defaults={"service_state": 4})
    return row


async def customer_wrote(*, account: ChannelAccount, item: dict[str, Any]) -> None:
    """A customer's message opens the 48-hour window again, and a new session after an ended one."""
    session = await session_of(open_kfid=account.key, external_userid=str(item.get("external_userid", "")))
    changes: dict[str, Any] = {"last_customer_at": _when(item), "sent_since": 0}
    if session.service_state == 4:
        changes.update(service_state=0, servicer_userid="")
    await KfSession.filter(id=session.id).update(**changes)


async def servicer_message(*, account: ChannelAccount, item: dict[str, Any]) -> None:
    """A servicer wrote in WeCom's own client (origin 5): it belongs in the ticket's transcript."""
    external_userid = str(item.get("external_userid", ""))
    customer = await customers.find_by_identity(kind="kf_external_userid", scope=account.key, value=external_userid)
    if customer is None:
        return
    ticket = await tickets.open_ticket_for_customer(customer_id=customer.id)
    staff = await Staff.get_or_none(userid=str(item.get("servicer_userid") or ""))
    body = item.get(str(item.get("msgtype"))) or {}
    await Message.get_or_create(
        channel_account_id=account.id, provider_msg_id=str(item.get("msgid")),
        defaults={"ticket_id": ticket.id if ticket else None, "customer_id": customer.id, "direction": "out",
                  "author_kind": "staff", "staff_id": staff.id if staff else None, "msg_type": "text",
                  "text": str(body.get("content", "")) if isinstance(body, dict) else "",
                  "data": {"origin": 5, "servicer_userid": item.get("servicer_userid", "")}})


async def handle_event(*, account: ChannelAccount, item: dict[str, Any]) -> None:
    """Dispatch a system event on its event_type (unknown types are logged and skipped)."""
    event = item.get("event") or {}
    handler = EVENT_HANDLERS.get(str(event.get("event_type", "")))
    if handler is None:
        log.info("wecom_kf.event_ignored", event_type=event.get("event_type"))
        return
    await handler(account, item, event)


async def enter_session(account: ChannelAccount, item: dict[str, Any], event: dict[str, Any]) -> None:
    """The customer opened the chat: greet them with the welcome_code (once per event)."""
    external_userid = str(event.get("external_userid") or item.get("external_userid") or "")
    await customers.resolve_identity(kind="kf_external_userid", scope=account.key, value=external_userid)
    code = str(event.get("welcome_code") or "")
    if not code:
        return
    text = str((account.config or {}).get("welcome") or WELCOME)
    await outbox.create(channel="wecom_kf", kind="kf_welcome", recipient=external_userid,
                        payload={"type": "text", "text": text, "welcome_code": code},
                        channel_account_id=account.id, dedupe_key=f"kf-welcome:{item.get('msgid')}")


async def msg_send_fail(account: ChannelAccount, item: dict[str, Any], event: dict[str, Any]) -> None:
    """WeCom could not deliver one of our messages: the outbox row fails with the reason."""
    msgid = str(event.get("fail_msgid") or "")
    reason = FAIL_TYPES.get(int(event.get("fail_type") or 0), "未知原因")
    rows = await OutboxMessage.filter(provider_msg_id=msgid)
    for row in rows:
        await OutboxMessage.filter(id=row.id).update(status="failed", last_error=f"微信客服发送失败：{reason}",
                                                     delivery_state=f"kf_send_fail:{event.get('fail_type')}")
        if row.ticket_id is not None:  # type: ignore[attr-defined]
            await TicketEvent.create(ticket_id=row.ticket_id, kind="delivery_failed",  # type: ignore[attr-defined]
                                     actor_kind="system", reason=f"微信客服发送失败：{reason}",
                                     data={"outbox_id": row.id})
    log.info("wecom_kf.send_failed", msgid=msgid, fail_type=event.get("fail_type"), rows=len(rows))


async def session_status_change(account: ChannelAccount, item: dict[str, Any], event: dict[str, Any]) -> None:
    """A servicer took, passed on or ended the session in WeCom's client: our records follow."""
    external_userid = str(event.get("external_userid") or item.get("external_userid") or "")
    state, who = SESSION_CHANGES.get(int(event.get("change_type") or 0), (None, ""))
    if state is None:
        return
    servicer = str(event.get("new_servicer_userid") or "") if who == "new" else ""
    session = await session_of(open_kfid=account.key, external_userid=external_userid)
    await KfSession.filter(id=session.id).update(service_state=state, servicer_userid=servicer)
    customer = await customers.find_by_identity(kind="kf_external_userid", scope=account.key, value=external_userid)
    ticket = await tickets.open_ticket_for_customer(customer_id=customer.id) if customer else None
    if ticket is None:
        return
    staff = await Staff.get_or_none(userid=servicer) if servicer else None
    if staff is not None and ticket.assignee_id != staff.id:  # type: ignore[attr-defined]
        await Ticket.filter(id=ticket.id).update(assignee_id=staff.id)
    await TicketEvent.create(ticket_id=ticket.id, kind="kf_session", actor_kind="system",
                             new=str(state), reason="微信客服会话在企业微信中变更",
                             data={"change_type": event.get("change_type"), "servicer_userid": servicer})


async def servicer_status_change(account: ChannelAccount, item: dict[str, Any], event: dict[str, Any]) -> None:
    """A servicer went on or off duty in WeCom's client (kept on the account for routing)."""
    config = dict(account.config or {})
    status = dict(config.get("servicer_status") or {})
    status[str(event.get("servicer_userid", ""))] = int(event.get("status") or 0)
    config["servicer_status"] = status
    await ChannelAccount.filter(id=account.id).update(config=config)


EventHandler = Callable[[ChannelAccount, dict[str, Any], dict[str, Any]], Awaitable[None]]
EVENT_HANDLERS: dict[str, EventHandler] = {
    "enter_session": enter_session,
    "msg_send_fail": msg_send_fail,
    "session_status_change": session_status_change,
    "servicer_status_change": servicer_status_change,
}
