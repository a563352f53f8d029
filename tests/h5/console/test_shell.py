"""The console shell: login redirect, role checks with a Chinese 403 page, the layout and its navigation, CSRF,
logout, the development login and the post-login targets."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.staff.models import Staff
from app.tickets.models import Ticket
from h5.console import nav
from h5.console.web import console_page, render_console
from h5.session import COOKIE
from h5.web import Ctx, safe_next
from tests.h5.conftest import BASE
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console, csrf_of


async def test_home_needs_a_login_and_comes_back_after_it(console: Console) -> None:
    c = console.client()
    r = await c.get("/console/?period=7d")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2F%3Fperiod%3D7d"
    page = await c.get(r.headers["location"])
    assert page.status_code == 200
    assert "企业微信" in page.text and "开发登录" in page.text and "管理员" in page.text
    assert 'name="next" value="/console/?period=7d"' in page.text
    r = await c.post("/console/dev-login", data={"csrf_token": csrf_of(page.text), "userid": ADMIN,
                                                 "next": "/console/?period=7d"})
    assert r.status_code == 303 and r.headers["location"] == "/console/?period=7d"
    home = await c.get("/console/")
    assert home.status_code == 200
    assert "管理员" in home.text and "退出" in home.text and "待处理工单" in home.text


async def test_home_counts_the_live_tickets_in_scope(console: Console) -> None:
    from app.seed import seed_demo

    await seed_demo()
    admin = await console.login(ADMIN)
    html = (await admin.get("/console/")).text
    live = await Ticket.filter(status__in=("new", "open", "pending")).count()
    assert live > 0
    assert re.search(r'待处理工单</div><div class="c-stat-value">' + str(live) + "<", html)
    agent = await console.login(AGENT)
    mine = await Ticket.filter(status__in=("new", "open", "pending"), assignee_id=console.h5.people[AGENT].id).count()
    html = (await agent.get("/console/")).text
    assert re.search(r'待处理工单</div><div class="c-stat-value">' + str(mine) + "<", html)
    assert "在岗客服" not in html and "今日已解决" in html


async def test_layout_has_the_side_navigation_the_user_and_a_csp_nonce(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get("/console/")
    assert 'class="c-side"' in r.text and 'aria-current="page"' in r.text and ">首页<" in r.text
    assert "/static/console/console.css?v=" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in csp
    assert r.headers["cache-control"] == "no-store"


def test_nav_entries_are_filtered_by_role_and_kept_in_section_order() -> None:
    extra = [nav.NavItem("设置", "t.settings", "设置项", "/console/t/s"),
             nav.NavItem("数据报表", "t.mine", "我的数据", "/console/t/m", nav.ALL_ROLES)]
    nav.NAV.extend(extra)
    try:
        agent = nav.for_role("agent")
        titles = [s.title for s in agent]
        assert titles == [t for t in nav.SECTIONS if t in titles]  # section order
        keys = [i.key for s in agent for i in s.items]
        assert "t.mine" in keys and "t.settings" not in keys and keys[0] == "home"
        assert all("agent" in i.roles for s in agent for i in s.items)
        admin_keys = [i.key for s in nav.for_role("admin") for i in s.items]
        assert admin_keys.index("t.mine") < admin_keys.index("t.settings")
        assert nav.find("t.settings") == extra[0]
    finally:
        for item in extra:
            nav.NAV.remove(item)


def _tiny_app(console: Console) -> Starlette:
    """A Starlette app with one page per role setting, to test the wrapper itself."""

    @console_page
    async def managers(request: Request, ctx: Ctx) -> Response:
        return render_console(request, ctx, "console/home.html", active="home", cards=[], on_duty=None)

    @console_page(roles=("admin",))
    async def admins(request: Request, ctx: Ctx) -> Response:
        assert ctx.staff is not None
        return PlainTextResponse(f"hello {ctx.staff.userid}")

    @console_page(roles=nav.ALL_ROLES)
    async def everyone(request: Request, ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return PlainTextResponse(ctx.actor.role)

    @console_page
    async def crash(request: Request, ctx: Ctx) -> Response:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/console/m", managers, methods=["GET", "POST"]), Route("/console/a", admins),
                            Route("/console/e", everyone), Route("/console/crash", crash)])
    app.state.settings = console.h5.settings
    return app


async def _as(console: Console, app: Starlette, userid: str) -> httpx.AsyncClient:
    logged = await console.login(userid)
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    c.cookies.set(COOKIE, logged.cookies[COOKIE])
    console.clients.append(c)
    return c


async def test_roles_decide_who_may_open_a_page_and_others_get_a_chinese_403(console: Console) -> None:
    app = _tiny_app(console)
    admin, lead, agent = [await _as(console, app, u) for u in (ADMIN, LEAD, AGENT)]
    assert (await admin.get("/console/m")).status_code == 200
    assert (await lead.get("/console/m")).status_code == 200
    refused = await agent.get("/console/m")
    assert refused.status_code == 403
    assert "没有权限" in refused.text and "该页面仅限管理员和组长使用。" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert (await admin.get("/console/a")).text == "hello admin"
    lead_refused = await lead.get("/console/a")
    assert lead_refused.status_code == 403 and "该页面仅限管理员使用。" in lead_refused.text
    assert [(await c.get("/console/e")).text for c in (admin, lead, agent)] == ["admin", "lead", "agent"]


async def test_a_crash_is_a_chinese_500_page_not_a_stack_trace(console: Console) -> None:
    admin = await _as(console, _tiny_app(console), ADMIN)
    r = await admin.get("/console/crash")
    assert r.status_code == 500 and "服务器开小差了" in r.text and "boom" not in r.text


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    admin = await _as(console, _tiny_app(console), ADMIN)
    r = await admin.post("/console/m", data={"x": "1"})
    assert r.status_code == 403 and "页面已过期" in r.text


async def test_a_post_when_logged_out_is_a_401_page(console: Console) -> None:
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=_tiny_app(console)), base_url=BASE)
    console.clients.append(c)
    page = await console.client().get("/console/login")
    c.cookies.set(COOKIE, page.cookies[COOKIE])
    r = await c.post("/console/m", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 401 and "请先登录" in r.text


async def test_a_disabled_member_is_refused_even_with_a_live_cookie(console: Console) -> None:
    lead = await console.login(LEAD)
    await Staff.filter(userid=LEAD).update(status="disabled")
    r = await lead.get("/console/")
    assert r.status_code == 403 and "已被停用" in r.text


async def test_logout_revokes_the_session_everywhere(console: Console) -> None:
    admin = await console.login(ADMIN)
    cookie = admin.cookies[COOKIE]
    r = await console.post(admin, "/console/logout", {})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    copy = console.client()
    copy.cookies.set(COOKIE, cookie)
    assert (await copy.get("/console/")).status_code == 303
    r = await copy.get("/h5/tickets")
    assert r.status_code == 303 and r.headers["location"].startswith("/h5/login")


async def test_the_console_and_the_h5_workbench_share_the_login(console: Console) -> None:
    admin = await console.login(ADMIN)
    assert (await admin.get("/h5/tickets")).status_code == 200
    c = await console.h5.login_staff(LEAD, client=console.client())
    assert (await c.get("/console/")).status_code == 200


async def test_dev_login_is_off_without_the_simulator(console: Console) -> None:
    console.h5.app.state.settings = console.h5.settings.with_overrides(simulator=False)
    c = console.client()
    page = await c.get("/console/login")
    assert page.status_code == 200 and "开发登录" not in page.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert token
    r = await c.post("/console/dev-login", data={"csrf_token": token.group(1), "userid": ADMIN})
    assert r.status_code == 404


async def test_dev_login_refuses_unknown_or_disabled_members(console: Console) -> None:
    await Staff.filter(userid=AGENT).update(status="disabled")
    c = console.client()
    for userid in ("nobody", AGENT):
        page = await c.get("/console/login")
        r = await c.post("/console/dev-login", data={"csrf_token": csrf_of(page.text), "userid": userid})
        assert r.status_code == 403 and "该成员不存在或已停用" in r.text


async def test_a_logged_in_member_is_sent_on_from_the_login_page_unless_reauth(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get("/console/login?next=/console/x")
    assert r.status_code == 303 and r.headers["location"] == "/console/x"
    assert (await admin.get("/console/login?reauth=1&next=/console/x")).status_code == 200


def test_safe_next_accepts_console_paths_and_nothing_foreign() -> None:
    assert safe_next("/console/settings/rules?x=1", "/h5/") == "/console/settings/rules?x=1"
    assert safe_next("/console", "/h5/") == "/console"
    for bad in ("//evil.example/console", "/consolex", "https://evil.example/console/", "/console/../h5",
                "/console//evil"):
        assert safe_next(bad, "/console/") == "/console/"
