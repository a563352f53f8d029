"""The ``wecom_kf`` adapter: messages through ``kf/send_msg`` with our outbox id as msgid, welcome messages
through ``kf/send_msg_on_event``, and session-state rows through ``kf/service_state/trans``.

发送消息 https://developer.work.weixin.qq.com/document/path/94677, 发送欢迎语等事件响应消息 path/95122, 分配客服会话
path/94669. A message that cannot go out (48 hours passed, 5 sent, a servicer holds the session) fails at once with
the reason staff read, before or after asking WeCom, and is never retried: retrying cannot open the window. The
msgid makes a repeated send harmless: WeCom refuses a msgid it has seen, and we count that as delivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise.expressions import F

from app.channels.base import DeliveryResult
from app.channels.models import ChannelAccount
from app.channels.wecom_kf import api, state
from app.channels.wecom_kf.models import KfSession
from app.errors import PermanentChannelError, TemporaryChannelError
from app.logs import get_logger
from app.tickets.models import TicketEvent
from app.wecom.errors import PermanentAPIError

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage

log = get_logger(__name__)


def msgid_for(row: OutboxMessage) -> str:
    """Our idempotency key for WeCom (≤32 of [0-9a-zA-Z_-])."""
    return f"gd{row.id}"


def render(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(msgtype, body) of a payload: text, menu (msgmenu) or image."""
    kind = payload.get("type", "text")
    if kind == "menu":
        items = [{"type": "click", "click": {"id": str(c["id"])[:128], "content": str(c["content"])[:128]}}
                 for c in payload.get("choices", [])]
        return "msgmenu", {"head_content": str(payload.get("head", "")), "list": items,
                           "tail_content": str(payload.get("tail", ""))}
    if kind == "image" and payload.get("media_id"):
        return "image", {"media_id": str(payload["media_id"])}
    return "text", {"content": str(payload.get("text", ""))[:2048]}


async def _earlier_messages_waiting(row: OutboxMessage) -> bool:
    """Messages to the same customer written before this state change and not delivered yet."""
    from app.outbox.models import OutboxMessage

    return await OutboxMessage.filter(channel="wecom_kf", recipient=row.recipient, id__lt=row.id,
                                      status__in=("pending", "sending")).exclude(kind="kf_service_state").exists()


def _duplicate(exc: PermanentAPIError) -> bool:
    return exc.errcode == 40058 and "msgid" in exc.errmsg and "dup" in exc.errmsg


