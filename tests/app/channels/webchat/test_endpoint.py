"""The widget's WebSocket: messages through intake, staff replies live, re-sync, origins and limits."""

from __future__ import annotations

import pytest

from app.channels.base import get_adapter
from app.channels.models import ChannelAccount
from app.channels.webchat import accounts, visitors
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.errors import ConfigError
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from tests.app.channels.webchat.conftest import Desk, Refused, Socket


async def test_the_adapter_and_the_route_are_registered() -> None:
    from app.channels.endpoints import routes

    assert get_adapter("webchat") is not None
    assert "/webchat/ws" in {getattr(r, "path", "") for r in routes}


async def test_a_visitor_message_becomes_a_ticket_and_the_staff_reply_arrives_live(desk: Desk, at_work: None) -> None:
    ws = await desk.socket()
    welcome = await ws.hello(name="王女士", contact="13800138000")
    assert (welcome["online"], welcome["opens_at"], welcome["site"]) == (True, None, "示例商城")
    vid = visitors.verify(welcome["visitor"])
    assert vid is not None

    await ws.send({"type": "message", "text": "打印机故障，需要报修", "client_id": "c1"})
    ack = await ws.receive_until("ack")
    await desk.jobs.drain()

    ticket = await Ticket.get()
    message = await Message.get(id=ack["id"])
    assert (ack["client_id"], message.ticket_id, message.direction) == ("c1", ticket.id, "in")  # type: ignore[attr-defined]
    identity = await CustomerIdentity.get(kind="visitor", scope="shop")
    assert (identity.value, identity.customer_id) == (vid, ticket.customer_id)  # type: ignore[attr-defined]
    assert message.provider_msg_id == f"{vid}:c1"

    reply = await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，已安排工程师上门。")
    await desk.jobs.drain()
    live = await ws.receive_until("message")
    while live["text"] != "您好，已安排工程师上门。":  # the acknowledgement of the new ticket comes first
        live = await ws.receive_until("message")
    assert (live["id"], live["direction"]) == (reply.id, "out")
    row = await OutboxMessage.filter(channel="webchat", ticket_id=ticket.id, payload__isnull=False,
                                  provider_msg_id__isnull=False, recipient=vid, status="sent").order_by(
        "-id").first()
    assert row is not None and row.provider_msg_id == f"webchat:{row.id}"
    await ws.close()


async def test_a_resent_message_is_stored_once(desk: Desk, at_work: None) -> None:
    ws = await desk.socket()
    await ws.hello()
    for _ in range(2):
        await ws.send({"type": "message", "text": "在吗", "client_id": "same"})
        await ws.receive_until("ack")
    assert await Message.filter(direction="in").count() == 1
    await ws.close()


async def test_a_reconnecting_widget_gets_what_it_missed_and_stays_the_same_customer(desk: Desk,
                                                                                    at_work: None) -> None:
    ws = await desk.socket()
    welcome = await ws.hello()
    await ws.send({"type": "message", "text": "我要投诉，发货太慢", "client_id": "c1"})
    seen = (await ws.receive_until("ack"))["id"]
    await desk.jobs.drain()
    await ws.close()

    ticket = await Ticket.get()
    reply = await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="抱歉，今天一定发出。")
    await desk.jobs.drain()

    again = await desk.socket()
    await again.hello(visitor=welcome["visitor"], last_id=seen)
    missed = [await again.receive_until("message")]
    while missed[-1]["id"] != reply.id:
        missed.append(await again.receive_until("message"))
    assert [m["id"] for m in missed] == sorted(m["id"] for m in missed)
    assert all(m["id"] > seen for m in missed)
    assert missed[-1]["id"] == reply.id
    assert missed[-1]["text"] == "抱歉，今天一定发出。"
    assert await CustomerIdentity.filter(kind="visitor").count() == 1
    await again.close()


async def test_a_forged_visitor_token_gets_a_new_visitor(desk: Desk, at_work: None) -> None:
    ws = await desk.socket()
    welcome = await ws.hello(visitor="abc.forged")
    assert visitors.verify(welcome["visitor"]) is not None
    assert visitors.verify("abc.forged") is None
    await ws.close()


async def test_a_socket_from_another_origin_or_site_is_refused(desk: Desk) -> None:
    for kwargs in ({"origin": "https://evil.example.com"}, {"origin": None}, {"site": "nope"}):
        with pytest.raises(Refused):
            await desk.socket(**kwargs)  # type: ignore[arg-type]
    assert await Message.all().count() == 0


async def test_rate_limits_and_the_size_limit_refuse_and_store_nothing(desk: Desk, at_work: None) -> None:
    ws = await desk.socket()
    await ws.hello()
    await ws.send({"type": "message", "text": "长" * (visitors.MAX_CHARS + 1)})
    assert (await ws.receive_until("error"))["code"] == "too_long"
    for i in range(visitors.PER_VISITOR):
        await ws.send({"type": "message", "text": f"第{i}条", "client_id": f"c{i}"})
        await ws.receive_until("ack")
    await ws.send({"type": "message", "text": "再来一条", "client_id": "over"})
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == ("rate_limited", "发送太频繁，请稍后再试")
    assert await Message.filter(direction="in").count() == visitors.PER_VISITOR
    await ws.close()


