"""WeChatDriver: signed callbacks in each mode, retries, replays, passive replies, URL verification."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import xmltodict
from receiver import Received, Receiver
from simtestdata import AES_KEY, APPID, OPENID, TOKEN
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

from simulator import SimulatorState, WeChatDriver, crypto
from simulator.driver import CUSTOMER_ERROR_NOTICE
from simulator.server import UvicornThread

pytestmark = pytest.mark.asyncio

DESK = "http://desk.test/callbacks/wechat"


def _driver(state: SimulatorState, receiver: Receiver, *, mode: str = "safe", timeout: float = 5.0) -> WeChatDriver:
    account = state.mp_account(APPID)
    account.mode = mode  # type: ignore[assignment]
    return WeChatDriver(state, account, DESK, timeout=timeout, transport=httpx.ASGITransport(app=receiver.app()))


def _decrypt_safe(got: Received) -> str:
    params = got.params
    assert params["encrypt_type"] == "aes"
    check_signature(TOKEN, params["signature"], params["timestamp"], params["nonce"])
    xml: str = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        got.body, params["msg_signature"], params["timestamp"], params["nonce"]
    )
    return xml


async def test_plain_mode(state: SimulatorState) -> None:
    receiver = Receiver()
    result = await _driver(state, receiver, mode="plain").send_text(OPENID, "你好 <b>&</b> ]]> end")
    assert result.delivered and result.reply is None and result.reply_error is None
    [got] = receiver.requests
    assert set(got.params) == {"signature", "timestamp", "nonce", "openid"}
    assert got.params["openid"] == OPENID
    check_signature(TOKEN, got.params["signature"], got.params["timestamp"], got.params["nonce"])
    assert got.headers["content-type"] == "text/xml"
    message = parse_message(got.body.decode())
    assert message.type == "text"
    assert message.content == "你好 <b>&</b> ]]> end"
    assert message.source == OPENID
    assert message.target == state.mp_account(APPID).original_id
    assert message.id == result.msg_id and result.msg_id is not None and result.msg_id > 2**62
    assert got.body.decode() == result.xml
    assert result.xml.startswith("<xml><ToUserName><![CDATA[gh_")


async def test_safe_mode_body_and_signatures(state: SimulatorState) -> None:
    receiver = Receiver()
    result = await _driver(state, receiver, mode="safe").send_text(OPENID, "安全模式")
    [got] = receiver.requests
    assert set(got.params) == {"signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"}
    outer = xmltodict.parse(got.body)["xml"]
    assert set(outer) == {"ToUserName", "Encrypt"}
    assert outer["ToUserName"] == state.mp_account(APPID).original_id
    xml = _decrypt_safe(got)
    assert xml == result.xml
    assert parse_message(xml).content == "安全模式"
    with pytest.raises(InvalidSignatureException):
        WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
            got.body, got.params["msg_signature"], got.params["timestamp"], "0"
        )


async def test_compat_mode_has_plaintext_and_encrypt(state: SimulatorState) -> None:
    receiver = Receiver()
    result = await _driver(state, receiver, mode="compat").click(OPENID, "CONTACT_US")
    [got] = receiver.requests
    outer = xmltodict.parse(got.body)["xml"]
    assert outer["Event"] == "CLICK" and outer["EventKey"] == "CONTACT_US" and "Encrypt" in outer
    assert _decrypt_safe(got) == result.xml
    assert result.msg_id is None  # events carry no MsgId


async def test_message_shapes(state: SimulatorState) -> None:
    receiver = Receiver()
    driver = _driver(state, receiver, mode="plain")
    await driver.send_image(OPENID)
    await driver.send_voice(OPENID, b"#!AMR\n123", recognition="你好")
    await driver.send_location(OPENID, 23.134521, 113.358803, 20, "广州市天河区")
    await driver.send_link(OPENID, "标题", "描述", "https://example.com/a")
    await driver.subscribe(OPENID, scene="123123")
    await driver.view(OPENID, "https://example.com/menu")
    await driver.unsubscribe(OPENID)
    await driver.template_send_job_finish(OPENID, 3662956322040938501)
    image, voice, location, link, subscribe, view, unsubscribe, finish = (
        parse_message(r.body.decode()) for r in receiver.requests
    )
    media = state.mp.get_media(APPID, image.media_id)
    assert media.content.startswith(b"\x89PNG") and media.content_type == "image/png"
    assert image.image.startswith("http")
    assert (voice.format, voice.recognition) == ("amr", "你好")
    assert state.mp.get_media(APPID, voice.media_id).content == b"#!AMR\n123"
    assert (location.location_x, location.location_y, location.scale, location.label) == (
        "23.134521",
        "113.358803",
        "20",
        "广州市天河区",
    )
    assert (link.title, link.url) == ("标题", "https://example.com/a")
    assert subscribe.event == "subscribe_scan" and subscribe.scene_id == "123123"
    assert view.event == "view" and view.url == "https://example.com/menu"
    assert unsubscribe.event == "unsubscribe"
    assert finish.event == "templatesendjobfinish" and finish.id == 3662956322040938501
    assert b"<MsgID>3662956322040938501</MsgID>" in receiver.requests[-1].body
    user = state.mp_user(APPID, OPENID)
    assert user is not None and user.subscribe is False and user.qr_scene == 123123


async def test_interactions_open_windows(state: SimulatorState) -> None:
    driver = _driver(state, Receiver(), mode="plain")
    await driver.click(OPENID, "K")
    user = state.mp_user(APPID, OPENID)
    assert user is not None and user.event_window_at is not None and user.message_window_at is None
    await driver.send_text(OPENID, "hi")
    assert user.message_window_at is not None
    received = state.received_messages(APPID, OPENID)
    assert [(m.msgtype, m.event) for m in received] == [("event", "CLICK"), ("text", None)]


async def test_retries_when_the_desk_is_slow() -> None:
    state = SimulatorState(template_job_finish=False)
    state.add_mp_account(APPID, "s", TOKEN, AES_KEY, mode="safe")
    receiver = Receiver(script=[{"delay": 0.6}, {"delay": 0.6}, {}])
    with UvicornThread(receiver.app()) as desk:
        driver = WeChatDriver(state, state.mp_account(APPID), f"{desk.url}/callbacks/wechat", timeout=0.3)
        started = time.monotonic()
        result = await driver.send_text(OPENID, "are you there?")
        elapsed = time.monotonic() - started
    assert [a.status_code for a in result.attempts] == [None, None, 200]
    assert all(a.elapsed < 0.5 for a in result.attempts)
    assert elapsed < 2.0
    assert result.delivered and not result.customer_saw_error
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1
    assert len({r.params["nonce"] for r in receiver.requests}) == 3
    for got in receiver.requests:
        assert _decrypt_safe(got) == result.xml


async def test_gives_up_after_four_attempts_and_customer_sees_error(state: SimulatorState) -> None:
    receiver = Receiver(script=[{"status": 500}] * 5)
    result = await _driver(state, receiver).send_text(OPENID, "hello?")
    assert [a.status_code for a in result.attempts] == [500, 500, 500, 500]
    assert result.attempts[0].body == "boom"
    assert not result.delivered and result.customer_saw_error
    [notice] = state.sent_messages(APPID, OPENID)
    assert notice.kind == "notice" and notice.body["text"]["content"] == CUSTOMER_ERROR_NOTICE


async def test_replay_keeps_msg_id_and_body(state: SimulatorState) -> None:
    receiver = Receiver()
    driver = _driver(state, receiver)
    first = await driver.send_text(OPENID, "dup")
    again = await driver.replay(first)
    assert again.msg_id == first.msg_id
    one, two = receiver.requests
    assert one.body == two.body
    assert one.params["nonce"] != two.params["nonce"] or one.params["timestamp"] != two.params["timestamp"]
    assert _decrypt_safe(one) == _decrypt_safe(two) == first.xml
    assert len(state.received_messages(APPID)) == 1  # a replay is not a new customer message


async def test_encrypted_passive_reply_is_verified_and_logged(state: SimulatorState) -> None:
    def reply(got: Received) -> str:
        message = parse_message(_decrypt_safe(got))
        rendered = create_reply("已收到，工单号 GD-1 <script>", message).render()
        envelope: str = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(rendered, "4242", got.params["timestamp"])
        return envelope

    result = await _driver(state, Receiver(reply=reply)).send_text(OPENID, "help")
    assert result.reply_error is None
    assert result.reply is not None and result.reply.encrypted and result.reply.msgtype == "text"
    [sent] = state.sent_messages(APPID, OPENID)
    assert sent.kind == "passive"
    assert sent.body == {"msgtype": "text", "text": {"content": "已收到，工单号 GD-1 <script>"}}


async def test_plain_passive_news_reply(state: SimulatorState) -> None:
    def reply(got: Received) -> str:
        articles = [{"title": "FAQ", "description": "d", "image": "http://i/1.png", "url": "http://faq"}]
        rendered: str = create_reply(articles, parse_message(got.body.decode())).render()
        return rendered

    result = await _driver(state, Receiver(reply=reply), mode="plain").send_text(OPENID, "faq")
    assert result.reply is not None and not result.reply.encrypted
    [sent] = state.sent_messages(APPID, OPENID)
    assert sent.body == {
        "msgtype": "news",
        "news": {"articles": [{"title": "FAQ", "description": "d", "picurl": "http://i/1.png", "url": "http://faq"}]},
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"ok": true}', "reply is neither 'success', empty, nor XML"),
        (
            b"<xml><Encrypt>abc</Encrypt><MsgSignature>x</MsgSignature></xml>",
            "encrypted reply has a wrong MsgSignature",
        ),
        (b"<xml><MsgType>text</MsgType><Content>x</Content></xml>", "reply ToUserName/FromUserName do not match"),
    ],
)
async def test_invalid_replies_show_the_customer_an_error(state: SimulatorState, body: bytes, error: str) -> None:
    result = await _driver(state, Receiver(script=[{"body": body}])).send_text(OPENID, "x")
    assert result.delivered and len(result.attempts) == 1  # a bad body is not retried
    assert result.reply_error is not None and result.reply_error.startswith(error)
    assert result.customer_saw_error
    assert [m.kind for m in state.sent_messages(APPID)] == ["notice"]


async def test_empty_body_is_accepted(state: SimulatorState) -> None:
    result = await _driver(state, Receiver(script=[{"body": b""}])).send_text(OPENID, "x")
    assert result.delivered and not result.customer_saw_error
    assert state.sent_messages(APPID) == []


async def test_verify_url_and_signed_params(state: SimulatorState) -> None:
    receiver = Receiver()
    driver = _driver(state, receiver, mode="safe")
    response = await driver.verify_url()
    [got] = receiver.requests
    assert set(got.params) == {"signature", "timestamp", "nonce", "echostr"}
    check_signature(TOKEN, got.params["signature"], got.params["timestamp"], got.params["nonce"])
    assert response.text == got.params["echostr"]
    bad = await driver.verify_url(token="wrong")
    with pytest.raises(InvalidSignatureException):
        check_signature(
            TOKEN,
            receiver.requests[1].params["signature"],
            bad.request.url.params["timestamp"],
            bad.request.url.params["nonce"],
        )
    xml = driver.message_xml(OPENID, "text", [("Content", "crafted")], with_msg_id=True)
    params, body = driver.signed_params(xml, "safe", timestamp="1000000000", nonce="42")
    assert params["timestamp"] == "1000000000" and params["openid"] == OPENID
    assert params["msg_signature"] == crypto.sign(TOKEN, "1000000000", "42", xmltodict.parse(body)["xml"]["Encrypt"])
    stale = await driver.post_raw(body, params)
    assert stale.status_code == 200
    assert receiver.requests[-1].body == body
    plain_params, plain_body = driver.signed_params(xml, "plain")
    assert plain_body == xml.encode() and "msg_signature" not in plain_params


async def test_concurrent_deliveries_use_distinct_msg_ids(state: SimulatorState) -> None:
    receiver = Receiver()
    driver = _driver(state, receiver)
    results = await asyncio.gather(*(driver.send_text(f"o{i}", str(i)) for i in range(10)))
    assert len({r.msg_id for r in results}) == 10
