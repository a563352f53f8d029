"""The WeCom side of the simulator: tokens per secret, directory reads, cursors, rate limits, message/send rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from simulator import SimulatorState, create_simulator_app
from simulator.wecom.orggen import OrgSize, add_default_apps, generate_org, load_demo_org

BASE = "/qyapi/cgi-bin/"


@pytest.fixture
def sim() -> SimulatorState:
    state = SimulatorState()
    add_default_apps(state.wecom)
    load_demo_org(state.wecom)
    return state


@pytest_asyncio.fixture
async def http(sim: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_simulator_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        yield client


async def _token(http: httpx.AsyncClient, sim: SimulatorState, secret: str) -> str:
    r = await http.get(BASE + "gettoken", params={"corpid": sim.wecom.corp_id, "corpsecret": secret})
    token: str = r.json()["access_token"]
    return token


async def _get(http: httpx.AsyncClient, path: str, token: str, **params: Any) -> dict[str, Any]:
    data: dict[str, Any] = (await http.get(BASE + path, params={"access_token": token, **params})).json()
    return data


async def test_gettoken_is_stable_per_secret_and_checks_credentials(http: httpx.AsyncClient,
                                                                    sim: SimulatorState) -> None:
    a = await _token(http, sim, "sim-agent-secret")
    assert a == await _token(http, sim, "sim-agent-secret")  # same token until it expires
    assert a != await _token(http, sim, "sim-contact-secret")  # one token per secret
    bad = (await http.get(BASE + "gettoken", params={"corpid": sim.wecom.corp_id, "corpsecret": "nope"})).json()
    assert bad["errcode"] == 40001 and "more info at https://open.work.weixin.qq.com/devtool/query?e=40001" in \
        bad["errmsg"]
    sim.wecom.expire_tokens()
    assert (await _get(http, "department/list", a))["errcode"] == 42001


async def test_private_fields_and_list_id_need_the_contacts_secret(http: httpx.AsyncClient,
                                                                   sim: SimulatorState) -> None:
    app = await _token(http, sim, "sim-agent-secret")
    contacts = await _token(http, sim, "sim-contact-secret")
    assert "mobile" not in await _get(http, "user/get", app, userid="lina")
    assert (await _get(http, "user/get", contacts, userid="lina"))["mobile"] == "13800000002"
    r = await http.post(BASE + "user/list_id", params={"access_token": app}, content=b"{}")
    assert r.json()["errcode"] == 48002
    r = await http.post(BASE + "user/list_id", params={"access_token": contacts}, content=b'{"limit": 4}')
    page = r.json()
    assert [row["userid"] for row in page["dept_user"]] == ["admin", "chenjing", "lina", "liuyang"]
    assert page["next_cursor"] == "4"
    assert (await _get(http, "user/get", contacts, userid="ghost"))["errcode"] == 60111


async def test_batch_get_by_user_pages_with_a_cursor(http: httpx.AsyncClient, sim: SimulatorState) -> None:
    generate_org(sim.wecom, OrgSize(departments=3, staff=5, external_contacts=230), seed=3)
    token = await _token(http, sim, "sim-customer-secret")
    users = (await _get(http, "externalcontact/get_follow_user_list", token))["follow_user"]
    seen: list[tuple[str, str]] = []
    cursor = ""
    pages = 0
    while True:
        r = await http.post(BASE + "externalcontact/batch/get_by_user", params={"access_token": token},
                            json={"userid_list": users, "cursor": cursor, "limit": 100})
        data = r.json()
        pages += 1
        seen += [(i["external_contact"]["external_userid"], i["follow_info"]["userid"])
                 for i in data["external_contact_list"]]
        cursor = data["next_cursor"]
        if not cursor:
            break
    expected = sorted((ext, u) for ext, c in sim.wecom.contacts.items() for u in c.follows)
    assert sorted(seen) == expected and len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 100)
    r = await http.post(BASE + "externalcontact/batch/get_by_user", params={"access_token": token},
                        json={"userid_list": ["x"] * 101})
    assert r.json()["errcode"] == 40058


async def test_rate_limit_answers_45009_past_the_window(http: httpx.AsyncClient, sim: SimulatorState) -> None:
    sim.wecom.rate_limits.per_minute = 3
    token = await _token(http, sim, "sim-contact-secret")
    codes = [(await _get(http, "department/list", token)).get("errcode") for _ in range(4)]
    assert codes == [0, 0, 0, 45009]
    assert (await _get(http, "user/get", token, userid="lina"))["errcode"] == 0  # limits are per API
    sim.advance(61)
    assert (await _get(http, "department/list", token))["errcode"] == 0


async def test_message_send_duplicate_check_and_invalid_users(http: httpx.AsyncClient, sim: SimulatorState) -> None:
    token = await _token(http, sim, "sim-agent-secret")
    body = {"touser": "lina|Ghost", "msgtype": "text", "agentid": 1000002, "text": {"content": "hi"},
            "enable_duplicate_check": 1, "duplicate_check_interval": 1800}
    first = (await http.post(BASE + "message/send", params={"access_token": token}, json=body)).json()
    assert (first["errcode"], first["invaliduser"]) == (0, "ghost")  # lower-cased, as WeCom answers
    await http.post(BASE + "message/send", params={"access_token": token}, json=body)
    assert [m.duplicate for m in sim.wecom.sent] == [False, True]
    assert len(sim.wecom.messages_to("lina")) == 1
    none = (await http.post(BASE + "message/send", params={"access_token": token},
                            json={**body, "touser": "ghost"})).json()
    assert none["errcode"] == 81013


async def test_member_throttle_drops_the_31st_message_in_a_minute(http: httpx.AsyncClient,
                                                                  sim: SimulatorState) -> None:
    token = await _token(http, sim, "sim-agent-secret")
    for n in range(31):
        r = await http.post(BASE + "message/send", params={"access_token": token},
                            json={"touser": "lina", "msgtype": "text", "agentid": 1000002, "text": {"content": str(n)}})
        assert r.json()["errcode"] == 0  # excess is dropped silently
    assert len(sim.wecom.messages_to("lina")) == 30