async def test_the_per_ip_limit_covers_many_visitors(desk: Desk, at_work: None) -> None:
    sockets: list[Socket] = []
    sent = 0
    while sent < visitors.PER_IP:
        ws = await desk.socket(ip="198.51.100.7")
        sockets.append(ws)
        await ws.hello()
        for _ in range(min(visitors.PER_VISITOR, visitors.PER_IP - sent)):
            await ws.send({"type": "message", "text": "你好", "client_id": f"c{sent}"})
            await ws.receive_until("ack")
            sent += 1
    fresh = await desk.socket(ip="198.51.100.7")
    await fresh.hello()
    await fresh.send({"type": "message", "text": "你好", "client_id": "x"})
    assert (await fresh.receive_until("error"))["code"] == "rate_limited"
    for ws in [*sockets, fresh]:
        await ws.close()


async def test_offline_form_opens_a_ticket_and_says_when_we_open(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.channels.webchat import endpoint
    from tests.app.channels.webchat.conftest import EVENING

    monkeypatch.setattr(endpoint, "utcnow", lambda: EVENING)
    ws = await desk.socket()
    welcome = await ws.hello()
    assert (welcome["online"], welcome["opens_at"]) == (False, "12月10日 09:00")
    await ws.send({"type": "offline", "name": "李先生", "contact": "bad", "text": "退货怎么寄"})
    assert (await ws.receive_until("error"))["code"] == "bad_contact"
    assert await Ticket.all().count() == 0
    await ws.send({"type": "offline", "name": "李先生", "contact": "li@example.com", "text": "退货怎么寄"})
    done = await ws.receive_until("offline_ok")
    ticket = await Ticket.get()
    assert (done["ticket"], done["opens_at"], ticket.subject) == (ticket.number, "12月10日 09:00", "退货怎么寄")
    created = await TicketEvent.get(ticket_id=ticket.id, kind="created")
    assert (ticket.custom_fields["source"], created.data["source"]) == ("webchat", "webchat_offline")
    await ws.close()


async def test_a_calendar_without_working_time_ahead_still_greets_the_visitor(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.channels.webchat import endpoint
    from app.errors import ValidationFailed
    from tests.app.channels.webchat.conftest import EVENING

    class NeverOpen:
        def is_open(self, at: object) -> bool:
            return False

        def next_open(self, at: object) -> object:
            raise ValidationFailed("日历 x 在 400 天内没有工作时间", code="calendar_never_open")

    async def never_open(*, group_id: object) -> NeverOpen:
        return NeverOpen()

    monkeypatch.setattr(endpoint, "utcnow", lambda: EVENING)
    monkeypatch.setattr(endpoint.calendar, "for_group", never_open)
    ws = await desk.socket()
    welcome = await ws.hello()
    assert (welcome["online"], welcome["opens_at"]) == (False, None)
    await ws.close()


async def test_frames_before_hello_and_unknown_frames_get_a_chinese_error(desk: Desk) -> None:
    ws = await desk.socket()
    await ws.send({"type": "message", "text": "hi"})
    assert (await ws.receive())["code"] == "hello_first"
    await ws.inbox.put({"type": "websocket.receive", "text": "not json"})
    assert (await ws.receive())["code"] == "bad_frame"
    await ws.close()


async def test_a_site_needs_valid_origins(db: None) -> None:
    with pytest.raises(ConfigError):
        await accounts.upsert_account(key="x", origins=[])
    with pytest.raises(ConfigError):
        await accounts.upsert_account(key="x", origins=["shop.example.com"])
    assert await ChannelAccount.filter(key="x").count() == 0


def test_the_rate_limiter_forgets_hits_older_than_its_window() -> None:
    limiter = visitors.RateLimiter(limit=2, window=60)
    assert [limiter.allow("v", now=t) for t in (0, 1, 2)] == [True, True, False]
    assert limiter.allow("other", now=2) is True
    assert limiter.allow("v", now=60.5) is True  # the hit at 0 left the window; the refused one never counted
    assert limiter.allow("v", now=60.6) is False


def test_origins_are_compared_normalised() -> None:
    site = ChannelAccount(key="s", kind="webchat", config={"origins": ["https://shop.example.com"]})
    assert accounts.origin_allowed(site, "https://SHOP.example.com")
    assert not accounts.origin_allowed(site, "http://shop.example.com")
    assert not accounts.origin_allowed(site, "https://shop.example.com.evil.cn")
    assert not accounts.origin_allowed(site, "null")


async def test_the_pre_chat_form_after_hello_names_the_customer(desk: Desk, at_work: None) -> None:
    from app.customers.models import Customer

    ws = await desk.socket()
    await ws.hello()
    await ws.send({"type": "profile", "name": "赵先生", "contact": "not a contact"})
    assert (await ws.receive_until("error"))["code"] == "bad_contact"
    await ws.send({"type": "profile", "name": "赵先生", "contact": "zhao@example.com"})
    await ws.receive_until("profile_ok")
    identity = await CustomerIdentity.get(kind="visitor")
    customer = await Customer.get(id=identity.customer_id)  # type: ignore[attr-defined]
    assert customer.name == "赵先生"
    assert customer.email_hash is not None
    await ws.close()
