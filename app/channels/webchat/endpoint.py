"""The widget's WebSocket, ``/webchat/ws?site=KEY``: JSON frames both ways.

From the widget: ``hello`` {visitor, last_id, name, contact} first, then ``message`` {text, client_id},
``profile`` {name, contact} (the pre-chat form), ``typing``, ``read`` {id}, ``offline`` {name, contact, text},
``verify_start`` {contact} and ``verify_code`` {code} (``verify``: a proven e-mail or mobile number makes the
returning customer).
To the widget: ``welcome`` {visitor, online, opens_at, site, bot, verify_sms}, the missed ``message``s,
``ack`` {client_id, id}, ``leave_message`` {client_id, text, opens_at} (nobody on duty and the bot would hand
off: the message is not kept and the 留言 form is offered, prefilled with ``text``; ``afterhours``), ``profile_ok``,
the staff read mark ``read`` {who, id}, live ``message``/``typing``/``read`` events from the hub, ``verify_sent``
{to, by: email|phone}, ``verify_ok`` (then the customer's conversation again), ``offline_ok``
{ticket, opens_at} and ``error`` {code, message} (Chinese, shown to the visitor).
A socket whose Origin is not on the site's allow-list, or for an unknown site, is refused before it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import datetime
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.channels.webchat import accounts, afterhours, live, verify, visitors
from app.channels.webchat.hub import hub, topic
from app.channels.webchat.outbound import message_event
from app.channels.webchat.service import limits as site_limits
from app.conversations.models import Message
from app.customers import service as customers
from app.customers.models import Customer
from app.errors import DomainError, ValidationFailed
from app.logs import get_logger
from app.security.tokens import detokenise
from app.staff.models import Staff
from app.tickets import calendar
from app.timeutil import local, utcnow

log = get_logger(__name__)

KIND = accounts.KIND
#: the most missed messages one re-sync sends
RESYNC_LIMIT = 200
#: the least seconds between two typing events of one socket passed on
TYPING_EVERY = 1.0
PHONE = visitors.PHONE
EMAIL = visitors.EMAIL
ERRORS = {
    "rate_limited": "发送太频繁，请稍后再试",
    "too_long": f"消息太长，请控制在 {visitors.MAX_CHARS} 字以内",
    "empty": "请输入内容",
    "bad_contact": "请填写正确的手机号或邮箱",
    "bad_frame": "无法识别的消息",
    "hello_first": "连接尚未就绪，请刷新页面",
    "failed": "消息未能提交，请稍后再试",
    **verify.ERRORS,
}


async def opening(account: ChannelAccount) -> tuple[bool, datetime | None]:
    """Whether someone is on duty now for the site, else when the site's calendar opens next (None: unknown)."""
    cal = await calendar.for_group(group_id=(account.config or {}).get("group_id"))
    now = utcnow()
    if not cal.is_open(now):
        try:
            return False, cal.next_open(now)
        except ValidationFailed:  # a calendar with no working time ahead: closed, opening unknown
            return False, None
    if await Staff.filter(status="active", on_duty=True).exists():
        return True, None
    return False, None


def describe_opening(at: datetime | None) -> str | None:
    """``12月7日 09:00`` in China time, the form the widget shows."""
    if at is None:
        return None
    t = local(at)
    return f"{t.month}月{t.day}日 {t:%H:%M}"


async def save_contact(*, customer: Customer, contact: str) -> bool:
    """Record a phone or e-mail the visitor typed (unverified); False when it is neither."""
    contact = contact.strip()
    if not contact:
        return True
    if EMAIL.match(contact):
        await customers.set_contact(customer=customer, email=contact.lower())
        return True
    if PHONE.match(contact):
        await customers.set_contact(customer=customer, phone=re.sub(r"[\s\-]", "", contact))
        return True
    return False


async def missed(*, account: ChannelAccount, customer: Customer, after: int) -> list[dict[str, object]]:
    """The visitor's stored messages on this site after message id ``after`` (staff notes never)."""
    rows = await Message.filter(customer_id=customer.id, channel_account_id=account.id, id__gt=after,
                                direction__in=("in", "out")).order_by("-id").limit(RESYNC_LIMIT)
    # the newest ones when more were missed than one re-sync sends (the widget shows a conversation's end)
    return [message_event(m, text=await detokenise(m.text)) for m in reversed(rows)]


