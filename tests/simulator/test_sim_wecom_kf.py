"""The simulator's 微信客服 (kf): sync_msg paging and tokens, send_msg rules, the session state machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from simulator import SimulatorState, create_simulator_app
from simulator.wecom.kf import KfState, kf_state
from simulator.wecom.orggen import add_default_apps

BASE = "/qyapi/cgi-bin/"
KFID = "wkTest0001"


@pytest.fixture
def sim() -> SimulatorState:
    state = SimulatorState()
    add_default_apps(state.wecom)
    kf_state(state).add_account(KFID, "客服一号")
    return state


@pytest_asyncio.fixture
async def call(sim: SimulatorState) -> AsyncIterator[Any]:
    transport = httpx.ASGITransport(app=create_simulator_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            # a token per call: tests move the clock by days
            r = await client.get(BASE + "gettoken", params={"corpid": sim.wecom.corp_id,
                                                            "corpsecret": "sim-agent-secret"})
            token = r.json()["access_token"]
            data: dict[str, Any] = (await client.post(BASE + path, params={"access_token": token}, json=body)).json()
            return data

        yield post


def _kf(sim: SimulatorState) -> KfState:
    return kf_state(sim)


def _text(to: str, msgid: str = "") -> dict[str, Any]:
    return {"touser": to, "open_kfid": KFID, "msgid": msgid, "msgtype": "text", "text": {"content": "您好"}}


async def test_sync_msg_pages_with_cursor_and_has_more(sim: SimulatorState, call: Any) -> None:
    for i in range(5):
        _kf(sim).customer_message(sim.clock.now(), KFID, "wmA", "text", {"content": f"m{i}"})
    token = _kf(sim).issue_token(sim.clock.now(), KFID)
    first = await call("kf/sync_msg", {"token": token, "open_kfid": KFID, "limit": 3})
    assert (first["errcode"], first["has_more"], [m["text"]["content"] for m in first["msg_list"]]) == (
        0, 1, ["m0", "m1", "m2"])
    assert first["msg_list"][0]["origin"] == 3 and first["msg_list"][0]["external_userid"] == "wmA"
    second = await call("kf/sync_msg", {"token": token, "open_kfid": KFID, "limit": 3,
                                        "cursor": first["next_cursor"]})
    assert (second["has_more"], [m["text"]["content"] for m in second["msg_list"]]) == (0, ["m3", "m4"])
    again = await call("kf/sync_msg", {"token": token, "open_kfid": KFID, "cursor": second["next_cursor"]})
    assert (again["has_more"], again["msg_list"], again["next_cursor"]) == (0, [], second["next_cursor"])


async def test_tokens_expire_and_tokenless_pulls_are_rate_limited(sim: SimulatorState, call: Any) -> None:
    token = _kf(sim).issue_token(sim.clock.now(), KFID)
    sim.advance(601)
    assert (await call("kf/sync_msg", {"token": token, "open_kfid": KFID}))["errcode"] == 95007
    codes = [(await call("kf/sync_msg", {"open_kfid": KFID}))["errcode"] for _ in range(7)]
    assert codes == [0] * 6 + [45009]
    sim.advance(61)
    assert (await call("kf/sync_msg", {"open_kfid": KFID}))["errcode"] == 0


async def test_send_msg_needs_a_customer_message_within_48_hours_and_stops_at_five(sim: SimulatorState,
                                                                                  call: Any) -> None:
    assert (await call("kf/send_msg", _text("wmA")))["errcode"] == 95002
    _kf(sim).customer_message(sim.clock.now(), KFID, "wmA", "text", {"content": "在吗"})
    answers = [await call("kf/send_msg", _text("wmA", f"gd{i}")) for i in range(6)]
    assert [a["errcode"] for a in answers] == [0, 0, 0, 0, 0, 95001]
    assert answers[0]["msgid"] == "gd0"
    _kf(sim).customer_message(sim.clock.now(), KFID, "wmA", "text", {"content": "还在"})
    dup = await call("kf/send_msg", _text("wmA", "gd0"))
    assert dup["errcode"] == 40058 and dup["errmsg"].startswith("msgid duplicated")
    sim.advance(48 * 3600 + 1)
    assert (await call("kf/send_msg", _text("wmA", "gd9")))["errcode"] == 95002
    assert len(_kf(sim).sent) == 5


async def test_the_state_machine_and_sending_by_state(sim: SimulatorState, call: Any) -> None:
    _kf(sim).customer_message(sim.clock.now(), KFID, "wmA", "text", {"content": "你好"})
    state = await call("kf/service_state/get", {"open_kfid": KFID, "external_userid": "wmA"})
    assert (state["service_state"], state["servicer_userid"]) == (0, "")
    moved = await call("kf/service_state/trans", {"open_kfid": KFID, "external_userid": "wmA", "service_state": 1})
    assert moved["errcode"] == 0 and moved["msg_code"]
    assert (await call("kf/send_msg", _text("wmA", "a1")))["errcode"] == 0
    assert (await call("kf/service_state/trans", {"open_kfid": KFID, "external_userid": "wmA", "service_state": 3,
                                                  "servicer_userid": "lina"}))["errcode"] == 0
    assert (await call("kf/send_msg", _text("wmA", "a2")))["errcode"] == 95018
    on_event = await call("kf/send_msg_on_event", {"code": moved["msg_code"], "msgid": "a3", "msgtype": "text",
                                                   "text": {"content": "转接中"}})
    assert on_event["errcode"] == 0
    assert (await call("kf/send_msg_on_event", {"code": moved["msg_code"], "msgtype": "text",
                                                "text": {"content": "再来"}}))["errcode"] == 95015
    back = await call("kf/service_state/trans", {"open_kfid": KFID, "external_userid": "wmA", "service_state": 1})
    assert back["errcode"] == 95016
    assert (await call("kf/service_state/trans", {"open_kfid": KFID, "external_userid": "wmA",
                                                  "service_state": 4}))["errcode"] == 0
    assert (await call("kf/service_state/trans", {"open_kfid": KFID, "external_userid": "wmA",
                                                  "service_state": 1}))["errcode"] == 95016


async def test_enter_session_carries_a_single_use_welcome_code(sim: SimulatorState, call: Any) -> None:
    item = _kf(sim).event(sim.clock.now(), KFID, "wmB", {"event_type": "enter_session", "scene": "s1"})
    code = item["event"]["welcome_code"]
    pulled = await call("kf/sync_msg", {"open_kfid": KFID})
    assert pulled["msg_list"][0]["event"]["welcome_code"] == code and pulled["msg_list"][0]["origin"] == 4
    body = {"code": code, "msgid": "w1", "msgtype": "text", "text": {"content": "欢迎"}}
    assert (await call("kf/send_msg_on_event", body))["errcode"] == 0
    assert _kf(sim).sent[-1]["touser"] == "wmB"
    sim.advance(30)
    late = _kf(sim).event(sim.clock.now(), KFID, "wmC", {"event_type": "enter_session"})
    sim.advance(21)
    assert (await call("kf/send_msg_on_event", {**body, "code": late["event"]["welcome_code"],
                                                "msgid": "w2"}))["errcode"] == 95015


async def test_account_list(call: Any) -> None:
    answer = await call("kf/account/list", {"offset": 0, "limit": 100})
    assert answer["account_list"] == [{"open_kfid": KFID, "name": "客服一号", "avatar": "", "manage_privilege": True}]
