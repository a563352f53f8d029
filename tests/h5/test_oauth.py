"""The OAuth round trips against the simulator's authorize pages and code exchanges (no development login)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.channels.wechat_mp import accounts
from app.settings import WeComSettings, set_settings
from app.wecom.tokens import reset_token_stores
from h5 import jssdk
from h5.session import COOKIE
from simulator import SimulatorServer, SimulatorState
from simulator.wecom.store import WeComApp
from tests.h5.conftest import BASE, H5

APPID, SECRET, AGENT_ID, AGENT_SECRET = "wxh5oauth00000001", "h5-oauth-secret", 1000002, "h5-agent-secret"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimulatorState())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def oauth(h5: H5, sim_server: SimulatorServer) -> AsyncIterator[tuple[H5, SimulatorServer]]:
    sim = sim_server.state
    sim.reset(keep_accounts=False)
    sim.add_mp_account(APPID, SECRET, "tok", "A" * 43)
    sim.wecom.add_app(WeComApp(name="工单", secret=AGENT_SECRET, agent_id=AGENT_ID))
    sim.wecom.set_user("lina", name="李娜")
    sim.wecom.set_user("stranger", name="不是客服")
    s = h5.settings.with_overrides(
        simulator=False, wechat_api_base=sim_server.api_base_url, wecom_api_base=sim_server.wecom_api_base_url,
        wechat_oauth_base=sim_server.url,
        wecom=WeComSettings(corp_id=sim.wecom.corp_id, agent_id=str(AGENT_ID), agent_secret=AGENT_SECRET))
    set_settings(s)
    reset_token_stores()
    h5.app.state.settings = s
    h5.settings = s
    accounts.forget_cache()
    await accounts.upsert_account(key="default", name="测试号", appid=APPID, secret=SECRET, token="tok",
                                  aes_key="", is_default=True)
    yield h5, sim_server
    reset_token_stores()


async def _through_authorize(h5: H5, sim: SimulatorServer, start: str, who: str) -> tuple[httpx.Response, str]:
    """Follow the desk to the authorize page, pick `who` there, and come back with the code."""
    r = await h5.client.get(start)
    while r.status_code in (302, 303) and r.headers["location"].startswith("/h5/"):
        r = await h5.client.get(r.headers["location"])
    assert r.status_code == 302
    authorize = r.headers["location"]
    assert authorize.startswith(sim.url + "/connect/oauth2/authorize?") and authorize.endswith("#wechat_redirect")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize.split("#")[0])
        assert page.status_code == 200
        query = parse_qs(urlsplit(authorize).query)
        grant = await browser.get(f"{sim.url}/connect/oauth2/grant", params={
            **{k: v[0] for k, v in query.items()}, "who": who})
    assert grant.status_code == 302
    back = grant.headers["location"]
    assert back.startswith(BASE + "/h5/")
    return await h5.client.get(back.removeprefix(BASE)), back


async def test_staff_wecom_login_keeps_the_deep_link(oauth: tuple[H5, SimulatorServer]) -> None:
    h5, sim = oauth
    r, back = await _through_authorize(h5, sim, "/h5/queue", "lina")
    assert (r.status_code, r.headers["location"]) == (303, "/h5/queue")
    assert (await h5.client.get("/h5/queue")).status_code == 200
    calls = sim.state.api_calls_for("auth/getuserinfo", platform="wecom")
    assert len(calls) == 1 and calls[0].errcode is None
    # the code is single-use: replaying the callback does not log anyone in
    replay = h5.new_client()
    r = await replay.get(back.removeprefix(BASE))
    assert r.status_code == 400 and "登录链接已失效" in r.text
    assert COOKIE not in replay.cookies or "staff" not in replay.cookies.get(COOKIE, "")


async def test_a_member_who_is_not_staff_gets_a_clear_page(oauth: tuple[H5, SimulatorServer]) -> None:
    h5, sim = oauth
    r, _ = await _through_authorize(h5, sim, "/h5/tickets", "stranger")
    assert r.status_code == 403 and "不是本企业在职的客服人员" in r.text
    assert (await h5.client.get("/h5/tickets")).status_code == 303


async def test_state_must_match(oauth: tuple[H5, SimulatorServer]) -> None:
    h5, sim = oauth
    await h5.client.get("/h5/auth/wecom?next=/h5/queue")
    r = await h5.client.get("/h5/auth/wecom/callback", params={"code": "whatever", "state": "forged"})
    assert r.status_code == 400
    assert not sim.state.api_calls_for("auth/getuserinfo", platform="wecom")


async def test_customer_snsapi_base_login(oauth: tuple[H5, SimulatorServer]) -> None:
    h5, sim = oauth
    r, _ = await _through_authorize(h5, sim, "/h5/my/tickets", "oCustomerOAuth0001")
    assert (r.status_code, r.headers["location"]) == (303, "/h5/my/tickets")
    page = await h5.client.get("/h5/my/tickets")
    assert page.status_code == 200 and "您还没有工单" in page.text
    [call] = sim.state.api_calls_for("sns/oauth2/access_token", platform="mp")
    assert call.query["secret"] == "***" and call.query["grant_type"] == "authorization_code"


async def test_jssdk_signatures_use_cached_corp_and_agent_tickets(oauth: tuple[H5, SimulatorServer]) -> None:
    h5, sim = oauth
    await _through_authorize(h5, sim, "/h5/sidebar", "lina")
    url = f"{BASE}/h5/sidebar#contact"
    body = (await h5.client.get("/h5/jssdk", params={"url": url})).json()
    corp_ticket = sim.state.wecom.ticket("corp")[0]
    agent_ticket = sim.state.wecom.ticket(f"agent:{AGENT_ID}")[0]
    assert corp_ticket != agent_ticket
    config, agent = body["config"], body["agentConfig"]
    assert config["signature"] == jssdk.sign(ticket=corp_ticket, noncestr=config["nonceStr"],
                                             timestamp=config["timestamp"], url=f"{BASE}/h5/sidebar")
    assert agent["signature"] == jssdk.sign(ticket=agent_ticket, noncestr=agent["nonceStr"],
                                            timestamp=agent["timestamp"], url=f"{BASE}/h5/sidebar")
    await h5.client.get("/h5/jssdk", params={"url": url})
    assert len(sim.state.api_calls_for("get_jsapi_ticket", platform="wecom")) == 1
    assert len(sim.state.api_calls_for("ticket/get", platform="wecom")) == 1
    refused = await h5.client.get("/h5/jssdk", params={"url": "https://evil.example/h5/x"})
    assert refused.status_code == 400
