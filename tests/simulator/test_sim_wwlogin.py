"""The simulator's WeCom QR-code login (wwlogin/sso/login): the member list, the scan redirect, and the code that
auth/getuserinfo accepts once, for the app that issued it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio

from simulator import SimulatorState, create_simulator_app
from simulator.wecom.store import WeComApp

AGENT_ID, SECRET, OTHER_AGENT, OTHER_SECRET = 1000002, "console-secret", 1000009, "other-secret"
SITE = "http://desk.test/console/auth/callback"


@pytest.fixture
def sim() -> SimulatorState:
    state = SimulatorState()
    state.wecom.add_app(WeComApp(name="工单", secret=SECRET, agent_id=AGENT_ID))
    state.wecom.add_app(WeComApp(name="别的应用", secret=OTHER_SECRET, agent_id=OTHER_AGENT))
    state.wecom.set_user("lina", name="李娜")
    state.wecom.set_user("gone", name="已离职", status=5)
    return state


@pytest_asyncio.fixture
async def http(sim: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_simulator_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        yield client


def _params(sim: SimulatorState, **changes: str) -> dict[str, str]:
    base = {"login_type": "CorpApp", "appid": sim.wecom.corp_id, "agentid": str(AGENT_ID), "redirect_uri": SITE,
            "state": "st4te"}
    return {**base, **changes}


async def _userinfo(http: httpx.AsyncClient, sim: SimulatorState, code: str, secret: str = SECRET) -> dict[str, Any]:
    token = (await http.get("/qyapi/cgi-bin/gettoken", params={"corpid": sim.wecom.corp_id,
                                                                 "corpsecret": secret})).json()["access_token"]
    data: dict[str, Any] = (await http.get("/qyapi/cgi-bin/auth/getuserinfo",
                                           params={"access_token": token, "code": code})).json()
    return data


async def _scan(http: httpx.AsyncClient, sim: SimulatorState, who: str) -> dict[str, list[str]]:
    r = await http.get("/wwlogin/sso/scan", params={**_params(sim), "who": who})
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith(SITE + "?")
    return parse_qs(urlsplit(location).query)


async def test_login_page_lists_the_corps_members_as_links_to_scan_as(http: httpx.AsyncClient,
                                                                     sim: SimulatorState) -> None:
    r = await http.get("/wwlogin/sso/login", params=_params(sim))
    assert r.status_code == 200
    assert "企业微信登录" in r.text and "李娜" in r.text and "已离职" in r.text
    assert f"/wwlogin/sso/scan?{urlencode({**_params(sim), 'who': 'lina'})}".replace("&", "&amp;") in r.text


@pytest.mark.parametrize(("change", "message"), [
    ({"login_type": "ServiceApp"}, "login_type 无效"),
    ({"appid": "wwnotthiscorp"}, "appid 无效"),
    ({"agentid": "4242"}, "agentid 无效"),
    ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri 参数错误"),
])
async def test_bad_parameters_show_an_error_and_never_redirect(http: httpx.AsyncClient, sim: SimulatorState,
                                                               change: dict[str, str], message: str) -> None:
    for path in ("/wwlogin/sso/login", "/wwlogin/sso/scan"):
        r = await http.get(path, params={**_params(sim, **change), "who": "lina"})
        assert r.status_code == 400
        assert message in r.text
        assert "location" not in r.headers


async def test_scan_redirects_with_a_code_that_getuserinfo_accepts_once(http: httpx.AsyncClient,
                                                                      sim: SimulatorState) -> None:
    query = await _scan(http, sim, "lina")
    assert query["state"] == ["st4te"]
    code = query["code"][0]
    assert await _userinfo(http, sim, code) == {"errcode": 0, "errmsg": "ok", "userid": "lina"}
    again = await _userinfo(http, sim, code)
    assert again["errcode"] == 40029


async def test_a_code_works_only_for_the_app_whose_login_page_issued_it(http: httpx.AsyncClient,
                                                                       sim: SimulatorState) -> None:
    code = (await _scan(http, sim, "lina"))["code"][0]
    assert (await _userinfo(http, sim, code, secret=OTHER_SECRET))["errcode"] == 40029


async def test_a_member_who_left_is_no_userid(http: httpx.AsyncClient, sim: SimulatorState) -> None:
    code = (await _scan(http, sim, "gone"))["code"][0]
    data = await _userinfo(http, sim, code)
    assert "userid" not in data and data["openid"].startswith("o")


async def test_refusing_on_the_phone_comes_back_with_the_state_only(http: httpx.AsyncClient,
                                                                    sim: SimulatorState) -> None:
    r = await http.get("/wwlogin/sso/scan", params={**_params(sim), "refuse": "1"})
    assert r.status_code == 302
    assert r.headers["location"] == f"{SITE}?state=st4te"
