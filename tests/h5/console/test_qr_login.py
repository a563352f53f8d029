"""WeCom QR-code login (企业微信扫码登录) of the console against the simulator's wwlogin/sso/login page and
auth/getuserinfo (no development login)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.datastructures import Secret

from app.settings import WeComSettings, set_settings
from app.wecom.tokens import reset_token_stores
from h5.console.auth import PENDING_COOKIE
from h5.session import COOKIE
from simulator import SimulatorServer, SimulatorState
from simulator.wecom.store import WeComApp
from tests.h5.conftest import BASE
from tests.h5.console.conftest import Console

AGENT_ID, AGENT_SECRET = 1000002, "console-agent-secret"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimulatorState())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def qr(console: Console, sim_server: SimulatorServer) -> AsyncIterator[tuple[Console, SimulatorServer]]:
    sim = sim_server.state
    sim.reset(keep_accounts=False)
    sim.wecom.add_app(WeComApp(name="工单", secret=AGENT_SECRET, agent_id=AGENT_ID))
    for userid, name in (("admin", "管理员"), ("lina", "李娜"), ("stranger", "不是客服")):
        sim.wecom.set_user(userid, name=name)
    s = console.h5.settings.with_overrides(
        simulator=False, wecom_api_base=sim_server.wecom_api_base_url, wecom_login_base=sim_server.url,
        wecom=WeComSettings(corp_id=sim.wecom.corp_id, agent_id=str(AGENT_ID), agent_secret=Secret(AGENT_SECRET)))
    set_settings(s)
    reset_token_stores()
    console.h5.app.state.settings = s
    console.h5.settings = s
    yield console, sim_server
    reset_token_stores()


async def _to_login_page(c: httpx.AsyncClient, sim: SimulatorServer, start: str) -> str:
    """From a console page to the simulator's QR-code page (through /console/login and its button)."""
    r = await c.get(start)
    assert r.status_code == 303
    login = await c.get(r.headers["location"])
    assert login.status_code == 200 and "企业微信扫码登录" in login.text and "开发登录" not in login.text
    r = await c.get("/console/auth/wecom", params={"next": start})
    assert r.status_code == 302 and PENDING_COOKIE in r.headers["set-cookie"]
    return r.headers["location"]


async def _scan(sim: SimulatorServer, url: str, who: str) -> str:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    async with httpx.AsyncClient() as phone:
        page = await phone.get(url)
        assert page.status_code == 200 and "企业微信登录" in page.text
        r = await phone.get(f"{sim.url}/wwlogin/sso/scan", params={**query, "who": who})
    assert r.status_code == 302
    back: str = r.headers["location"]
    assert back.startswith(BASE + "/console/auth/callback?")
    return back.removeprefix(BASE)


async def test_qr_login_redirects_to_wwlogin_with_the_apps_parameters(qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    url = await _to_login_page(console.client(), sim, "/console/")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sim.url}/wwlogin/sso/login"
    query = parse_qs(parts.query)
    assert query["login_type"] == ["CorpApp"] and query["appid"] == [sim.state.wecom.corp_id]
    assert query["agentid"] == [str(AGENT_ID)]
    assert query["redirect_uri"] == [f"{BASE}/console/auth/callback"]
    assert len(query["state"][0]) >= 16


async def test_an_admin_scans_gets_a_new_session_and_lands_on_the_deep_link(
        qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    c = console.client()
    url = await _to_login_page(c, sim, "/console/?period=7d")
    before = c.cookies[COOKIE]
    back = await _scan(sim, url, "admin")
    r = await c.get(back)
    assert (r.status_code, r.headers["location"]) == (303, "/console/?period=7d")
    assert c.cookies[COOKIE] != before  # a NEW session (no fixation)
    home = await c.get("/console/")
    assert home.status_code == 200 and "管理员" in home.text
    [call] = sim.state.api_calls_for("auth/getuserinfo", platform="wecom")
    assert call.errcode is None
    # the callback is single-use: its state was in a cookie that is gone, and the code is spent
    replay = console.client()
    r = await replay.get(back)
    assert r.status_code == 400 and "登录链接已失效" in r.text


async def test_the_state_must_match_the_signed_cookie(qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    c = console.client()
    url = await _to_login_page(c, sim, "/console/")
    back = await _scan(sim, url, "admin")
    forged = back.replace("state=", "state=x", 1)
    r = await c.get(forged)
    assert r.status_code == 400 and "登录链接已失效" in r.text
    assert not sim.state.api_calls_for("auth/getuserinfo", platform="wecom")
    assert (await c.get("/console/")).status_code == 303


async def test_someone_who_is_not_active_staff_is_refused(qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    c = console.client()
    back = await _scan(sim, await _to_login_page(c, sim, "/console/"), "stranger")
    r = await c.get(back)
    assert r.status_code == 403 and "不是本企业在职的客服人员" in r.text
    assert (await c.get("/console/")).status_code == 303


async def test_refusing_on_the_phone_logs_nobody_in(qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    c = console.client()
    url = await _to_login_page(c, sim, "/console/")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    async with httpx.AsyncClient() as phone:
        r = await phone.get(f"{sim.url}/wwlogin/sso/scan", params={**query, "refuse": "1"})
    r = await c.get(r.headers["location"].removeprefix(BASE))
    assert r.status_code == 400 and "你已取消企业微信扫码授权" in r.text
    assert (await c.get("/console/")).status_code == 303


async def test_an_agent_can_log_in_and_sees_their_own_home(qr: tuple[Console, SimulatorServer]) -> None:
    console, sim = qr
    c = console.client()
    r = await c.get(await _scan(sim, await _to_login_page(c, sim, "/console/"), "lina"))
    assert r.status_code == 303
    home = await c.get("/console/")
    assert home.status_code == 200 and "今日已解决" in home.text


async def test_without_a_wecom_app_the_button_is_replaced_by_a_hint(console: Console) -> None:
    page = await console.client().get("/console/login")
    assert "企业微信应用尚未配置" in page.text and "/console/auth/wecom" not in page.text
    r = await console.client().get("/console/auth/wecom")
    assert r.status_code == 503 and "WECOM_CORP_ID" in r.text
