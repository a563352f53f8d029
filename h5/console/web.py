"""Page plumbing of the console: the ``console_page`` wrapper, ``render_console`` and the console's error page.

A console page is an async function ``(request, ctx) -> Response`` (``ctx`` is ``h5.web.Ctx``) wrapped by
``console_page``::

    @console_page                                  # admins and leads
    async def rules(request: Request, ctx: Ctx) -> Response:
        return render_console(request, ctx, "console/rules.html", active="settings.rules", rules=...)

    @console_page(roles=("admin", "lead", "agent"))  # agents too (they see their own figures)
    async def my_figures(request: Request, ctx: Ctx) -> Response: ...

The wrapper shares ``h5.web``'s session (the same ``gd_h5`` cookie, path ``/``, so a member logged in to the H5
workbench is logged in here too), CSRF check of every POST, CSP nonce and security headers. Not logged in: a GET
is redirected to ``/console/login?next=<path>``, a POST gets a 401 page. Logged in with a role not in ``roles``:
a 403 page in Chinese. Domain errors become Chinese pages in the console layout, never a stack trace.

Then add a line to ``h5.console.nav.NAV`` and a ``Route`` to ``h5.console.routes`` (see
/work/notes/console-shell.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, overload
from urllib.parse import quote, urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.errors import BadRequest, DomainError, NotFound, PermissionDenied
from app.http import error_response
from app.logs import get_logger
from app.security.reauth import ReauthRequired
from app.settings import Settings, get_settings
from app.staff.models import Staff
from h5 import csrf
from h5 import session as sessions
from h5.console import nav
from h5.session import Session
from h5.web import Ctx, _finish, _read_form, _staff_actor, redirect, render, safe_next

__all__ = [
    "HOME",
    "LOGIN",
    "ROLE_LABELS",
    "ConsoleEndpoint",
    "console_error",
    "console_page",
    "console_public_page",
    "flash",
    "render_console",
    "row_id",
]

log = get_logger(__name__)

HOME = "/console/"
LOGIN = "/console/login"
FLASH_COOKIE = "gd_console_flash"
FLASH_SECONDS = 60
ROLE_LABELS = {"admin": "管理员", "lead": "组长", "agent": "客服"}

Page = Callable[[Request, Ctx], Awaitable[Response]]
ConsoleEndpoint = Callable[[Request], Awaitable[Response]]


def _who_may(roles: tuple[str, ...]) -> str:
    names = [ROLE_LABELS.get(r, r) for r in roles]
    return "和".join(names) if len(names) <= 2 else "、".join(names)


# ---- flash notices (post/redirect/get) ------------------------------------------------------------------------


def _flash_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(settings.secret_key), salt="gongdan.console.flash")


def flash(ctx: Ctx, message: str) -> None:
    """Show ``message`` (a green notice) on the next console page, typically the one a POST redirects to."""
    value = _flash_serializer(ctx.settings).dumps(message[:200])
    secure = ctx.settings.public_url.startswith("https://")
    ctx.cookies.append(lambda r: r.set_cookie(FLASH_COOKIE, value, max_age=FLASH_SECONDS, path="/console",
                                              httponly=True, samesite="lax", secure=secure))


def _take_flash(request: Request, ctx: Ctx) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    ctx.cookies.append(lambda r: r.delete_cookie(FLASH_COOKIE, path="/console"))
    try:
        message = _flash_serializer(ctx.settings).loads(raw, max_age=FLASH_SECONDS)
    except BadSignature:
        return None
    return message if isinstance(message, str) else None


# ---- rendering ------------------------------------------------------------------------------------------------


def render_console(request: Request, ctx: Ctx, template: str, *, active: str, status: int = 200,
                   **context: Any) -> HTMLResponse:
    """Render a console template (extending ``console/_layout.html``) with the side navigation for the viewer's
    role, ``active`` (a ``nav.NAV`` key) highlighted and used for the default title and breadcrumb."""
    role = ctx.actor.role if ctx.actor is not None else ""
    item = nav.find(active)
    context.setdefault("title", item.label if item else "管理后台")
    context.setdefault("breadcrumb", [(item.section, None), (item.label, item.href)] if item else [])
    notice = _take_flash(request, ctx)
    if notice and not context.get("notice"):
        context["notice"] = notice
    def page_url(number: int) -> str:
        params = {**request.query_params, "page": str(number)}
        return f"{request.url.path}?{urlencode(params)}"

    context.setdefault("page_url", page_url)
    return render(request, ctx, template, status=status, nav_sections=nav.for_role(role) if ctx.staff else [],
                  active=active, role=role, role_label=ROLE_LABELS.get(role, ""), **context)


def console_error(request: Request, ctx: Ctx, *, status: int, title: str, message: str,
                  link: tuple[str, str] | None = None) -> HTMLResponse:
    """A Chinese error page in the console layout (with the navigation when someone is logged in)."""
    return render_console(request, ctx, "console/error.html", active="", status=status, title=title,
                          breadcrumb=[], message=message, link=link, code=status)


def row_id(request: Request, name: str = "row_id") -> int:
    """The numeric id in the path parameter ``name``; anything else is the console's Chinese 400 page."""
    try:
        return int(request.path_params[name])
    except (KeyError, ValueError) as exc:
        raise BadRequest("编号不合法", code="invalid_parameter") from exc


