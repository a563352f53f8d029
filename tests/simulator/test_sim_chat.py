"""The people-facing chat page and its JSON endpoints."""

from __future__ import annotations

import httpx
import pytest
from receiver import Received, Receiver
from simtestdata import AES_KEY, APPID, OPENID, SECRET, TOKEN
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import create_reply

from simulator import SimulatorState, create_simulator_app
from simulator.server import UvicornThread

pytestmark = pytest.mark.asyncio


def _app_client(state: SimulatorState) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_simulator_app(state)), base_url="http://sim.test")


async def test_pages_escape_everything() -> None:
    state = SimulatorState()
    state.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, name="<script>alert(1)</script>客服")
    state.set_mp_user(APPID, '"><img src=x onerror=alert(2)>')
    state.mp.set_menu(APPID, {"button": [{"type": "click", "name": "<b>菜单</b>", "key": "K<1>"}]})
    async with _app_client(state) as client:
        index = await client.get("/_sim/")
        assert index.status_code == 200
        assert "<script>alert(1)" not in index.text and "&lt;script&gt;alert(1)" in index.text
        assert "<img src=x" not in index.text
        chat = await client.get("/_sim/chat", params={"appid": APPID, "openid": "o</script><script>alert(3)//"})
        assert chat.status_code == 200
        assert "发送" in chat.text and "图片" in chat.text and "关注" in chat.text and "取消关注" in chat.text
        assert "菜单" in chat.text
        assert "</script><script>alert(3)" not in chat.text
        assert "&lt;b&gt;菜单&lt;/b&gt;" in chat.text and 'data-value="K&lt;1&gt;"' in chat.text
        fresh = await client.get("/_sim/chat", params={"appid": APPID})
        assert fresh.status_code == 303 and "openid=oSim" in fresh.headers["location"]
        assert (await client.get("/_sim/chat", params={"appid": "wxnope"})).status_code == 404


async def test_chat_send_delivers_and_conversation_shows_both_sides() -> None:
    def reply(got: Received) -> str:
        crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        xml = crypto.decrypt_message(
            got.body, got.params["msg_signature"], got.params["timestamp"], got.params["nonce"]
        )
        message = parse_message(xml)
        text = f"收到：{message.content}" if message.type == "text" else "欢迎"
        envelope: str = crypto.encrypt_message(create_reply(text, message).render(), "1", got.params["timestamp"])
        return envelope

    receiver = Receiver(reply=reply)
    state = SimulatorState(template_job_finish=False)
    with UvicornThread(receiver.app()) as desk:
        state.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, callback_url=f"{desk.url}/callbacks/wechat")
        async with _app_client(state) as client:
            sent = await client.post(
                "/_sim/chat/send", json={"appid": APPID, "openid": OPENID, "action": "text", "content": "<script>x"}
            )
            assert sent.json()["ok"] is True
            assert sent.json()["reply"] == {"msgtype": "text", "text": {"content": "收到：<script>x"}}
            assert isinstance(sent.json()["msg_id"], str)
            image = await client.post(
                "/_sim/chat/send",
                data={"appid": APPID, "openid": OPENID, "action": "image"},
                files={"file": ("p.png", b"\x89PNG..", "image/png")},
            )
            assert image.json()["delivered"] is True
            click = await client.post(
                "/_sim/chat/send", json={"appid": APPID, "openid": OPENID, "action": "click", "key": "K"}
            )
            assert click.json()["delivered"] is True
            bad = await client.post("/_sim/chat/send", json={"appid": APPID, "openid": OPENID, "action": "dance"})
            assert bad.status_code == 400
            timeline = (await client.get("/_sim/mp/conversation", params={"appid": APPID, "openid": OPENID})).json()[
                "items"
            ]
    assert [(i["direction"], i["msgtype"]) for i in timeline] == [
        ("in", "text"),
        ("out", "text"),
        ("in", "image"),
        ("out", "text"),
        ("in", "event"),
        ("out", "text"),
    ]
    assert timeline[0]["fields"]["Content"] == "<script>x"
    assert timeline[1]["kind"] == "passive"
    media = state.mp.get_media(APPID, timeline[2]["fields"]["MediaId"])
    assert media.content == b"\x89PNG.."
    assert [parse_message(r.body.decode()).type for r in receiver.requests if b"<Encrypt>" not in r.body] == []


async def test_chat_send_without_callback_url(state: SimulatorState) -> None:
    async with _app_client(state) as client:
        response = await client.post("/_sim/chat/send", json={"appid": APPID, "openid": OPENID, "action": "text"})
        assert response.status_code == 409


async def test_conversation_links_images_the_desk_sent(state: SimulatorState) -> None:
    media_id = state.add_media(APPID, b"\x89PNG", "image/png", "a.png")
    state.mp.record_sent(
        appid=APPID,
        touser=OPENID,
        kind="custom",
        msgtype="image",
        body={"touser": OPENID, "msgtype": "image", "image": {"media_id": media_id}},
    )
    async with _app_client(state) as client:
        items = (await client.get("/_sim/mp/conversation", params={"appid": APPID, "openid": OPENID})).json()["items"]
        assert items[0]["media_url"] == f"/_sim/media/{media_id}"
        assert (await client.get(items[0]["media_url"])).content == b"\x89PNG"
        assert (await client.get("/_sim/mp/conversation", params={"appid": APPID})).status_code == 400
