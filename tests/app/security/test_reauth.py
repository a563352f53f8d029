"""Issue 11: sensitive operations need a recent WeCom login. In H5 a reveal with a login older than
SENSITIVE_REAUTH_MINUTES sends the member through the login again and back to the ticket; API tokens are exempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from starlette.datastructures import Secret

from app import intake
from app.customers import service as customers
from app.main import create_app
from app.security.models import AuditLog
from app.security.reauth import ReauthRequired, require_recent_login
from app.security.scope import Actor
from app.settings import WeComSettings, set_settings
from app.staff.models import Staff
from app.timeutil import set_clock, utcnow
from h5 import session as sessions
from tests import factories
from tests.h5.conftest import BASE, H5, csrf_of, h5  # noqa: F401

PHONE = "13912345678"


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """The desk's clock, movable: clock[0] is now."""
    now = [utcnow().replace(microsecond=0)]
    set_clock(lambda: now[0])
    yield now
    set_clock(None)


async def _ticket(h5: H5) -> str:  # noqa: F811
    admin = await Staff.get(userid="admin")
    customer = await customers.create(name="刘女士", phone=PHONE)
    ticket = await intake.staff_ticket(actor=await factories.actor(admin), customer=customer, subject="退款咨询",
                                       phone=PHONE)
    return ticket.number


async def _reveal(h5: H5, number: str) -> httpx.Response:  # noqa: F811
    page = await h5.client.get(f"/h5/tickets/{number}")
    return await h5.client.post(f"/h5/tickets/{number}/reveal",
                                data={"csrf_token": csrf_of(page.text), "reason": "联系客户处理工单"},
                                headers={"referer": f"{BASE}/h5/tickets/{number}"})


async def test_a_recent_login_reveals_the_phone(h5: H5, clock: list[datetime]) -> None:  # noqa: F811
    number = await _ticket(h5)
    await h5.login_staff("admin")
    clock[0] += timedelta(minutes=9)
    r = await _reveal(h5, number)
    assert r.status_code == 200 and 'class="revealed">+8613912345678</a>' in r.text
    assert await AuditLog.filter(action="reveal").count() == 1


async def test_an_old_login_goes_through_the_login_again_and_back_to_the_ticket(
        h5: H5, clock: list[datetime]) -> None:  # noqa: F811
    number = await _ticket(h5)
    await h5.login_staff("admin")
    clock[0] += timedelta(minutes=11)
    back = f"/h5/tickets/{number}"
    page = await h5.client.get(back)
    r = await h5.client.post(f"{back}/reveal", data={"csrf_token": csrf_of(page.text), "reason": "联系客户"},
                             headers={"accept": "application/json"})
    assert r.status_code == 401 and r.json() == {"error": {
        "code": "reauth_required",
        "message": "为保护客户信息，此操作需要在 10 分钟内登录过企业微信，请重新登录后再试。",
        "details": {"login_url": f"/h5/login?reauth=1&next={quote(back, safe='')}"}}}
    r = await _reveal(h5, number)
    assert r.status_code == 303
    assert r.headers["location"] == f"/h5/login?reauth=1&next={quote(back, safe='')}"
    assert await AuditLog.filter(action="reveal").count() == 0  # nothing revealed, nothing audited
    # a logged-in member asked to log in again gets the login, not a redirect home
    page = await h5.client.get(r.headers["location"])
    assert page.status_code == 200 and f'name="next" value="{back}"' in page.text
    again = await h5.client.post("/h5/dev-login", data={"csrf_token": csrf_of(page.text), "userid": "admin",
                                                        "next": back})
    assert again.status_code == 303 and again.headers["location"] == back
    r = await _reveal(h5, number)
    assert r.status_code == 200 and 'class="revealed">+8613912345678</a>' in r.text
    assert await AuditLog.filter(action="reveal").count() == 1


async def test_reauth_uses_wecom_oauth_keeping_the_return_url(h5: H5, clock: list[datetime]) -> None:  # noqa: F811
    await h5.login_staff("admin")
    s = h5.settings.with_overrides(simulator=False, wecom=WeComSettings(corp_id="wwprivacy", agent_id="1000002",
                                                                         agent_secret=Secret("x")))
    set_settings(s)
    app = create_app(s, run_jobs=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                 cookies=h5.client.cookies) as client:
        assert (await client.get("/h5/login?next=%2Fh5%2Fqueue")).headers["location"] == "/h5/queue"
        r = await client.get("/h5/login?reauth=1&next=%2Fh5%2Ftickets%2FGD-1")
        assert r.status_code == 302
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert (query["appid"], query["agentid"]) == (["wwprivacy"], ["1000002"])
        assert query["redirect_uri"] == [f"{BASE}/h5/auth/wecom/callback"]
        assert "gd_oauth" in r.headers["set-cookie"]


async def test_api_tokens_are_exempt_from_reauth(api: httpx.AsyncClient, clock: list[datetime]) -> None:
    data = await factories.org()
    customer = await factories.customer(name="刘女士", phone=PHONE)
    h = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    clock[0] += timedelta(days=3)
    r = await api.post(f"/api/v1/customers/{customer.id}/reveal", headers=h,
                       json={"field": "phone", "reason": "系统对接核实"})
    assert r.status_code == 200 and r.json() == {"field": "phone", "value": "+8613912345678"}


def test_the_session_carries_the_login_time_and_the_rule_answers_401(clock: list[datetime]) -> None:
    session = sessions.Session.anonymous().login(kind="staff", staff_id=1)
    assert session.login_at == int(clock[0].timestamp())
    assert sessions.Session.anonymous().login_at == 0
    assert session.to_json()["l"] == session.login_at
    staff = Actor(kind="staff", staff_id=1, role="admin", group_ids=None, login_at=session.login_at)
    clock[0] += timedelta(minutes=10)
    require_recent_login(actor=staff)  # exactly 10 minutes is still recent
    clock[0] += timedelta(seconds=1)
    with pytest.raises(ReauthRequired) as caught:
        require_recent_login(actor=staff)
    assert (caught.value.status_code, caught.value.code) == (401, "reauth_required")
    require_recent_login(actor=Actor(kind="staff", staff_id=1, role="admin", group_ids=None))  # an API token
    never = Actor(kind="staff", staff_id=1, role="admin", group_ids=None, login_at=0)
    with pytest.raises(ReauthRequired):  # an H5 cookie from before login times were kept
        require_recent_login(actor=never)
