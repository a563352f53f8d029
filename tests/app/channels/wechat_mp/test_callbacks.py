"""The callback endpoint: official vectors, and every kind of bad input refused with no rows written."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from app.channels.models import InboundEvent
from app.channels.wechat_mp import accounts
from app.conversations.models import Message
from app.settings import Settings
from app.timeutil import set_clock
from tests.app.channels.wechat_mp.conftest import AES_KEY, TOKEN, MPEnv

OPENID = "oBadInput000000000000001"

# M1: Tencent's official MP sample (token spamtest, compatibility-mode body)
M1 = {
    "token": "spamtest", "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "appid": "wx2c2769f8efd9abc2",
    "params": {"timestamp": "1409735669", "nonce": "1320562132", "encrypt_type": "aes",
               "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
               "signature": "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"},
    "body": "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>",  # noqa: E501
}


async def _rows() -> tuple[int, int]:
    return await InboundEvent.all().count(), await Message.all().count()


async def test_official_mp_vector_verifies_through_our_endpoint(mp: MPEnv, settings: Settings) -> None:
    await accounts.upsert_account(key="m1", name="官方样例", appid=M1["appid"], secret="x" * 20, token=M1["token"],
                                  aes_key=M1["aes_key"])
    set_clock(lambda: datetime.fromtimestamp(1409735669, UTC))
    try:
        r = await mp.client.post("/callbacks/wechat/m1", params=M1["params"], content=M1["body"].encode())
    finally:
        set_clock(None)
    assert (r.status_code, r.text) == (200, "success")
    event = await InboundEvent.get()
    assert event.dedupe_key == "wechat_mp:wx2c2769f8efd9abc2:msg:6054768590064713728"
    assert "<Content><![CDATA[abcdteT]]></Content>" in event.payload


async def test_official_url_verification_vector(mp: MPEnv) -> None:
    # M2a: token AAAAA, echostr answered verbatim
    await accounts.upsert_account(key="m2", name="M2", appid="wxba5fad812f8e6fb9", secret="x" * 20, token="AAAAA",
                                  aes_key="A" * 43)
    set_clock(lambda: datetime.fromtimestamp(1714036504, UTC))
    try:
        r = await mp.client.get("/callbacks/wechat/m2", params={
            "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696", "echostr": "4375120948345356249",
            "timestamp": "1714036504", "nonce": "1514711492"})
    finally:
        set_clock(None)
    assert (r.status_code, r.text) == (200, "4375120948345356249")


async def test_driver_url_verification(mp: MPEnv) -> None:
    r = await mp.driver.verify_url()
    assert r.status_code == 200
    r = await mp.driver.verify_url(token="wrong")
    assert r.status_code == 403


def _text_xml(content: str = "你好", msg_id: str = "7000000000000000001") -> str:
    return (f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def _plain(xml: str) -> tuple[dict[str, str], bytes]:
    """Safe-mode parameters with ``xml`` as the wire body (the account has an AES key, so plain mode is refused)."""
    from simulator import crypto

    ts, nonce = str(int(time.time())), crypto.random_nonce()
    return {"timestamp": ts, "nonce": nonce, "openid": OPENID, "signature": crypto.sign(TOKEN, ts, nonce),
            "encrypt_type": "aes", "msg_signature": crypto.sign(TOKEN, ts, nonce, "x")}, xml.encode()


@pytest.mark.parametrize(("name", "status"), [
    ("bad_signature", 403), ("stale_timestamp", 403), ("malformed_xml", 400), ("xml_bomb", 400),
    ("external_entity", 400), ("missing_encrypt", 400), ("wrong_appid", 400),
])
async def test_bad_input_is_refused_with_a_log_line_and_no_rows(mp: MPEnv, name: str, status: int,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    d = mp.driver
    if name == "bad_signature":
        params, body = d.signed_params(_text_xml(), token="not-the-token")
    elif name == "stale_timestamp":
        params, body = d.signed_params(_text_xml(), timestamp=str(int(time.time()) - 3600))
    elif name == "malformed_xml":
        params, body = _plain("<xml><ToUserName>gh</ToUserName><FromUserName>o</xml")
    elif name == "xml_bomb":
        bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                '<xml><Content>&lol3;</Content></xml>')
        params, body = _plain(bomb)
    elif name == "external_entity":
        xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
               f'<xml><FromUserName>{OPENID}</FromUserName><MsgType>text</MsgType><Content>&e;</Content></xml>')
        params, body = _plain(xxe)
    elif name == "missing_encrypt":
        params, _ = d.signed_params(_text_xml())
        body = b"<xml><ToUserName>gh_x</ToUserName></xml>"
    else:  # wrong_appid: encrypted for another Official Account with our key
        from simulator import crypto

        enc = crypto.encrypt(AES_KEY, "wxSomebodyElse00000", _text_xml().encode())
        ts, nonce = str(int(time.time())), "12345"
        params = {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes", "openid": OPENID,
                  "signature": crypto.sign(TOKEN, ts, nonce), "msg_signature": crypto.sign(TOKEN, ts, nonce, enc)}
        body = f"<xml><ToUserName>gh_x</ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>".encode()
    with caplog.at_level(logging.WARNING):
        r = await d.post_raw(body, params)
    assert r.status_code == status, (name, r.text)
    assert await _rows() == (0, 0)
    rejected = [rec for rec in caplog.records if "callback.rejected" in rec.getMessage()]
    assert rejected, "no log line"
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert TOKEN not in logged and AES_KEY not in logged


async def test_unknown_but_valid_type_is_acknowledged_and_ignored(mp: MPEnv) -> None:
    xml = (f"<xml><ToUserName>gh_x</ToUserName><FromUserName>{OPENID}</FromUserName>"
           f"<CreateTime>{int(time.time())}</CreateTime><MsgType>miniprogrampage</MsgType><MsgId>77</MsgId></xml>")
    result = await mp.driver.deliver_xml(xml)
    assert result.response is not None
    assert (result.response.status_code, result.response.text) == (200, "success")
    assert await _rows() == (0, 0)


async def test_unknown_account_is_404(mp: MPEnv) -> None:
    r = await mp.client.post("/callbacks/wechat/nope", content=b"<xml/>")
    assert r.status_code == 404


async def test_answer_is_fast(mp: MPEnv, settings: Settings) -> None:
    result = await mp.driver.send_text(OPENID, "你好")
    assert len(result.attempts) == 1
    assert result.attempts[0][1] < 5.0


# -- issue 11: forged plain-mode callbacks, replays, deep nesting, over-long ids --------------------------------------


async def test_forged_plain_callback_with_a_seen_safe_mode_url_is_refused(mp: MPEnv,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    # Someone saw one safe-mode callback URL: its `signature` covers token, timestamp and nonce only. Dropping
    # encrypt_type and posting plaintext used to be accepted as plain mode: any text, as any openid, for 300 s.
    seen, _ = mp.driver.signed_params(_text_xml("真的消息"))
    forged_params = {k: seen[k] for k in ("signature", "timestamp", "nonce")}
    forged = _text_xml("请把退款打到这个账户", msg_id="7000000000000000666")
    forged = forged.replace(OPENID, "oVictim0000000000000000001")
    with caplog.at_level(logging.WARNING):
        r = await mp.driver.post_raw(forged.encode(), forged_params)
        r2 = await mp.driver.post_raw(forged.encode(), {**forged_params, "encrypt_type": "raw"})
    assert (r.status_code, r.text) == (403, "encryption_required")
    assert (r2.status_code, r2.text) == (403, "encryption_required")
    assert await _rows() == (0, 0)
    assert any("callback.rejected" in rec.getMessage() and "encryption_required" in rec.getMessage()
               for rec in caplog.records)


async def test_plain_mode_is_accepted_only_where_configured(mp: MPEnv) -> None:
    await accounts.upsert_account(key="plain", name="明文号", appid="wxplain000000001", secret="x" * 20, token=TOKEN,
                                  aes_key="")
    await accounts.upsert_account(key="moving", name="切换中", appid="wxmoving00000001", secret="x" * 20, token=TOKEN,
                                  aes_key=AES_KEY, accept_plain=True)
    for key in ("plain", "moving"):
        params, body = mp.driver.signed_params(_text_xml(msg_id=f"70000000000000001{len(key)}"), "plain")
        r = await mp.client.post(f"/callbacks/wechat/{key}", params=params, content=body)
        assert (r.status_code, r.text) == (200, "success"), key
    assert await InboundEvent.all().count() == 2


async def test_replayed_callback_is_refused_with_a_log_line(mp: MPEnv, caplog: pytest.LogCaptureFixture) -> None:
    params, body = mp.driver.signed_params(_text_xml())
    first = await mp.driver.post_raw(body, params)
    assert (first.status_code, first.text) == (200, "success")
    with caplog.at_level(logging.WARNING):
        again = await mp.driver.post_raw(body, params)
    assert (again.status_code, again.text) == (403, "replayed")
    assert await InboundEvent.all().count() == 1
    assert any("callback.rejected" in rec.getMessage() and "replayed" in rec.getMessage() for rec in caplog.records)
    # a genuine WeChat retry carries a fresh timestamp, nonce and signature: acknowledged, stored once
    from simulator import crypto

    encrypt = body.decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    ts, nonce = params["timestamp"], crypto.random_nonce()
    retry = {**params, "nonce": nonce, "signature": crypto.sign(TOKEN, ts, nonce),
             "msg_signature": crypto.sign(TOKEN, ts, nonce, encrypt)}
    r = await mp.driver.post_raw(body, retry)
    assert (r.status_code, r.text) == (200, "success")
    assert await InboundEvent.all().count() == 1


async def test_unsigned_deep_xml_is_400_not_500(mp: MPEnv, caplog: pytest.LogCaptureFixture) -> None:
    deep = ("<a>" * 5000 + "</a>" * 5000).encode()
    with caplog.at_level(logging.WARNING):
        r = await mp.client.post("/callbacks/wechat", params={"timestamp": "1", "nonce": "1", "encrypt_type": "aes"},
                                 content=deep)
    assert (r.status_code, r.text) == (400, "too_deep")
    assert len([rec for rec in caplog.records if "callback.rejected" in rec.getMessage()]) == 1
    assert await _rows() == (0, 0)


async def test_signed_deep_xml_is_400_not_500(mp: MPEnv) -> None:
    xml = ("<xml><ToUserName>gh_x</ToUserName><FromUserName>" + OPENID + "</FromUserName><MsgType>text</MsgType>"
           "<Content>" + "<a>" * 990 + "</a>" * 990 + "</Content></xml>")
    params, body = mp.driver.signed_params(xml)
    r = await mp.driver.post_raw(body, params)
    assert (r.status_code, r.text) == (400, "too_deep")
    assert await _rows() == (0, 0)


@pytest.mark.parametrize("field", ["MsgId", "FromUserName"])
async def test_signed_callback_with_a_300_character_id_is_400(mp: MPEnv, field: str) -> None:
    xml = _text_xml(msg_id="x" * 300) if field == "MsgId" else _text_xml().replace(OPENID, "o" * 300)
    params, body = mp.driver.signed_params(xml)
    r = await mp.driver.post_raw(body, params)
    assert (r.status_code, r.text) == (400, "field_too_long")
    assert await _rows() == (0, 0)


def test_long_dedupe_keys_are_hashed_not_truncated() -> None:
    from app.channels.models import DEDUPE_KEY_LENGTH, bounded_dedupe_key
    from app.channels.wechat_mp.inbound import dedupe_key

    fields = {"MsgType": "event", "Event": "CLICK", "FromUserName": "o" * 128, "CreateTime": "1700000000",
              "EventKey": "K" * 40}
    a = dedupe_key("wx1234567890abcdef", fields)
    b = dedupe_key("wx1234567890abcdef", {**fields, "FromUserName": "o" * 127 + "p"})
    assert len(a) <= DEDUPE_KEY_LENGTH and len(b) <= DEDUPE_KEY_LENGTH and a != b
    assert bounded_dedupe_key("short") == "short"