class WeComKfAdapter:
    kind = "wecom_kf"
    #: the msgid (our outbox id) makes WeCom refuse a repeat, so a timed-out send is simply retried
    resend_safe = True

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        account_id = message.channel_account_id  # type: ignore[attr-defined]
        account = await ChannelAccount.get_or_none(id=account_id) if account_id is not None else None
        if account is None or not message.recipient:
            raise PermanentChannelError("这条微信客服消息没有账号或收件人", code="no_recipient")
        if message.kind == "kf_service_state":
            return await self._trans(account, message)
        msgtype, body = render(message.payload)
        msgid = msgid_for(message)
        if message.payload.get("welcome_code"):
            try:
                await api.send_msg_on_event(code=str(message.payload["welcome_code"]), msgid=msgid,
                                            msgtype=msgtype, content=body)
            except PermanentAPIError as exc:
                if _duplicate(exc):
                    return DeliveryResult(provider_msg_id=msgid, detail={"duplicate": True})
                raise
            return DeliveryResult(provider_msg_id=msgid, detail={"sent_as": "on_event"})
        check = await state.check_send(open_kfid=account.key, external_userid=message.recipient)
        if not check.ok:
            await _tell_staff(message, check.reason, check.code)
            raise PermanentChannelError(check.reason, code=check.code)
        if message.payload.get("author") == "bot":
            await _bot_holds(account, message.recipient)
        try:
            result = await api.send_msg(open_kfid=account.key, touser=message.recipient, msgid=msgid,
                                        msgtype=msgtype, content=body)
        except PermanentAPIError as exc:
            if _duplicate(exc):
                return DeliveryResult(provider_msg_id=msgid, detail={"duplicate": True})
            if exc.errcode in state.REFUSALS:
                code, reason = state.REFUSALS[exc.errcode]
                await _tell_staff(message, reason, code)
                raise PermanentChannelError(reason, code=code) from exc
            raise
        await KfSession.filter(open_kfid=account.key, external_userid=message.recipient).update(
            sent_since=F("sent_since") + 1)
        return DeliveryResult(provider_msg_id=str(result.get("msgid") or msgid), detail={"sent_as": msgtype})

    async def _trans(self, account: ChannelAccount, message: OutboxMessage) -> DeliveryResult:
        want = int(message.payload.get("service_state", 0))
        if want not in (0, 1) and await _earlier_messages_waiting(message):
            # once a servicer or the end holds the session, kf/send_msg is refused: what was said before the move
            # (the resolved notice, the rating question written with the close) goes out first
            raise TemporaryChannelError("等待之前的消息发出后再转移会话")
        servicer = str(message.payload.get("servicer_userid") or "")
        current = await api.get_state(open_kfid=account.key, external_userid=message.recipient)
        if int(current.get("service_state", -1)) == want and str(current.get("servicer_userid") or "") == servicer:
            return DeliveryResult(detail={"unchanged": True})
        try:
            moved = await api.trans_state(open_kfid=account.key, external_userid=message.recipient,
                                          service_state=want, servicer_userid=servicer)
        except PermanentAPIError as exc:
            if exc.errcode == 95016:
                # WeCom's session moved on meanwhile (ended by the customer, taken in the client): keep its word
                fresh = await api.get_state(open_kfid=account.key, external_userid=message.recipient)
                await _record_state(account, message.recipient, fresh)
                return DeliveryResult(detail={"refused": 95016, "state": fresh.get("service_state")})
            raise
        await _record_state(account, message.recipient, {"service_state": want, "servicer_userid": servicer})
        text = str(message.payload.get("text") or "")
        if text and moved.get("msg_code"):
            try:
                await api.send_msg_on_event(code=str(moved["msg_code"]), msgid=msgid_for(message), msgtype="text",
                                            content={"content": text})
            except PermanentAPIError as exc:
                # the move happened; a lost courtesy line is not worth failing (and repeating) the move for
                log.info("wecom_kf.move_text_refused", outbox_id=message.id, errcode=exc.errcode)
        return DeliveryResult(detail={"service_state": want})


async def _record_state(account: ChannelAccount, external_userid: str, values: dict[str, Any]) -> None:
    await KfSession.filter(open_kfid=account.key, external_userid=external_userid).update(
        service_state=int(values.get("service_state", 0)), servicer_userid=str(values.get("servicer_userid") or ""))


async def _bot_holds(account: ChannelAccount, external_userid: str) -> None:
    """A new session (0) goes to the bot (1) before the bot speaks in it."""
    session = await KfSession.get_or_none(open_kfid=account.key, external_userid=external_userid)
    if session is None or session.service_state != 0:
        return
    try:
        await api.trans_state(open_kfid=account.key, external_userid=external_userid, service_state=1)
    except PermanentAPIError as exc:
        if exc.errcode != 95016:
            raise
    await KfSession.filter(id=session.id).update(service_state=1)


async def _tell_staff(message: OutboxMessage, reason: str, code: str) -> None:
    """A reply that cannot go out is written on the ticket, in words staff can act on."""
    ticket_id = message.ticket_id  # type: ignore[attr-defined]
    if ticket_id is None:
        return
    await TicketEvent.create(ticket_id=ticket_id, kind="delivery_failed", actor_kind="system", reason=reason,
                             data={"outbox_id": message.id, "code": code})
    log.info("wecom_kf.blocked", outbox_id=message.id, code=code)
