"""Callback verification and decryption against the official vectors (docs/wechat-protocols.md §1.4) and attacks."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from app.errors import CallbackRejected, ConfigError
from app.wecom.callback import (
    CallbackCredentials,
    encrypt_mp_reply,
    encrypt_wecom_reply,
    open_mp_callback,
    open_wecom_callback,
    parse_xml,
    verify_mp_echo,
    verify_wecom_echo,
)
from simulator import MPAccount, SimulatorState, WeChatDriver
from simulator import crypto as simcrypto
from simulator.mp.xml import parse_xml as sim_parse_xml

WINDOW = 300

# -- M1: MP official sample (Tencent WXBizMsgCrypt Sample.py), compatibility-mode body --------------------------
M1 = CallbackCredentials(
    token="spamtest", aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", receive_id="wx2c2769f8efd9abc2"
)
M1_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9"
    "FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3y"
    "t+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v"
    "6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
M1_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]>"
    "</FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]>"
    "</Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[" + M1_ENCRYPT + "]]></Encrypt></xml>"
)
M1_PARAMS = {
    "signature": "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a",
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "encrypt_type": "aes",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
}
M1_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
)
M1_NOW = 1409735669.0

# -- M2: MP 消息推送 pages, token AAAAA ------------------------------------------------------------------------------
M2 = CallbackCredentials(token="AAAAA", aes_key="A" * 43, receive_id="wxba5fad812f8e6fb9")
#: the same account in plain mode (no EncodingAESKey configured)
M2_PLAIN = CallbackCredentials(token="AAAAA", aes_key=None, receive_id="wxba5fad812f8e6fb9")
M2C_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR"
    "8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km"
    "32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)
M2C_JSON = (
    '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,'
    '"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)

# -- V1: WeCom official worked example (path/90968), token QDG6eK ----------------------------------------------------
V1 = CallbackCredentials(
    token="QDG6eK", aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", receive_id="wx5823bf96d3bd56c7"
)
V1A_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3"
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs"
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUa"
    "x5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIG"
    "HBZZIs2pDBS8R07+qN+E7Q=="
)
V1A_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["
    + V1A_ENCRYPT
    + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
)
V1A_PARAMS = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
}
V1A_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)
# the query string exactly as it arrives on the wire (echostr percent-encoded)
V1B_QUERY = (
    "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr="
    "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
)

# -- V4: wechatpy's own test vectors, token 123456 -------------------------------------------------------------------
V4 = CallbackCredentials(
    token="123456", aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", receive_id="wx49f0ab532d5d035a"
)
V4_ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
V4_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6y"
    "dJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/T"
    "ywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5"
    "t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
V4_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesE"
    "l5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsD"
    "f03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nT"
    "YjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
    "<xml><Content>&lol4;</Content></xml>"
)
EXTERNAL_ENTITY = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'


def rejected(excinfo: pytest.ExceptionInfo[CallbackRejected], reason: str, status: int) -> None:
    assert (excinfo.value.reason, excinfo.value.status_code) == (reason, status)


# -- MP vectors ---------------------------------------------------------------------------------------------------


def test_m1_compat_mode_decrypts_the_official_sample() -> None:
    envelope = open_mp_callback(M1, M1_PARAMS, M1_BODY.encode(), now=M1_NOW, window_seconds=WINDOW)
    assert envelope.xml == M1_PLAINTEXT
    assert envelope.encrypted is True
    assert envelope.key_used == "current"
    assert envelope.fields == {
        "ToUserName": "gh_10f6c3c3ac5a",
        "FromUserName": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        "CreateTime": "1409735668",
        "MsgType": "text",
        "Content": "abcdteT",
        "MsgId": "6054768590064713728",
    }


def test_m1_plain_signature_checks_when_encrypt_type_is_absent_and_plain_is_allowed() -> None:
    params = {k: M1_PARAMS[k] for k in ("signature", "timestamp", "nonce")}
    allowed = CallbackCredentials(token=M1.token, aes_key=M1.aes_key, receive_id=M1.receive_id, accept_plain=True)
    envelope = open_mp_callback(allowed, params, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    assert envelope.encrypted is False and envelope.key_used is None
    assert envelope.fields["Content"] == "abcdteT"
    assert envelope.fields["MsgId"] == "6054768590064713728"


def test_forged_plain_callback_to_an_account_with_an_aes_key_is_refused() -> None:
    # Issue 11: the safe-mode URL's signature covers only token, timestamp and nonce; dropping encrypt_type and
    # posting any plaintext body (any openid, any text) used to be accepted as plain mode.
    params = {k: M1_PARAMS[k] for k in ("signature", "timestamp", "nonce")}
    forged = M1_BODY.replace("abcdteT", "退款给我").replace("oyORnuP8q7ou2gfYjqLzSIWZf0rs", "oVictim")
    for variant in (params, {**params, "encrypt_type": "raw"}, {**params, "encrypt_type": ""}):
        with pytest.raises(CallbackRejected) as excinfo:
            open_mp_callback(M1, variant, forged, now=M1_NOW, window_seconds=WINDOW)
        rejected(excinfo, "encryption_required", 403)
    assert M1.plain_allowed is False
    assert CallbackCredentials(token="t", aes_key=None, receive_id="wx1").plain_allowed is True


def test_m2a_url_verification_returns_echostr_verbatim() -> None:
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "echostr": "4375120948345356249",
        "timestamp": "1714036504",
        "nonce": "1514711492",
    }
    assert verify_mp_echo(M2, params, now=1714036504) == "4375120948345356249"


def test_m2b_plain_post_signature() -> None:
    params = {"signature": "899cf89e464efb63f54ddac96b0a0a235f53aa78", "timestamp": "1714037059", "nonce": "486452656"}
    body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType></xml>"
    envelope = open_mp_callback(M2_PLAIN, params, body.encode(), now=1714037059, window_seconds=WINDOW)
    assert envelope.fields == {"ToUserName": "gh_1", "FromUserName": "o1", "MsgType": "text"}
    assert envelope.xml == body


def test_m2c_safe_mode_json_body_is_decrypted_and_flattened() -> None:
    body = (
        f"<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[{M2C_ENCRYPT}]]></Encrypt></xml>"
    )
    params = {
        "timestamp": "1714112445",
        "nonce": "415670741",
        "encrypt_type": "aes",
        "msg_signature": "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
    }
    envelope = open_mp_callback(M2, params, body.encode(), now=1714112445, window_seconds=WINDOW)
    assert envelope.xml == M2C_JSON
    assert envelope.fields["CreateTime"] == "1714112445"
    assert envelope.fields["Event"] == "debug_demo"
    assert envelope.fields["debug_str"] == "hello world"


# -- WeCom vectors --------------------------------------------------------------------------------------------------


def test_v1a_wecom_post_decrypts_byte_for_byte() -> None:
    envelope = open_wecom_callback(V1, V1A_PARAMS, V1A_BODY.encode(), now=1409659813, window_seconds=WINDOW)
    assert envelope.xml == V1A_PLAINTEXT  # pad byte 30: a 16-byte PKCS#7 unpadder would reject this vector
    assert envelope.fields["MsgId"] == "4561255354251345929"
    assert envelope.fields["Content"] == "hello"
    assert envelope.outer == {"ToUserName": "wx5823bf96d3bd56c7", "AgentID": "218"}
    assert envelope.agent_id == "218"


def test_v1b_wecom_url_verification_from_the_wire_query() -> None:
    params = QueryParams(V1B_QUERY)  # percent-decoded once, as starlette does
    assert params["echostr"].endswith("+FZXvnaqQ==")
    assert verify_wecom_echo(V1, params, now=1409659589) == "1616140317555161061"


def test_v1b_unencoded_plus_that_became_a_space_is_restored() -> None:
    raw = V1B_QUERY.replace("%2B", "+")  # a sender that forgot to percent-encode '+'
    params = QueryParams(raw)
    assert " " in params["echostr"]
    assert verify_wecom_echo(V1, params, now=1409659589) == "1616140317555161061"


def test_v4_wecom_echo_and_wrong_nonce() -> None:
    params = {
        "msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "timestamp": "1411443780",
        "nonce": "437374425",
        "echostr": V4_ECHO,
    }
    assert verify_wecom_echo(V4, params, now=1411443780) == "5927782489442352469"
    with pytest.raises(CallbackRejected) as excinfo:
        verify_wecom_echo(V4, {**params, "nonce": "437374424"}, now=1411443780)
    rejected(excinfo, "bad_signature", 403)


def test_v4_wecom_post_decrypts() -> None:
    body = (
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA["
        + V4_ENCRYPT
        + "]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"
    )
    params = {
        "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        "timestamp": "1411525903",
        "nonce": "461056294",
    }
    envelope = open_wecom_callback(V4, params, body, now=1411525903, window_seconds=WINDOW)
    assert envelope.fields["Content"] == "test"
    assert envelope.fields["FromUserName"] == "messense"
    assert envelope.fields["AgentID"] == "1"


def test_v4_wecom_reply_encrypts_byte_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wechatpy.crypto.base.BasePrpCrypto.get_random_string", lambda self: "1234567890123456")
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
        "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    encrypted = encrypt_wecom_reply(V4, reply, nonce="461056294", timestamp="1411525903")
    fields = parse_xml(encrypted)
    assert fields["Encrypt"] == V4_REPLY_ENCRYPT
    assert fields["MsgSignature"] == "407518b7649e86ef23978113f92d27afa9296533"
    assert (fields["TimeStamp"], fields["Nonce"]) == ("1411525903", "461056294")


# -- rejections -----------------------------------------------------------------------------------------------------


def test_wrong_signature_is_403_and_names_no_secret() -> None:
    params = {**M1_PARAMS, "msg_signature": "0" * 40}
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, params, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "bad_signature", 403)
    assert M1.token not in str(excinfo.value) and str(M1.aes_key) not in str(excinfo.value)


def test_missing_signature_is_403() -> None:
    params = {k: v for k, v in M1_PARAMS.items() if k != "msg_signature"}
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, params, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "bad_signature", 403)


@pytest.mark.parametrize("skew", [WINDOW + 1, -(WINDOW + 1)])
def test_stale_timestamp_is_403(skew: int) -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, M1_PARAMS, M1_BODY, now=M1_NOW + skew, window_seconds=WINDOW)
    rejected(excinfo, "stale_timestamp", 403)
    with pytest.raises(CallbackRejected) as excinfo:
        verify_wecom_echo(V1, QueryParams(V1B_QUERY), now=1409659589 + skew, window_seconds=WINDOW)
    rejected(excinfo, "stale_timestamp", 403)


def test_edge_of_window_is_accepted() -> None:
    envelope = open_mp_callback(M1, M1_PARAMS, M1_BODY, now=M1_NOW + WINDOW, window_seconds=WINDOW)
    assert envelope.fields["MsgType"] == "text"


def test_non_numeric_timestamp_is_400() -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, {**M1_PARAMS, "timestamp": "14097x5669"}, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "bad_timestamp", 400)


def test_missing_nonce_is_400() -> None:
    params = {k: v for k, v in M1_PARAMS.items() if k != "nonce"}
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, params, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "missing_parameter", 400)


def test_unsupported_encrypt_type_is_400() -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M1, {**M1_PARAMS, "encrypt_type": "des"}, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "unsupported_encrypt_type", 400)


def _plain_params(creds: CallbackCredentials, timestamp: int = 1700000000) -> dict[str, str]:
    ts, nonce = str(timestamp), "12345"
    return {"signature": simcrypto.sign(creds.token, ts, nonce), "timestamp": ts, "nonce": nonce}


def _aes_params(creds: CallbackCredentials, encrypt: str, timestamp: int = 1700000000) -> dict[str, str]:
    ts, nonce = str(timestamp), "67890"
    return {
        "signature": simcrypto.sign(creds.token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": simcrypto.sign(creds.token, ts, nonce, encrypt),
    }


@pytest.mark.parametrize("body", ["<xml><Content>hi</Content>", "not xml at all", "", "<xml><a></b></xml>", "[1, 2]"])
def test_malformed_body_is_400(body: str) -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2_PLAIN, _plain_params(M2), body.encode(), now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "malformed_body", 400)


def test_non_utf8_body_is_400() -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2_PLAIN, _plain_params(M2), b"<xml>\xff\xfe</xml>", now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "malformed_body", 400)


def test_oversized_body_is_413() -> None:
    body = b"<xml><Content>" + b"a" * 70_000 + b"</Content></xml>"
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2_PLAIN, _plain_params(M2), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "body_too_large", 413)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion_laughs", "external_entity"])
def test_xml_bombs_and_external_entities_are_refused(body: str) -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2_PLAIN, _plain_params(M2), body.encode(), now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "forbidden_xml", 400)
    with pytest.raises(CallbackRejected) as excinfo:
        parse_xml(body)
    rejected(excinfo, "forbidden_xml", 400)


@pytest.mark.parametrize("body", [
    '<!DOCTYPE xml><xml><Content>hi</Content></xml>',
    '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><Content>hi</Content></xml>',
    '<!DOCTYPE xml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><xml/>',
], ids=["bare", "external_dtd", "parameter_entity"])
def test_any_document_type_declaration_is_refused(body: str) -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        parse_xml(body)
    rejected(excinfo, "forbidden_xml", 400)


def test_undeclared_entities_are_malformed_and_cdata_and_predefined_entities_parse() -> None:
    with pytest.raises(CallbackRejected) as excinfo:
        parse_xml("<xml><Content>&e;</Content></xml>")
    rejected(excinfo, "malformed_body", 400)
    assert parse_xml("<xml><A><![CDATA[<!DOCTYPE x>&e;]]></A><B>a &lt;&amp;&#20320; b</B></xml>") == {
        "A": "<!DOCTYPE x>&e;", "B": "a <&你 b"}


def test_entities_inside_the_encrypted_payload_are_refused_too() -> None:
    encrypt = simcrypto.encrypt(str(M2.aes_key), M2.receive_id, EXTERNAL_ENTITY.encode())
    body = f"<xml><ToUserName>gh_1</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2, _aes_params(M2, encrypt), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "forbidden_xml", 400)


def test_missing_encrypt_is_400() -> None:
    body = "<xml><ToUserName>gh_1</ToUserName><Content>hi</Content></xml>"
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2, _aes_params(M2, ""), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "missing_encrypt", 400)
    with pytest.raises(CallbackRejected) as excinfo:
        open_wecom_callback(V1, _aes_params(V1, ""), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "missing_encrypt", 400)


@pytest.mark.parametrize("encrypt", ["@@not*base64@@", "YWJj", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"])
def test_bad_base64_is_400(encrypt: str) -> None:
    body = f"<xml><Encrypt>{encrypt}</Encrypt></xml>"
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2, _aes_params(M2, encrypt), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "bad_base64", 400)


def test_wrong_appid_is_400() -> None:
    other = CallbackCredentials(token=M1.token, aes_key=M1.aes_key, receive_id="wx0000000000000000")
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(other, M1_PARAMS, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    rejected(excinfo, "wrong_receiver", 400)


def test_wrong_corpid_is_400() -> None:
    other = CallbackCredentials(token=V1.token, aes_key=V1.aes_key, receive_id="ww0000000000000000")
    with pytest.raises(CallbackRejected) as excinfo:
        open_wecom_callback(other, V1A_PARAMS, V1A_BODY, now=1409659813, window_seconds=WINDOW)
    rejected(excinfo, "wrong_receiver", 400)


def test_wrong_key_without_fallback_is_400() -> None:
    other = CallbackCredentials(token=M1.token, aes_key="B" * 43, receive_id=M1.receive_id)
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(other, M1_PARAMS, M1_BODY, now=M1_NOW, window_seconds=WINDOW)
    assert excinfo.value.status_code == 400
    assert excinfo.value.reason in ("decrypt_failed", "wrong_receiver")


def test_encrypted_callback_without_a_configured_key_is_a_config_error() -> None:
    creds = CallbackCredentials(token=M1.token, aes_key=None, receive_id=M1.receive_id)
    with pytest.raises(ConfigError):
        open_mp_callback(creds, M1_PARAMS, M1_BODY, now=M1_NOW, window_seconds=WINDOW)


def test_malformed_aes_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CallbackCredentials(token="t", aes_key="short", receive_id="wx1")


def test_credentials_repr_hides_secrets() -> None:
    text = repr(M1)
    assert M1.token not in text and str(M1.aes_key) not in text and M1.receive_id in text


# -- key rotation and passive replies ---------------------------------------------------------------------------------

OLD_KEY = "oldKEYoldKEYoldKEYoldKEYoldKEYoldKEYoldKEY1"
NEW_KEY = "newKEYnewKEYnewKEYnewKEYnewKEYnewKEYnewKEY2"
ROTATED = CallbackCredentials(token="rot", aes_key=NEW_KEY, receive_id="wxrotation000001", previous_aes_key=OLD_KEY)


def test_message_encrypted_with_the_previous_key_decrypts_and_says_so() -> None:
    xml = (
        "<xml><FromUserName><![CDATA[o1]]></FromUserName><MsgType><![CDATA[text]]></MsgType><Content>旧</Content></xml>"
    )
    encrypt = simcrypto.encrypt(OLD_KEY, ROTATED.receive_id, xml.encode())
    body = f"<xml><ToUserName>gh_1</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    envelope = open_mp_callback(ROTATED, _aes_params(ROTATED, encrypt), body, now=1700000000, window_seconds=WINDOW)
    assert envelope.key_used == "previous"
    assert envelope.fields["Content"] == "旧"

    encrypt = simcrypto.encrypt(NEW_KEY, ROTATED.receive_id, xml.encode())
    body = f"<xml><ToUserName>gh_1</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    envelope = open_mp_callback(ROTATED, _aes_params(ROTATED, encrypt), body, now=1700000000, window_seconds=WINDOW)
    assert envelope.key_used == "current"


def test_passive_reply_is_encrypted_with_the_key_that_worked() -> None:
    reply = "<xml><ToUserName><![CDATA[o1]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content>好</Content></xml>"
    out = encrypt_mp_reply(ROTATED, reply, nonce="555", timestamp=1700000001, key="previous")
    fields = parse_xml(out)
    assert fields["MsgSignature"] == simcrypto.sign(ROTATED.token, "1700000001", "555", fields["Encrypt"])
    # decrypted by the simulator's independent implementation
    assert simcrypto.decrypt(OLD_KEY, fields["Encrypt"]) == (reply.encode(), ROTATED.receive_id)


# -- through the simulator's driver (real signed callbacks in every mode) ------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_driver_signed_callbacks_open_in_every_mode(mode: str) -> None:
    state = SimulatorState(template_job_finish=False)
    account = state.add_mp_account(MPAccount(appid="wxdriver00000001", secret="s", token="tok", aes_key=NEW_KEY))
    # plain mode only reaches an account configured to accept it (issue 11)
    creds = CallbackCredentials(token=account.token, aes_key=account.aes_key, receive_id=account.appid,
                                accept_plain=mode == "plain")
    driver = WeChatDriver(state, account)
    xml = driver.message_xml("oUser1", "text", [("Content", "你好 <b>&")], with_msg_id=True)
    params, body = driver.signed_params(xml, mode)  # type: ignore[arg-type]
    envelope = open_mp_callback(creds, params, body, now=float(params["timestamp"]), window_seconds=WINDOW)
    assert envelope.xml == xml
    assert envelope.encrypted is (mode != "plain")
    assert envelope.fields["Content"] == "你好 <b>&"
    msg_id = sim_parse_xml(xml).findtext("MsgId")
    assert envelope.fields["MsgId"] == msg_id and int(msg_id or 0) > 2**62  # kept as a string, 64-bit safe

    reply = "<xml><ToUserName><![CDATA[oUser1]]></ToUserName><MsgType><![CDATA[text]]></MsgType></xml>"
    out = encrypt_mp_reply(creds, reply, nonce="1", timestamp=params["timestamp"], key=envelope.key_used or "current")
    assert simcrypto.decrypt(account.aes_key, parse_xml(out)["Encrypt"]) == (reply.encode(), account.appid)


# -- parse_xml --------------------------------------------------------------------------------------------------------


def test_parse_xml_accepts_cdata_or_not_and_newlines_or_not() -> None:
    with_cdata = "<xml><ToUserName><![CDATA[a]]></ToUserName><MsgId>18446744073709551615</MsgId></xml>"
    bare = "<xml>\n  <ToUserName>a</ToUserName>\n  <MsgId>18446744073709551615</MsgId>\n</xml>\n"
    assert parse_xml(with_cdata) == parse_xml(bare) == {"ToUserName": "a", "MsgId": "18446744073709551615"}


def test_parse_xml_keeps_strings_and_nested_xml() -> None:
    text = (
        "<xml><MsgId>CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==</MsgId><Empty></Empty><Content><![CDATA[ 空格 ]]></Content>"
        "<ApprovalInfo><SpNo>202205260001</SpNo><SpStatus>1</SpStatus></ApprovalInfo></xml>"
    )
    fields = parse_xml(text)
    assert fields["MsgId"] == "CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw=="
    assert fields["Empty"] == ""
    assert fields["Content"] == " 空格 "
    assert parse_xml(fields["ApprovalInfo"]) == {"SpNo": "202205260001", "SpStatus": "1"}


def test_compat_mode_trusts_only_the_encrypted_copy() -> None:
    tampered = M1_BODY.replace("<![CDATA[abcdteT]]>", "<![CDATA[forged]]>")
    envelope = open_mp_callback(M1, M1_PARAMS, tampered, now=M1_NOW, window_seconds=WINDOW)
    assert envelope.fields["Content"] == "abcdteT"


# -- issue 11: nesting depth and field lengths ------------------------------------------------------------------------

DEEP = "<a>" * 5000 + "</a>" * 5000


def _deep_plaintext(levels: int) -> str:
    return "<xml><MsgType>text</MsgType><X>" + "<a>" * levels + "</a>" * levels + "</X></xml>"


def test_deeply_nested_xml_is_refused_before_any_signature_check() -> None:
    # used to raise RecursionError (ElementTree serialises nested elements recursively): a 500 on every URL
    with pytest.raises(CallbackRejected) as excinfo:
        parse_xml(DEEP)
    rejected(excinfo, "too_deep", 400)
    for params in ({}, _aes_params(M2, "x")):  # unsigned: refused by the depth limit, not a crash
        with pytest.raises(CallbackRejected) as excinfo:
            open_mp_callback(M2, {**params, "encrypt_type": "aes"}, DEEP, now=1700000000, window_seconds=WINDOW)
        rejected(excinfo, "too_deep", 400)
        with pytest.raises(CallbackRejected) as excinfo:
            open_wecom_callback(V1, params, DEEP, now=1700000000, window_seconds=WINDOW)
        rejected(excinfo, "too_deep", 400)


@pytest.mark.parametrize("platform", ["mp", "wecom"])
def test_deep_nesting_inside_a_correctly_signed_encrypted_body_is_refused(platform: str) -> None:
    creds = M2 if platform == "mp" else V1
    encrypt = simcrypto.encrypt(str(creds.aes_key), creds.receive_id, _deep_plaintext(990).encode())
    body = f"<xml><ToUserName>gh_1</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    opener = open_mp_callback if platform == "mp" else open_wecom_callback
    with pytest.raises(CallbackRejected) as excinfo:
        opener(creds, _aes_params(creds, encrypt), body, now=1700000000, window_seconds=WINDOW)  # type: ignore[operator]
    rejected(excinfo, "too_deep", 400)


def test_deep_json_body_is_refused_before_decoding() -> None:
    text = '{"MsgType": "text", "X": ' + "[" * 5000 + "]" * 5000 + "}"
    encrypt = simcrypto.encrypt(str(M2.aes_key), M2.receive_id, text.encode())
    body = f"<xml><Encrypt>{encrypt}</Encrypt></xml>"
    with pytest.raises(CallbackRejected) as excinfo:
        open_mp_callback(M2, _aes_params(M2, encrypt), body, now=1700000000, window_seconds=WINDOW)
    rejected(excinfo, "too_deep", 400)
    # brackets inside strings are not nesting
    assert parse_xml("<xml><A>[[[[</A></xml>") == {"A": "[[[["}


def test_real_nesting_depth_still_parses() -> None:
    approval = ("<xml><MsgType>event</MsgType><ApprovalInfo><SpNo>1</SpNo><SpRecord><Details><Approver><UserId>u1"
                "</UserId></Approver></Details></SpRecord></ApprovalInfo></xml>")
    fields = parse_xml(approval)
    assert parse_xml(fields["ApprovalInfo"])["SpNo"] == "1"
    assert parse_xml(_deep_plaintext(30))["MsgType"] == "text"  # 32 levels with <xml> and <X>


@pytest.mark.parametrize("name", ["MsgId", "FromUserName"])
def test_overlong_identifier_in_a_signed_callback_is_refused(name: str) -> None:
    # 300 characters used to pass, overflow the 191-character dedupe key (500) or be retried 8 times and dead-lettered
    values = {"FromUserName": "oUser1", "MsgId": "1", name: "x" * 300}
    xml = (f"<xml><ToUserName>gh_1</ToUserName><FromUserName>{values['FromUserName']}</FromUserName>"
           f"<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
           f"<MsgId>{values['MsgId']}</MsgId></xml>")
    for creds, opener in ((M2, open_mp_callback), (V1, open_wecom_callback)):
        encrypt = simcrypto.encrypt(str(creds.aes_key), creds.receive_id, xml.encode())
        body = f"<xml><ToUserName>gh_1</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
        with pytest.raises(CallbackRejected) as excinfo:
            opener(creds, _aes_params(creds, encrypt), body, now=1700000000, window_seconds=WINDOW)  # type: ignore[operator]
        rejected(excinfo, "field_too_long", 400)
    # a long free-text field is fine
    long_text = xml.replace("x" * 300, "1").replace("<Content>hi</Content>", f"<Content>{'好' * 2000}</Content>")
    assert len(parse_xml(long_text)["Content"]) == 2000
