"""The staff ticket page's live link to a web chat: typing and read state both ways, the visitor's new messages,
read marks kept across reconnects, and the link refused to anyone who may not see the ticket."""

from __future__ import annotations

from typing import Any

import pytest

from app import queue as jobqueue
from app.channels.webchat import accounts, endpoint, visitors
from app.conversations.models import Message
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.app.channels.webchat.conftest import ORIGIN, WORKING, Refused, Socket
from tests.h5.conftest import BASE, H5

PAGE_ORIGIN = BASE


class StaffSocket(Socket):
    """The ticket page's socket, with the staff member's session cookie."""

    def __init__(self, h5: H5, number: str, *, origin: str | None = PAGE_ORIGIN, cookie: bool = True) -> None:
        super().__init__(h5.app, site="", origin=None, ip="10.0.0.8")
        jar = "; ".join(f"{k}={v}" for k, v in h5.client.cookies.items()) if cookie else ""
        headers = [(b"host", b"127.0.0.1:8000")] + ([(b"origin", origin.encode())] if origin else [])
        headers += [(b"cookie", jar.encode())] if jar else []
        path = f"/h5/tickets/{number}/live"
        self.scope.update(path=path, raw_path=path.encode(), query_string=b"", headers=headers,
                          server=("127.0.0.1", 8000))


@pytest.fixture
async def chat(h5: H5, jobs: jobqueue.InProcessQueue, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(endpoint, "utcnow", lambda: WORKING)
    visitors.visitor_limiter.reset()
    visitors.ip_limiter.reset()
    await accounts.upsert_account(key="shop", name="示例商城", origins=[ORIGIN], bot=False)
    widget = await Socket(h5.app, site="shop", origin=ORIGIN, ip="203.0.113.5").connect()
    welcome = await widget.hello()
    await widget.send({"type": "message", "text": "打印机故障，需要报修", "client_id": "c1"})
    ack = await widget.receive_until("ack")
    await jobs.drain()
    ticket = await Ticket.get()
    await h5.login_staff("admin")
    return {"widget": widget, "token": welcome["visitor"], "first": ack["id"], "ticket": ticket, "jobs": jobs}


async def test_typing_and_read_state_go_both_ways_and_new_messages_show(h5: H5, chat: dict[str, Any]) -> None:
    widget, ticket = chat["widget"], chat["ticket"]
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert f'data-url="/h5/tickets/{ticket.number}/live"' in page.text
    assert f'data-id="{chat["first"]}"' in page.text

    staff = await StaffSocket(h5, ticket.number).connect()
    assert await staff.receive() == {"type": "state"}

    await widget.send({"type": "typing"})
    assert await staff.receive() == {"type": "typing", "who": "visitor"}
    await staff.send({"type": "typing"})
    assert await widget.receive_until("typing") == {"type": "typing", "who": "staff"}

    await staff.send({"type": "read", "id": chat["first"]})
    assert await widget.receive_until("read") == {"type": "read", "who": "staff", "id": chat["first"]}

    reply = await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，工程师今天下午上门。")
    await chat["jobs"].drain()
    await widget.send({"type": "read", "id": reply.id})
    assert await staff.receive() == {"type": "read", "who": "visitor", "id": reply.id}

    await widget.send({"type": "message", "text": "好的，我的电话 13800138000", "client_id": "c2"})
    second = (await widget.receive_until("ack"))["id"]
    live = await staff.receive()
    assert (live["type"], live["who"], live["id"], live["ticket_id"]) == ("message", "visitor", second, ticket.id)
    assert live["text"] == "好的，我的电话 138****8000"  # masked, as the timeline shows it

    await staff.close()
    await widget.close()


async def test_read_marks_are_kept_for_a_reloaded_widget_and_page(h5: H5, chat: dict[str, Any]) -> None:
    widget, ticket = chat["widget"], chat["ticket"]
    staff = await StaffSocket(h5, ticket.number).connect()
    await staff.receive()
    await staff.send({"type": "read", "id": chat["first"] + 1000})  # clamped to the visitor's own latest message
    assert (await widget.receive_until("read"))["id"] == chat["first"]
    reply = await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="收到")
    await chat["jobs"].drain()
    await widget.send({"type": "read", "id": reply.id + 50})
    assert (await staff.receive())["id"] == reply.id
    await widget.close()
    await staff.close()

    again = await Socket(h5.app, site="shop", origin=ORIGIN, ip="203.0.113.5").connect()
    await again.hello(visitor=chat["token"], last_id=reply.id)
    assert await again.receive_until("read") == {"type": "read", "who": "staff", "id": chat["first"]}
    await again.close()

    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert f'data-visitor-read="{reply.id}"' in page.text
    staff = await StaffSocket(h5, ticket.number).connect()
    assert await staff.receive() == {"type": "state", "staff": chat["first"], "visitor": reply.id}
    await staff.close()


async def test_a_mark_moves_only_forward(h5: H5, chat: dict[str, Any]) -> None:
    widget, ticket = chat["widget"], chat["ticket"]
    staff = await StaffSocket(h5, ticket.number).connect()
    await staff.receive()
    await staff.send({"type": "read", "id": chat["first"]})
    await widget.receive_until("read")
    await staff.send({"type": "read", "id": chat["first"]})  # nothing new: nothing published
    await staff.send({"type": "typing"})
    assert (await widget.receive_until("typing"))["who"] == "staff"  # the next event is the typing, not a read
    await staff.close()
    await widget.close()


async def test_the_live_link_is_refused_to_strangers(h5: H5, chat: dict[str, Any]) -> None:
    number = chat["ticket"].number
    with pytest.raises(Refused):
        await StaffSocket(h5, number, cookie=False).connect()
    with pytest.raises(Refused):
        await StaffSocket(h5, number, origin="https://evil.example.com").connect()
    with pytest.raises(Refused):
        await StaffSocket(h5, number, origin=None).connect()
    with pytest.raises(Refused):
        await StaffSocket(h5, "GD-20990101-0001").connect()
    other = h5.new_client()
    h5.client = await h5.login_staff("zhaolei", other)  # an agent of another department's group
    with pytest.raises(Refused):
        await StaffSocket(h5, number).connect()
    await other.aclose()
    await chat["widget"].close()


async def test_a_ticket_of_another_channel_has_no_live_link(h5: H5, chat: dict[str, Any]) -> None:
    ticket = chat["ticket"]
    await Ticket.filter(id=ticket.id).update(channel_account_id=None)
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert page.status_code == 200 and "live-chat" not in page.text
    with pytest.raises(Refused):
        await StaffSocket(h5, ticket.number).connect()
    assert await Message.filter(ticket_id=ticket.id).count() >= 1
    await chat["widget"].close()
