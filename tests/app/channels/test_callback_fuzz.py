"""Seeded fuzz of the three callback URLs: whatever arrives, signed or not, the answer is never a 5xx and nothing
raises out of the app (httpx's ASGI transport re-raises any unhandled exception, failing the example).

Bounded and derandomized (the same examples every run, no time limit), so it is fast and never flaky.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Secret

from app.channels.wechat_mp import accounts
from app.settings import Settings, WeComSettings, set_settings
from app.timeutil import set_clock
from simulator import crypto

NOW = 1700000000
MP_TOKEN, MP_KEY, MP_APPID = "fuzztoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxfuzz0000000001"
WC_TOKEN, WC_KEY, WC_CORP = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwfuzz0000000001"
PATHS = ("/callbacks/wechat", "/callbacks/wecom/app", "/callbacks/wecom/contacts")
TAGS = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event", "EventKey", "AgentID",
        "ChangeType", "UserID", "ExternalUserID", "Token", "OpenKfId", "MediaId", "ApprovalInfo", "Encrypt", "a")
MSG_TYPES = ("text", "image", "event", "voice", "location", "link", "bogus", "")
_nonces = itertools.count(1)


@pytest.fixture
async def desk(db: None, settings: Settings, jobs: object) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    wecom = WeComSettings(corp_id=WC_CORP, agent_id="1000002", agent_secret=Secret("x"), token=Secret(WC_TOKEN),
                          aes_key=Secret(WC_KEY), contact_token=Secret(WC_TOKEN), contact_aes_key=Secret(WC_KEY))
    s = settings.with_overrides(wecom=wecom)
    set_settings(s)
    accounts.forget_cache()
    await accounts.upsert_account(key="default", name="模糊测试号", appid=MP_APPID, secret="x" * 20, token=MP_TOKEN,
                                  aes_key=MP_KEY, is_default=True)
    set_clock(lambda: datetime.fromtimestamp(NOW, UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s, run_jobs=False)),
                                 base_url="http://desk") as client:
        yield client
    set_clock(None)
    accounts.forget_cache()


def _element(tag: str, inner: str) -> str:
    return f"<{tag}>{inner}</{tag}>"


_leaf = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40).map(lambda t: f"<![CDATA[{t}]]>"),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(MSG_TYPES),
    st.text(alphabet="ox0123456789", min_size=100, max_size=400),  # over-long ids
)
_nested = st.recursive(
    _leaf,
    lambda children: st.lists(st.tuples(st.sampled_from(TAGS), children), max_size=4).map(
        lambda items: "".join(_element(tag, inner) for tag, inner in items)),
    max_leaves=12,
)
_xml = st.lists(st.tuples(st.sampled_from(TAGS), _nested), max_size=10).map(
    lambda items: "<xml>" + "".join(_element(tag, inner) for tag, inner in items) + "</xml>")
_depth = st.one_of(st.sampled_from((30, 31, 32, 33, 990, 5000)), st.integers(min_value=1, max_value=3000))
_deep = st.tuples(_depth, st.sampled_from(("a", "Content", "xml"))).map(
    lambda d: "<xml>" + f"<{d[1]}>" * d[0] + f"</{d[1]}>" * d[0] + "</xml>")
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(TAGS), c, max_size=5),
                     max_leaves=15).map(json.dumps)
_deep_json = _depth.map(lambda n: '{"MsgType": "text", "X": ' + "[" * n + "]" * n + "}")
_plaintext = st.one_of(_xml, _deep, _json, _deep_json, st.text(max_size=200),
                       st.sampled_from(['<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
                                        "<xml><MsgType>text</MsgType></xml", "", "{", "[]", "<xml/>"]))
_params = st.dictionaries(
    st.sampled_from(("timestamp", "nonce", "signature", "msg_signature", "encrypt_type", "openid", "echostr")),
    st.one_of(st.text(max_size=30), st.sampled_from((str(NOW), "aes", "raw", "", "9" * 30))), max_size=6)


def _signed(path: str, plaintext: str, *, wrong_receiver: bool) -> tuple[dict[str, str], bytes]:
    """Encrypt and sign ``plaintext`` exactly as the platform would, so the inner parser is what is fuzzed."""
    mp = path == "/callbacks/wechat"
    token, key, receiver = (MP_TOKEN, MP_KEY, MP_APPID) if mp else (WC_TOKEN, WC_KEY, WC_CORP)
    encrypt = crypto.encrypt(key, "wxSomebodyElse00000" if wrong_receiver else receiver,
                             plaintext.encode("utf-8", "surrogatepass"))
    ts, nonce = str(NOW), str(next(_nonces))
    params = {"timestamp": ts, "nonce": nonce, "msg_signature": crypto.sign(token, ts, nonce, encrypt)}
    if mp:
        params.update(encrypt_type="aes", signature=crypto.sign(token, ts, nonce))
    body = f"<xml><ToUserName><![CDATA[{receiver}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return params, body.encode()


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(path=st.sampled_from(PATHS), plaintext=_plaintext, how=st.sampled_from(("signed", "raw", "wrong_receiver")),
       params=_params)
async def test_callbacks_never_answer_5xx(desk: httpx.AsyncClient, path: str, plaintext: str, how: str,
                                          params: dict[str, str]) -> None:
    if how == "raw":
        body = plaintext.encode("utf-8", "surrogatepass")
    else:
        params, body = _signed(path, plaintext, wrong_receiver=how == "wrong_receiver")
    r = await desk.post(path, params=params, content=body)
    assert r.status_code < 500, (path, how, r.status_code, r.text)
