"""The 微信客服 (kf) chat page: a customer's message is queued and announced to the desk with a kf_msg_or_event
callback; what the desk sends with kf/send_msg (text, msgmenu) shows on the page; bad input changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import xmltodict
from receiver import Receiver
from wechatpy.work.crypto import WeChatCrypto

from simulator import SimulatorState, create_simulator_app
from simulator.demo import DEMO_KF_NAME, DEMO_OPEN_KFID, add_demo_kf
from simulator.kfchat import callback_app
from simulator.server import UvicornThread
from simulator.wecom.kf import kf_state
from simulator.wecom.orggen import add_default_apps

pytestmark = pytest.mark.asyncio

BASE = "/qyapi/cgi-bin/"
CUSTOMER = "wmKfChatCustomer000000000000001"
OTHER = "wmKfChatCustomer000000000000002"
APP_TOKEN, APP_AES_KEY = "simwecomtoken", "SimWeComAesKey0123456789abcdefghijklmnopqrs"


@pytest.fixture
def sim() -> SimulatorState:
    state = SimulatorState()
    add_demo_kf(state)
    return state


@pytest_asyncio.fixture
async def client(sim: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_simulator_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as c:
        yield c


async def _api(client: httpx.AsyncClient, sim: SimulatorState, path: str, body: dict[str, Any]) -> dict[str, Any]:
    token = (await client.get(BASE + "gettoken", params={"corpid": sim.wecom.corp_id,
                                                          "corpsecret": "sim-agent-secret"})).json()["access_token"]
    data: dict[str, Any] = (await client.post(BASE + path, params={"access_token": token}, json=body)).json()
    return data


def _say(text: str, **extra: str) -> dict[str, str]:
    return {"open_kfid": DEMO_OPEN_KFID, "external_userid": CUSTOMER, "action": "text", "content": text, **extra}


async def test_the_page_renders_escaped_and_starts_new_customers(sim: SimulatorState,
                                                                 client: httpx.AsyncClient) -> None:
    kf_state(sim).add_account("wkEvil", "<script>alert(1)</script>客服")
    page = await client.get("/_sim/kf/chat", params={"open_kfid": "wkEvil", "external_userid": "wm</script>x"})
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;客服" in page.text
    assert "wm</script>x" not in page.text
    assert "发送" in page.text and "进入会话" in page.text
    fresh = await client.get("/_sim/kf/chat", params={"open_kfid": DEMO_OPEN_KFID})
    assert fresh.status_code == 303
    assert fresh.headers["location"].startswith(f"/_sim/kf/chat?open_kfid={DEMO_OPEN_KFID}&external_userid=wm")
    assert (await client.get("/_sim/kf/chat", params={"open_kfid": "wkNope"})).status_code == 404
    index = await client.get("/_sim/")
    assert DEMO_KF_NAME in index.text and f"/_sim/kf/chat?open_kfid={DEMO_OPEN_KFID}" in index.text


async def test_a_customer_message_is_queued_and_announced_to_the_desk(sim: SimulatorState,
                                                                     client: httpx.AsyncClient) -> None:
    receiver = Receiver()
    with UvicornThread(receiver.app()) as desk:
        add_default_apps(sim.wecom, app_callback_url=f"{desk.url}/callbacks/wechat")
        sent = await client.post("/_sim/kf/chat/send", json=_say("<b>你好</b>，订单怎么退"))
    answer = sent.json()
    assert (sent.status_code, answer["ok"], [a["status"] for a in answer["attempts"]]) == (200, True, [200])
    assert [r.method for r in receiver.requests] == ["POST"]
    got = receiver.requests[0]
    crypto = WeChatCrypto(APP_TOKEN, APP_AES_KEY, sim.wecom.corp_id)
    xml = crypto.decrypt_message(got.body, got.params["msg_signature"], got.params["timestamp"], got.params["nonce"])
    event = xmltodict.parse(xml)["xml"]
    assert (event["MsgType"], event["Event"], event["OpenKfId"]) == ("event", "kf_msg_or_event", DEMO_OPEN_KFID)
    assert "FromUserName" not in event
    # the callback's Token pulls the queued message, as the desk does
    pulled = await _api(client, sim, "kf/sync_msg", {"token": event["Token"], "open_kfid": DEMO_OPEN_KFID})
    assert [(m["external_userid"], m["origin"], m["msgtype"], m["text"]) for m in pulled["msg_list"]] == [
        (CUSTOMER, 3, "text", {"content": "<b>你好</b>，订单怎么退"})]
    assert pulled["msg_list"][0]["msgid"] == answer["msgid"]


async def test_desk_messages_and_menus_show_on_the_page_and_a_menu_click_carries_its_id(
        sim: SimulatorState, client: httpx.AsyncClient) -> None:
    kf = kf_state(sim)
    kf.callback_transport = httpx.ASGITransport(app=Receiver().app())  # the desk answers success in-process
    add_default_apps(sim.wecom, app_callback_url="http://desk/callbacks/wechat")
    assert (await client.post("/_sim/kf/chat/send", json=_say("发票怎么开"))).json()["ok"] is True
    menu = {"head_content": "您想问的是：", "tail_content": "都不是？请回复“人工”",
            "list": [{"type": "click", "click": {"id": "kb:3", "content": "如何开具发票"}},
                     {"type": "click", "click": {"id": "kb:4", "content": "发票<抬头>修改"}}]}
    assert (await _api(client, sim, "kf/send_msg", {"touser": CUSTOMER, "open_kfid": DEMO_OPEN_KFID,
                                                    "msgid": "gd1", "msgtype": "text",
                                                    "text": {"content": "您好，这里是客服"}}))["errcode"] == 0
    assert (await _api(client, sim, "kf/send_msg", {"touser": CUSTOMER, "open_kfid": DEMO_OPEN_KFID,
                                                    "msgid": "gd2", "msgtype": "msgmenu",
                                                    "msgmenu": menu}))["errcode"] == 0
    kf.customer_message(sim.clock.now(), DEMO_OPEN_KFID, OTHER, "text", {"content": "别人的消息"})

    params = {"open_kfid": DEMO_OPEN_KFID, "external_userid": CUSTOMER}
    items = (await client.get("/_sim/kf/conversation", params=params)).json()["items"]
    assert [(i["direction"], i["msgtype"]) for i in items] == [("in", "text"), ("out", "text"), ("out", "msgmenu")]
    assert items[0]["body"]["text"] == {"content": "发票怎么开"} and "_seq" not in items[0]["body"]
    assert items[1]["body"]["text"] == {"content": "您好，这里是客服"}
    assert items[2]["body"]["msgmenu"] == menu
    later = (await client.get("/_sim/kf/conversation", params={**params, "since_id": items[1]["id"]})).json()
    assert [i["id"] for i in later["items"]] == [items[2]["id"]]

    # the page's menu button sends the item's text with its id; the desk reads menu_id from sync_msg
    clicked = await client.post("/_sim/kf/chat/send", json=_say("如何开具发票", menu_id="kb:3"))
    assert clicked.json()["ok"] is True
    pulled = await _api(client, sim, "kf/sync_msg", {"open_kfid": DEMO_OPEN_KFID})
    assert pulled["msg_list"][-1]["text"] == {"content": "如何开具发票", "menu_id": "kb:3"}

    entered = await client.post("/_sim/kf/chat/send", json={**params, "action": "enter_session"})
    assert entered.json()["ok"] is True
    last = (await client.get("/_sim/kf/conversation", params=params)).json()["items"][-1]
    assert (last["msgtype"], last["body"]["event"]["event_type"]) == ("event", "enter_session")
    assert last["body"]["event"]["welcome_code"]


async def test_bad_input_is_refused_and_queues_nothing(sim: SimulatorState, client: httpx.AsyncClient) -> None:
    kf = kf_state(sim)
    no_app = await client.post("/_sim/kf/chat/send", json=_say("你好"))
    assert (no_app.status_code, no_app.json()["ok"]) == (409, False)
    add_default_apps(sim.wecom, app_callback_url="http://desk/callbacks/wechat")
    assert callback_app(sim) is sim.wecom.app("app")
    cases = [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"open_kfid": "wkNope", "external_userid": "wmA", "content": "hi"}', 404),
        (f'{{"open_kfid": "{DEMO_OPEN_KFID}", "external_userid": "", "content": "hi"}}'.encode(), 400),
        (f'{{"open_kfid": "{DEMO_OPEN_KFID}", "external_userid": "wmA", "content": "  "}}'.encode(), 400),
        (f'{{"open_kfid": "{DEMO_OPEN_KFID}", "external_userid": "wmA", "action": "dance"}}'.encode(), 400),
        (f'{{"open_kfid": "{DEMO_OPEN_KFID}", "external_userid": "wmA", "content": "{"长" * 683}"}}'.encode(), 400),
    ]
    for body, status in cases:
        response = await client.post("/_sim/kf/chat/send", content=body, headers={"Content-Type": "application/json"})
        assert (response.status_code, response.json()["ok"]) == (status, False), body[:60]
    assert kf.messages == [] and kf.journal == [] and kf.tokens == {}
    assert (await client.get("/_sim/kf/conversation", params={"open_kfid": DEMO_OPEN_KFID})).status_code == 400
    assert (await client.get("/_sim/kf/conversation", params={"open_kfid": DEMO_OPEN_KFID, "external_userid": "wmA",
                                                               "since_id": "x"})).status_code == 400
