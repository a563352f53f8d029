"""The simulator's kf chat page against the desk (what `make run` offers, observation 13): the customer types on
the page, the desk is told with kf_msg_or_event and pulls the message; a staff reply goes out with kf/send_msg and
shows on the page."""

from __future__ import annotations

import httpx

from app.conversations.models import Message
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from simulator import create_simulator_app

from .conftest import OPEN_KFID, KfEnv

CUSTOMER = "wmKfPageCustomer00000000000001"


async def test_a_customer_on_the_page_reaches_the_desk_and_sees_the_staff_reply(kfenv: KfEnv) -> None:
    # the page's callbacks go to the in-process desk (its self-built app's callback URL is http://desk/...)
    kfenv.kf.callback_transport = kfenv.env.client._transport
    page = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_simulator_app(kfenv.env.sim)),
                             base_url="http://sim.test")
    async with page:
        sent = await page.post("/_sim/kf/chat/send", json={"open_kfid": OPEN_KFID, "external_userid": CUSTOMER,
                                                           "content": "我要投诉，东西坏了"})
        assert sent.json()["ok"] is True
        await kfenv.settle()
        incoming = await Message.filter(direction="in").order_by("id")
        assert [(m.text, m.provider_msg_id) for m in incoming] == [("我要投诉，东西坏了", sent.json()["msgid"])]

        ticket = await Ticket.get()
        await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，已为您登记，请稍候。")
        await kfenv.settle()
        items = (await page.get("/_sim/kf/conversation", params={"open_kfid": OPEN_KFID,
                                                                 "external_userid": CUSTOMER})).json()["items"]
    assert items[0]["direction"] == "in" and items[0]["body"]["text"] == {"content": "我要投诉，东西坏了"}
    outgoing = [i["body"]["text"]["content"] for i in items if i["direction"] == "out" and i["msgtype"] == "text"]
    assert outgoing[-1] == "您好，已为您登记，请稍候。"