class Session:
    """One socket of one visitor."""

    def __init__(self, ws: WebSocket, account: ChannelAccount) -> None:
        self.ws = ws
        self.account = account
        self.ip = ws.client.host if ws.client else "?"
        self.visitor_id = ""
        self.customer: Customer | None = None
        #: the hub queue of this visitor's live events (subscribed before the re-sync reads, so nothing falls between)
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.topic = ""
        self._typing_at = 0.0
        self.challenge: verify.Challenge | None = None

    async def error(self, code: str, message: str | None = None) -> None:
        await self.ws.send_json({"type": "error", "code": code, "message": message or ERRORS[code]})

    async def hello(self, frame: dict[str, Any]) -> None:
        token = str(frame.get("visitor") or "")
        vid = visitors.verify(token) if token else None
        if vid is None:
            vid, token = visitors.new_visitor()
        self.visitor_id = vid
        name = str(frame.get("name") or "").strip()[:64]
        self.customer = await customers.resolve_identity(kind="visitor", scope=self.account.key, value=vid,
                                                         name=name)
        if not await save_contact(customer=self.customer, contact=str(frame.get("contact") or "")[:128]):
            await self.error("bad_contact")
        self.topic = topic(account_id=self.account.id, visitor_id=vid)
        await hub.start()
        self.queue = hub.subscribe(self.topic)
        online, opens = await opening(self.account)
        await self.ws.send_json({"type": "welcome", "visitor": token, "online": online,
                                 "opens_at": describe_opening(opens), "site": self.account.name,
                                 "bot": await afterhours.bot_on(self.account), "verify_sms": verify.sms_available()})
        try:
            last = max(0, int(frame.get("last_id") or 0))
        except (TypeError, ValueError):
            last = 0
        for event in await missed(account=self.account, customer=self.customer, after=last):
            await self.ws.send_json(event)
        await self.send_read_mark()

    async def send_read_mark(self) -> None:
        """How far staff have read (the widget marks its messages 已读 up to it)."""
        mark = (await live.read_state(account=self.account, visitor_id=self.visitor_id)).get("staff")
        if mark:
            await self.ws.send_json({"type": "read", "who": "staff", "id": mark})

    async def _text(self, frame: dict[str, Any]) -> str | None:
        """The frame's text, or None after telling the visitor why it cannot be taken (empty, too long)."""
        text = str(frame.get("text") or "").strip()
        if not text:
            await self.error("empty")
            return None
        max_chars = site_limits(self.account).max_chars
        if len(text) > max_chars:
            await self.error("too_long", f"消息太长，请控制在 {max_chars} 字以内")
            return None
        return text

    def _limited(self) -> bool:
        # the site's own limits (set in the console), else the defaults
        lim = site_limits(self.account)
        return not (visitors.visitor_limiter.allow(f"{self.account.id}:{self.visitor_id}", limit=lim.per_visitor)
                    and visitors.ip_limiter.allow(self.ip, limit=lim.per_ip))

    async def message(self, frame: dict[str, Any]) -> None:
        from app import intake

        assert self.customer is not None
        text = await self._text(frame)
        if text is None:
            return
        if self._limited():
            await self.error("rate_limited")
            return
        client_id = str(frame.get("client_id") or "")[:40]
        inbound = InboundMessage(
            channel=KIND, channel_account_id=self.account.id, sender_kind="visitor", sender_id=self.visitor_id,
            msg_type="text", provider_msg_id=f"{self.visitor_id}:{client_id}" if client_id else None,
            created_at=utcnow(), text=text)
        outcome: intake.Outcome | None = None
        if await afterhours.bot_on(self.account):
            online, opens = await opening(self.account)
            if not online:  # the bot answers around the clock; what would go to a person becomes a 留言
                result = await afterhours.receive(inbound=inbound, account=self.account, customer=self.customer,
                                                  max_chars=site_limits(self.account).max_chars)
                if isinstance(result, afterhours.LeaveMessage):
                    await self.ws.send_json({"type": "leave_message", "client_id": client_id,
                                             "text": result.text, "opens_at": describe_opening(opens)})
                    return
                outcome = result
        if outcome is None:
            outcome = await intake.receive(inbound=inbound, account=self.account, customer=self.customer)
        if outcome.message is not None:
            await self.ws.send_json({"type": "ack", "client_id": client_id, "id": outcome.message.id})
            if not outcome.duplicate:
                await live.visitor_message(account=self.account, visitor_id=self.visitor_id, message=outcome.message)

    async def profile(self, frame: dict[str, Any]) -> None:
        """The pre-chat form sent after the socket opened: the name and contact join the customer."""
        assert self.customer is not None
        if not await save_contact(customer=self.customer, contact=str(frame.get("contact") or "")[:128]):
            await self.error("bad_contact")
            return
        name = str(frame.get("name") or "").strip()[:64]
        if name and not self.customer.name:
            await Customer.filter(id=self.customer.id).update(name=name)
            self.customer.name = name
        await self.ws.send_json({"type": "profile_ok"})

    async def offline(self, frame: dict[str, Any]) -> None:
        from app import intake

        assert self.customer is not None
        text = await self._text(frame)
        if text is None:
            return
        contact = str(frame.get("contact") or "")[:128]
        if not contact.strip() or not await save_contact(customer=self.customer, contact=contact):
            await self.error("bad_contact")
            return
        if self._limited():
            await self.error("rate_limited")
            return
        name = str(frame.get("name") or "").strip()[:64]
        if name and not self.customer.name:
            await Customer.filter(id=self.customer.id).update(name=name)
        phone = re.sub(r"[\s\-]", "", contact) if PHONE.match(contact.strip()) else None
        ticket = await intake.customer_ticket(customer=self.customer, account=self.account,
                                              subject=text.replace("\n", " ")[:60], description=text, phone=phone,
                                              via="webchat")
        _, opens = await opening(self.account)
        await self.ws.send_json({"type": "offline_ok", "ticket": ticket.number,
                                 "opens_at": describe_opening(opens)})

    async def relay(self, frame: dict[str, Any]) -> None:
        """Typing and read state go to the staff side."""
        assert self.customer is not None
        if frame["type"] == "typing":
            now = time.monotonic()
            if now - self._typing_at < TYPING_EVERY:  # the widget sends one per 3 s; more is noise on the hub
                return
            self._typing_at = now
            await live.visitor_typing(account=self.account, visitor_id=self.visitor_id)
            return
        try:
            mark = int(frame.get("id") or 0)
        except (TypeError, ValueError):
            return
        await live.visitor_read(account=self.account, visitor_id=self.visitor_id, customer_id=self.customer.id,
                                message_id=mark)

    async def verify_start(self, frame: dict[str, Any]) -> None:
        """Send a code to the e-mail address or mobile number the visitor gave."""
        try:
            self.challenge, masked = await verify.start(
                site=self.account, visitor_key=f"{self.account.id}:{self.visitor_id}", ip=self.ip,
                contact=str(frame.get("contact") or ""))
        except verify.VerifyError as exc:
            await self.error(exc.code)
            return
        await self.ws.send_json({"type": "verify_sent", "to": masked, "by": self.challenge.kind})

    async def verify_code(self, frame: dict[str, Any]) -> None:
        """The code came back: the visitor is the customer holding the address, with their earlier conversation."""
        assert self.customer is not None
        try:
            self.customer = await verify.check(challenge=self.challenge, code=str(frame.get("code") or "")[:12],
                                               customer=self.customer)
        except verify.VerifyError as exc:
            await self.error(exc.code)
            return
        self.challenge = None
        await self.ws.send_json({"type": "verify_ok"})
        for event in await missed(account=self.account, customer=self.customer, after=0):
            await self.ws.send_json(event)
        await self.send_read_mark()

    async def handle(self, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "hello" and self.customer is None:
            await self.hello(frame)
        elif self.customer is None:
            await self.error("hello_first")
        elif kind == "message":
            await self.message(frame)
        elif kind == "offline":
            await self.offline(frame)
        elif kind == "profile":
            await self.profile(frame)
        elif kind in ("typing", "read"):
            await self.relay(frame)
        elif kind == "verify_start":
            await self.verify_start(frame)
        elif kind == "verify_code":
            await self.verify_code(frame)
        else:
            await self.error("bad_frame")


async def _push(ws: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await ws.send_json(await queue.get())


async def webchat_ws(ws: WebSocket) -> None:
    """The widget's socket: refused for an unknown site or a foreign Origin."""
    account = await accounts.site(ws.query_params.get("site", ""))
    if account is None or not accounts.origin_allowed(account, ws.headers.get("origin")):
        await ws.close(code=1008)
        return
    await ws.accept()
    session = Session(ws, account)
    pusher: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                frame = await ws.receive_json()
            except (ValueError, KeyError):
                await session.error("bad_frame")
                continue
            try:
                await session.handle(frame)
            except DomainError as exc:  # a refused change is the visitor's error, not the socket's end
                log.info("webchat.refused", site=account.key, code=getattr(exc, "code", ""))
                await session.error("failed")
            if pusher is None and session.queue is not None:
                pusher = asyncio.create_task(_push(ws, session.queue))
    except WebSocketDisconnect:
        pass
    finally:
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pusher
        if session.queue is not None:
            hub.unsubscribe(session.topic, session.queue)


routes: list[BaseRoute] = [WebSocketRoute("/webchat/ws", webchat_ws)]
