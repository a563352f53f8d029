"""The simulator on a real port: wechatpy's MP client, TEMPLATESENDJOBFINISH callbacks, the /_sim/ API."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest
from receiver import Receiver
from simtestdata import AES_KEY, APPID, OPENID, SECRET, TOKEN
from wechatpy import WeChatClient, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException

from simulator import SimulatorServer, SimulatorState, WeChatDriver, build_demo_state
from simulator.server import UvicornThread


class SimWeChatClient(WeChatClient):  # type: ignore[misc]
    """wechatpy's MP client pointed at the simulator (its token URL is hard-coded, so override the fetch)."""

    def __init__(self, base_url: str, *args: Any, **kwargs: Any) -> None:
        self.API_BASE_URL = base_url
        super().__init__(*args, **kwargs)

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        return result


def test_wechatpy_client_sends_custom_and_template_messages(server: SimulatorServer, state: SimulatorState) -> None:
    client = SimWeChatClient(server.api_base_url, APPID, SECRET, auto_retry=False, timeout=5)
    state.mp.record_interaction(APPID, OPENID, "message")
    assert client.message.send_text(OPENID, "您好，客服小王为您服务") == {"errcode": 0, "errmsg": "ok"}
    result = client.message.send_template(OPENID, "TPL1", {"first": {"value": "工单已关闭"}}, url="https://d/t/1")
    assert result["errcode"] == 0 and result["msgid"] > 2**53
    [custom] = state.sent_messages(APPID, OPENID, kind="custom")
    assert custom.body == {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，客服小王为您服务"}}
    [template] = state.sent_messages(APPID, OPENID, kind="template")
    assert template.msgid == result["msgid"]
    assert template.body["data"] == {"first": {"value": "工单已关闭"}}
    assert state.token_fetch_count(APPID) == 1
    # wechatpy sends no Content-Type on its JSON POSTs; the simulator must not care
    [call] = state.api_calls_for("message/custom/send")
    assert call.errcode is None


def test_wechatpy_user_media_and_window_errors(server: SimulatorServer, state: SimulatorState) -> None:
    client = SimWeChatClient(server.api_base_url, APPID, SECRET, auto_retry=False, timeout=5)
    state.set_mp_user(APPID, OPENID, unionid="oUnionZ")
    assert client.user.get(OPENID)["unionid"] == "oUnionZ"
    uploaded = client.media.upload("image", ("reply.png", io.BytesIO(b"\x89PNGdata"), "image/png"))
    downloaded = client.media.download(uploaded["media_id"])
    assert downloaded.content == b"\x89PNGdata"
    with pytest.raises(WeChatClientException) as raised:
        client.message.send_text(OPENID, "outside the window")
    assert raised.value.errcode == 45015


def test_wechatpy_auto_retry_refetches_token_on_42001(server: SimulatorServer, state: SimulatorState) -> None:
    client = SimWeChatClient(server.api_base_url, APPID, SECRET, timeout=5)
    state.set_mp_user(APPID, OPENID)
    client.user.get(OPENID)
    state.inject_fault("user/info", {"errcode": 42001})
    assert client.user.get(OPENID)["openid"] == OPENID
    assert state.token_fetch_count(APPID) == 2


@pytest.mark.asyncio
async def test_template_send_job_finish_callback() -> None:
    receiver = Receiver()
    state = SimulatorState()
    state.mp.template_job_finish_delay = 0.05
    with UvicornThread(receiver.app()) as desk, SimulatorServer(state) as sim:
        state.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, callback_url=f"{desk.url}/callbacks/wechat")
        state.set_mp_user(APPID, OPENID)
        async with httpx.AsyncClient(base_url=sim.url, trust_env=False) as http:
            token = (
                await http.get(
                    "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
                )
            ).json()["access_token"]
            sent = await http.post(
                "/cgi-bin/message/template/send",
                params={"access_token": token},
                content=b'{"touser": "%s", "template_id": "T", "data": {}}' % OPENID.encode(),
            )
            msgid = sent.json()["msgid"]
            assert await asyncio.to_thread(receiver.arrived.wait, 3)
    [got] = receiver.requests
    xml = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        got.body, got.params["msg_signature"], got.params["timestamp"], got.params["nonce"]
    )
    event = parse_message(xml)
    assert event.event == "templatesendjobfinish"
    assert event.id == msgid and event.status == "success"


@pytest.mark.asyncio
async def test_admin_api_over_http(server: SimulatorServer, state: SimulatorState) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        assert (await http.get("/_sim/health")).json() == {"ok": True}
        await http.post("/_sim/mp/users", json={"appid": APPID, "openid": OPENID, "unionid": "u1"})
        state.mp.record_interaction(APPID, OPENID, "message")
        token = (
            await http.get(
                "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
            )
        ).json()["access_token"]
        for text in ("一", "二"):
            body = json.dumps({"touser": OPENID, "msgtype": "text", "text": {"content": text}}, ensure_ascii=False)
            await http.post("/cgi-bin/message/custom/send", params={"access_token": token}, content=body.encode())
        messages = (await http.get("/_sim/mp/messages", params={"appid": APPID, "touser": OPENID})).json()["messages"]
        assert [m["body"]["text"]["content"] for m in messages] == ["一", "二"]
        since = (await http.get("/_sim/mp/messages", params={"appid": APPID, "since_id": messages[0]["id"]})).json()[
            "messages"
        ]
        assert [m["body"]["text"]["content"] for m in since] == ["二"]
        assert (await http.get("/_sim/mp/token-stats")).json()[APPID]["fetches"] == 1
        before = (await http.get("/_sim/clock")).json()["now"]
        after = (await http.post("/_sim/clock/advance", json={"seconds": 49 * 3600})).json()["now"]
        assert after - before >= 49 * 3600
        late = await http.post(
            "/cgi-bin/message/custom/send",
            params={"access_token": token},
            content=json.dumps({"touser": OPENID, "msgtype": "text", "text": {"content": "x"}}).encode(),
        )
        assert late.json()["errcode"] == 42001  # the token expired too after 49 h
        await http.post("/_sim/faults", json={"path": "token", "fault": {"http_status": 503}})
        assert (
            await http.get(
                "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
            )
        ).status_code == 503
        assert (await http.post("/_sim/reset")).json() == {"ok": True}
        assert state.sent_messages() == [] and state.token_fetch_count(APPID) == 0
        assert (await http.get("/_sim/mp/accounts")).json()["accounts"][0]["appid"] == APPID
        assert "secret" not in (await http.get("/_sim/mp/accounts")).json()["accounts"][0]


def test_build_demo_state_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_APP_ID", "wxfromenv")
    monkeypatch.delenv("WECHAT_AES_KEY", raising=False)
    state = build_demo_state("http://127.0.0.1:8000/callbacks/wechat")
    account = state.mp_account("wxfromenv")
    assert account.mode == "safe" and account.token == "gongdandemo" and len(account.aes_key) == 43
    assert account.callback_url == "http://127.0.0.1:8000/callbacks/wechat"
    defaults = build_demo_state(None, appid="wx5ee1d0b5a1d2c3f4", mode="plain")
    assert defaults.mp_account("wx5ee1d0b5a1d2c3f4").secret == "demo-secret-0123456789abcdef"


@pytest.mark.asyncio
async def test_driver_against_real_desk_port_refused(state: SimulatorState) -> None:
    driver = WeChatDriver(state, state.mp_account(APPID), "http://127.0.0.1:9/callbacks/wechat", timeout=0.5)
    result = await driver.send_text(OPENID, "anyone?")
    assert [a.status_code for a in result.attempts] == [None] * 4
    assert result.customer_saw_error