# ---- the wrapper ----------------------------------------------------------------------------------------------


def _login_needed(request: Request, ctx: Ctx) -> Response:
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"{LOGIN}?next={quote(safe_next(target, HOME), safe='')}")
    return console_error(request, ctx, status=401, title="请先登录", message="登录已过期，请重新登录后再提交。",
                         link=(LOGIN, "重新登录"))


def _reauth_needed(request: Request, exc: ReauthRequired) -> Response:
    """A sensitive action with an old login: log in again, then back to the page (JSON callers get a 401)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form's action: back to the page that showed the form
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = not referer.netloc or referer.netloc == request.url.netloc
        target = referer.path + (f"?{referer.query}" if referer.query else "") if same_site else HOME
    login = f"{LOGIN}?reauth=1&next={quote(safe_next(target, HOME), safe='')}"
    if "application/json" in request.headers.get("accept", ""):
        return error_response(401, exc.code, exc.message, {"login_url": login})
    return redirect(login)


def _wrap(page: Page, roles: tuple[str, ...] | None) -> ConsoleEndpoint:
    async def endpoint(request: Request) -> Response:
        settings: Settings = getattr(request.app.state, "settings", None) or get_settings()
        ctx = Ctx(settings=settings, session=sessions.load(request, settings), nonce=secrets.token_urlsafe(12))
        if await sessions.is_revoked(session=ctx.session):
            ctx.session = sessions.replace_session(request, Session.anonymous())
        try:
            ctx.form = await _read_form(request)
        except Exception:  # multipart limits, broken bodies
            return _finish(console_error(request, ctx, status=400, title="提交失败", message="提交的内容无法读取。"),
                           ctx)
        if request.method == "POST" and not csrf.verify(request, ctx.form, ctx.session, settings):
            log.info("console.csrf_refused", path=request.url.path)
            return _finish(console_error(request, ctx, status=403, title="页面已过期",
                                         message="页面已过期或来源不正确，请返回刷新后重试。"), ctx)
        if roles is not None or ctx.session.kind == "staff":
            if ctx.session.kind != "staff":
                return _finish(_login_needed(request, ctx), ctx)
            staff = await Staff.get_or_none(id=ctx.session.staff_id, status="active")
            if staff is None:
                ctx.session = Session.anonymous()
                if roles is not None:
                    return _finish(console_error(request, ctx, status=403, title="无法使用管理后台",
                                                 message="你的账号不是在职的客服人员，或已被停用。请联系管理员。",
                                                 link=(LOGIN, "重新登录")), ctx)
            else:
                ctx.staff = staff
                ctx.actor = replace(await _staff_actor(staff), login_at=ctx.session.login_at)
        if roles is not None and ctx.actor is not None and ctx.actor.role not in roles:
            log.info("console.role_refused", path=request.url.path, role=ctx.actor.role)
            return _finish(console_error(request, ctx, status=403, title="没有权限",
                                         message=f"该页面仅限{_who_may(roles)}使用。", link=(HOME, "返回首页")), ctx)
        try:
            response = await page(request, ctx)
        except ReauthRequired as exc:
            response = _reauth_needed(request, exc)
        except NotFound as exc:
            response = console_error(request, ctx, status=404, title="找不到",
                                     message=exc.message or "内容不存在，或你无权查看。")
        except PermissionDenied as exc:
            response = console_error(request, ctx, status=403, title="没有权限", message=exc.message)
        except DomainError as exc:
            response = console_error(request, ctx, status=exc.status_code, title="操作未完成", message=exc.message)
        except Exception:
            log.exception("console.page_crashed", path=request.url.path)
            response = console_error(request, ctx, status=500, title="出错了", message="服务器开小差了，请稍后重试。")
        return _finish(response, ctx)

    endpoint.__name__ = page.__name__
    endpoint.__doc__ = page.__doc__
    return endpoint


@overload
def console_page(page: Page, *, roles: tuple[str, ...] = nav.MANAGERS) -> ConsoleEndpoint: ...


@overload
def console_page(page: None = None, *, roles: tuple[str, ...] = nav.MANAGERS) -> Callable[[Page], ConsoleEndpoint]:
    ...


def console_page(page: Page | None = None, *,
                 roles: tuple[str, ...] = nav.MANAGERS) -> ConsoleEndpoint | Callable[[Page], ConsoleEndpoint]:
    """A console page for logged-in, active staff whose role is in ``roles`` (``ctx.staff``/``ctx.actor`` set).
    Use bare (``@console_page``: admins and leads) or with roles (``@console_page(roles=nav.ALL_ROLES)``)."""
    allowed = tuple(roles)

    def wrap(p: Page) -> ConsoleEndpoint:
        return _wrap(p, allowed)

    return wrap(page) if page is not None else wrap


def console_public_page(page: Page) -> ConsoleEndpoint:
    """A console page anyone may open (the login pages); ``ctx.staff`` is set when someone is logged in."""
    return _wrap(page, None)
