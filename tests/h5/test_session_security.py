from __future__ import annotations

from urllib.parse import quote

from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from h5.auth import dev_login_enabled
from h5.session import COOKIE
from h5.web import safe_next
from tests import factories
from tests.h5.conftest import H5, csrf_of


def test_dev_login_only_with_the_simulator_and_no_tencent_host(h5: H5) -> None:
    assert dev_login_enabled(h5.settings)
    assert not dev_login_enabled(h5.settings.with_overrides(simulator=False))
    assert not dev_login_enabled(h5.settings.with_overrides(env="production"))
    assert not dev_login_enabled(h5.settings.with_overrides(wecom_api_base="https://qyapi.weixin.qq.com/cgi-bin/"))
    assert not dev_login_enabled(h5.settings.with_overrides(wechat_oauth_base="https://open.weixin.qq.com"))


async def test_dev_login_is_refused_when_disabled(h5: H5) -> None:
    h5.app.state.settings = h5.settings.with_overrides(wecom_api_base="https://qyapi.weixin.qq.com/cgi-bin/")
    page = await h5.client.get("/h5/my/login")  # any page gives an anonymous session with a token
    r = await h5.client.post("/h5/dev-login", data={"csrf_token": csrf_of(page.text) if "csrf_token" in page.text
                                                    else "x", "userid": "admin"})
    assert r.status_code in (403, 404)
    assert (await h5.client.get("/h5/tickets")).status_code == 303


async def test_login_rotates_the_session_and_old_tokens_die(h5: H5) -> None:
    page = await h5.client.get("/h5/login")
    before, token_before = h5.client.cookies[COOKIE], csrf_of(page.text)
    r = await h5.client.post("/h5/dev-login", data={"csrf_token": token_before, "userid": "lina", "next": "/h5/queue"})
    assert (r.status_code, r.headers["location"]) == (303, "/h5/queue")
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Max-Age=43200" in set_cookie
    assert h5.client.cookies[COOKIE] != before
    # a form token from before the login is worthless now (fixation / stale page)
    r = await h5.client.post("/h5/logout", data={"csrf_token": token_before})
    assert r.status_code == 403 and "页面已过期" in r.text


async def test_every_post_needs_the_token_and_our_origin(h5: H5) -> None:
    await h5.login_staff("lina")
    page = await h5.client.get("/h5/new")
    token = csrf_of(page.text)
    assert (await h5.client.post("/h5/new", data={"customer": "张三", "subject": "x"})).status_code == 403
    r = await h5.client.post("/h5/new", data={"csrf_token": token, "customer": "张三", "subject": "x"},
                             headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    r = await h5.client.post("/h5/new", data={"csrf_token": token, "customer": "张三", "subject": "门锁坏了"},
                             headers={"origin": "http://127.0.0.1:8000"})
    assert r.status_code == 303


async def test_deep_link_survives_login(h5: H5) -> None:
    r = await h5.client.get("/h5/tickets/GD-20260101-0001")
    assert (r.status_code, r.headers["location"]) == (303, "/h5/login?next=" + quote("/h5/tickets/GD-20260101-0001",
                                                                                     safe=""))
    page = await h5.client.get(r.headers["location"])
    assert 'name="next" value="/h5/tickets/GD-20260101-0001"' in page.text


def test_only_our_own_pages_are_login_destinations() -> None:
    assert safe_next("/h5/tickets/GD-1", "/h5/") == "/h5/tickets/GD-1"
    for bad in ("//evil.example/h5/", "https://evil.example/h5/", "/api/v1/tickets", "/h5/../api", "/h5//x",
                "/h5/\\evil", None, ""):
        assert safe_next(bad, "/h5/") == "/h5/"


async def test_security_headers_and_no_pii_in_urls(h5: H5) -> None:
    await h5.login_staff("lina")
    r = await h5.client.get("/h5/tickets")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp and "object-src 'none'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    # search is a POST: a phone number typed there never becomes part of a URL
    assert 'method="post" action="/h5/search"' in (await h5.client.get("/h5/search")).text


async def test_a_disabled_staff_member_gets_a_clear_page(h5: H5) -> None:
    await h5.login_staff("lina")
    await Staff.filter(userid="lina").update(status="disabled")
    r = await h5.client.get("/h5/tickets")
    assert r.status_code == 403 and "不是在职的客服人员" in r.text and "Traceback" not in r.text


async def test_staff_scope_applies_to_pages(h5: H5) -> None:
    customer = await factories.customer()
    finance = await SkillGroup.get(name="财务组")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="发票", group_id=finance.id)
    await h5.login_staff("lina")
    r = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert r.status_code == 404 and "无权查看" in r.text
    other = h5.new_client()
    await h5.login_staff("zhaolei", other)
    assert (await other.get(f"/h5/tickets/{ticket.number}")).status_code == 200


async def test_logout_revokes_the_session_server_side(h5: H5) -> None:
    # issue 11: logging out only dropped the cookie in that browser; a copy of it still read the customer's tickets
    from app.customers import service as customers
    from app.security.models import RevokedSession
    from h5.session import purge_revoked

    customer = await customers.resolve_identity(kind="mp_openid", scope="default", value="oLeaver", name="客户")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="我的私事")
    await h5.login_customer("oLeaver")
    stolen = h5.client.cookies[COOKIE]
    page = await h5.client.get("/h5/my/tickets")
    assert ticket.number in page.text
    form = await h5.client.get("/h5/my/new")  # any page with a form carries the session's CSRF token
    r = await h5.client.post("/h5/logout", data={"csrf_token": csrf_of(form.text)})
    assert (r.status_code, r.headers["location"]) == (303, "/h5/my/login")

    async with h5.new_client() as other:
        other.cookies.set(COOKIE, stolen)
        r = await other.get("/h5/my/tickets")
        assert r.status_code == 303 and r.headers["location"].startswith("/h5/my/login")
        r = await other.get(f"/h5/my/tickets/{ticket.number}")
        assert r.status_code == 303 and ticket.number not in r.text
    # the table keeps a hash of the session id, never the cookie or the openid
    row = await RevokedSession.get()
    assert len(row.sid_hash) == 64 and stolen not in row.sid_hash
    assert await purge_revoked() == 0  # not expired yet
    # logging in again works and gives a fresh, valid session
    await h5.login_customer("oLeaver")
    assert ticket.number in (await h5.client.get("/h5/my/tickets")).text


async def test_staff_logout_revokes_too(h5: H5) -> None:
    await h5.login_staff("lina")
    stolen = h5.client.cookies[COOKIE]
    page = await h5.client.get("/h5/tickets")
    assert page.status_code == 200
    await h5.client.post("/h5/logout", data={"csrf_token": csrf_of(page.text)})
    async with h5.new_client() as other:
        other.cookies.set(COOKIE, stolen)
        r = await other.get("/h5/tickets")
        assert r.status_code == 303 and r.headers["location"].startswith("/h5/login")
