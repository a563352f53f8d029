"""simulator.crypto against the official vectors (docs/wechat-protocols.md §1.4) and against wechatpy."""

from __future__ import annotations

import pytest
from wechatpy.crypto import WeChatCrypto

from simulator import crypto

# V1: WeCom official worked example (document/path/90968), token QDG6eK
V1_TOKEN = "QDG6eK"
V1_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
V1_RECEIVEID = "wx5823bf96d3bd56c7"
V1A_TIMESTAMP = "1409659813"
V1A_NONCE = "1372623149"
V1A_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
V1A_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs"
    "3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf"
    "5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4Ehz"
    "JWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
V1A_PLAINTEXT = (
    b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    b"<CreateTime>1409659813</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n"
    b"<Content><![CDATA[hello]]></Content>\n"
    b"<MsgId>4561255354251345929</MsgId>\n"
    b"<AgentID>218</AgentID>\n"
    b"</xml>"
)
V1B_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
V1B_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"

# M1: MP official sample (WXBizMsgCrypt Sample.py), token spamtest
M1_TOKEN = "spamtest"
M1_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
M1_APPID = "wx2c2769f8efd9abc2"
M1_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrX"
    "pbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzj"
    "lpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1"
    "BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
M1_PLAINTEXT = (
    b"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    b"<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    b"<CreateTime>1409735668</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n"
    b"<Content><![CDATA[abcdteT]]></Content>\n"
    b"<MsgId>6054768590064713728</MsgId>\n"
    b"</xml>"
)

# M2c: MP 消息推送 page, token AAAAA, key "A"*43
M2C_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnn"
    "R8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2k"
    "m32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)


def test_v1a_encrypt_is_byte_exact_and_signed() -> None:
    encrypted = crypto.encrypt(V1_KEY, V1_RECEIVEID, V1A_PLAINTEXT, rand16=b"0960688932c47ef1")
    assert encrypted == V1A_ENCRYPT
    assert crypto.sign(V1_TOKEN, V1A_TIMESTAMP, V1A_NONCE, encrypted) == V1A_SIGNATURE


def test_v1a_decrypt_uses_32_byte_padding() -> None:
    msg, receiveid = crypto.decrypt(V1_KEY, V1A_ENCRYPT)
    assert msg == V1A_PLAINTEXT
    assert receiveid == V1_RECEIVEID


def test_v1b_echostr() -> None:
    assert crypto.sign(V1_TOKEN, "1409659589", "263014780", V1B_ECHOSTR) == V1B_SIGNATURE
    msg, receiveid = crypto.decrypt(V1_KEY, V1B_ECHOSTR)
    assert msg == b"1616140317555161061"
    assert receiveid == V1_RECEIVEID


def test_m1_mp_sample() -> None:
    assert crypto.sign(M1_TOKEN, "1409735669", "1320562132", M1_ENCRYPT) == "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    assert crypto.sign(M1_TOKEN, "1409735669", "1320562132") == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    msg, appid = crypto.decrypt(M1_KEY, M1_ENCRYPT)
    assert msg == M1_PLAINTEXT
    assert appid == M1_APPID


def test_m2c_safe_mode_json() -> None:
    assert crypto.sign("AAAAA", "1714112445", "415670741", M2C_ENCRYPT) == "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
    msg, appid = crypto.decrypt("A" * 43, M2C_ENCRYPT)
    assert appid == "wxba5fad812f8e6fb9"
    assert msg == (
        b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,'
        b'"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
    )


def test_m2a_plain_signature() -> None:
    assert crypto.sign("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"


@pytest.mark.parametrize("size", [0, 1, 11, 12, 43, 44, 1000])
def test_round_trip_counts_utf8_bytes(size: int) -> None:
    msg = ("你好" * size).encode()
    encrypted = crypto.encrypt(M1_KEY, M1_APPID, msg)
    assert crypto.decrypt(M1_KEY, encrypted) == (msg, M1_APPID)


def test_malformed_inputs_raise_crypto_error() -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(M1_KEY, "not base64 !!")
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(M1_KEY, "QUJD")  # 3 bytes: not a whole AES block
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt("A" * 43, M1_ENCRYPT)  # wrong key → garbage padding
    with pytest.raises(crypto.CryptoError):
        crypto.encrypt("short", M1_APPID, b"x")


def test_simulator_ciphertext_decrypts_with_wechatpy() -> None:
    xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Content><![CDATA[工单 #42]]></Content></xml>"
    encrypted = crypto.encrypt(M1_KEY, M1_APPID, xml.encode())
    signature = crypto.sign(M1_TOKEN, "1700000000", "123456", encrypted)
    body = f"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    decrypted = WeChatCrypto(M1_TOKEN, M1_KEY, M1_APPID).decrypt_message(body, signature, "1700000000", "123456")
    assert decrypted == xml


def test_wechatpy_reply_decrypts_with_simulator() -> None:
    reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[您好 <b>]]></Content></xml>"
    envelope = WeChatCrypto(M1_TOKEN, M1_KEY, M1_APPID).encrypt_message(reply, "98765", "1700000001")
    encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    signature = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    assert crypto.sign(M1_TOKEN, "1700000001", "98765", encrypted) == signature
    assert crypto.decrypt(M1_KEY, encrypted) == (reply.encode(), M1_APPID)
