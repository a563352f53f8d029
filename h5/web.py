"""Page plumbing shared by every H5 page: templates, the session and CSRF checks, security headers, errors.

Each page is an async function ``(request, ctx) -> Response`` wrapped by ``staff_page``, ``customer_page`` or
``public_page``. The wrapper loads the session, checks the CSRF token of every POST before the page runs, finds the
logged-in staff member (still active) or customer, turns domain errors into friendly Chinese pages (never a stack
trace), and adds the headers: a nonce-based Content-Security-Policy, ``Cache-Control: no-store`` (the pages carry
personal data) and the session cookie when the request created or rotated it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.errors import DomainError, NotFound, PermissionDenied
from app.http import error_response
from app.logs import get_logger
from app.security.reauth import ReauthRequired
from app.security.scope import Actor, actor_for
from app.settings import Settings, get_settings
from app.staff.models import Staff
from app.timeutil import local
from h5 import csrf
from h5 import session as sessions
from h5.session import Session

__all__ = [
    "STATIC_DIR",
    "Ctx",
    "customer_page",
    "public_page",
    "redirect",
    "render",
    "safe_next",
    "staff_page",
    "weui_available",
]

log = get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "static"
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: copied there by `make assets` (npm's weui package); never committed
WEUI_CSS = STATIC_DIR / "vendor" / "weui" / "weui.min.css"
FALLBACK_CSS = STATIC_DIR / "h5" / "fallback.css"
#: seconds a computed staff scope is reused (the directory changes rarely; a disabled member is re-checked anyway)
ACTOR_CACHE_SECONDS = 10.0
MAX_UPLOAD_FILES = 6

_actors: dict[int, tuple[float, Actor]] = {}
#: post-login targets: the H5 pages and the manager's console
_NEXT = re.compile(r"^/(h5|console)(/[A-Za-z0-9._~%/=&?+-]*)?$")


@dataclass
class Ctx:
    """What a page gets besides the request."""

    settings: Settings
    session: Session
    nonce: str
    form: FormData | None = None
    staff: Staff | None = None
    actor: Actor | None = None
    cookies: list[Callable[[Response], None]] = field(default_factory=list)

    @property
    def csrf_token(self) -> str:
        return csrf.token_for(self.session, self.settings)

    def field(self, name: str, default: str = "") -> str:
        """A trimmed text field of the submitted form."""
        if self.form is None:
            return default
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else default


@lru_cache(maxsize=1)
def weui_available() -> bool:
    """Whether the build step put WeUI's stylesheet in place (pages work without it, with our fallback)."""
    return WEUI_CSS.is_file()


@lru_cache(maxsize=1)
def _fallback_css() -> str:
    return FALLBACK_CSS.read_text(encoding="utf-8") if FALLBACK_CSS.is_file() else ""


@lru_cache(maxsize=64)
def asset_url(path: str) -> str:
    """``/static/<path>?v=<mtime>``: cacheable for long, refreshed when the file changes."""
    file = STATIC_DIR / path
    version = int(file.stat().st_mtime) if file.is_file() else 0
    return f"/static/{path}?v={version}"


def _fmt_time(value: Any) -> str:
    return local(value).strftime("%m-%d %H:%M") if value else ""


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(asset=asset_url, weui=weui_available)
    env.filters["time"] = _fmt_time
    env.filters["urlq"] = lambda v: quote(str(v), safe="")
    return env


def _csp(nonce: str) -> str:
    # The WeCom/WeChat JS-SDK files are only loaded inside their WebViews; everything else is our own origin.
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}' https://res.wx.qq.com https://open.work.weixin.qq.com "
        "https://wwcdn.weixin.qq.com; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: blob: https://*.qlogo.cn https://*.qpic.cn; "
        "connect-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"
    )


def _finish(response: Response, ctx: Ctx) -> Response:
    response.headers["content-security-policy"] = _csp(ctx.nonce)
    response.headers["cache-control"] = "no-store"
    response.headers["permissions-policy"] = "camera=(), microphone=(), geolocation=()"
    if ctx.session.fresh:
        sessions.save(response, ctx.session, ctx.settings)
    for apply in ctx.cookies:
        apply(response)
    return response


def render(request: Request, ctx: Ctx, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template with the shared context (CSRF token, CSP nonce, user, styles)."""
    ua = request.headers.get("user-agent", "").lower()
    context.setdefault("notice", None)
    context.setdefault("error", None)
    html = _env().get_template(template).render(
        request=request,
        csrf_token=ctx.csrf_token,
        nonce=ctx.nonce,
        me=ctx.staff,
        session=ctx.session,
        fallback_css="" if weui_available() else _fallback_css(),
        in_wecom="wxwork" in ua,
        in_wechat="micromessenger" in ua and "wxwork" not in ua,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    """303 See Other (after a POST the browser GETs the target)."""
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None, default: str) -> str:
    """A post-login destination: only our own /h5 and /console pages (no open redirect, no scheme, no //host)."""
    if value and len(value) <= 512 and _NEXT.match(value) and "//" not in value and ".." not in value:
        return value
    return default


def error_page(request: Request, ctx: Ctx, *, status: int, title: str, message: str,
               link: tuple[str, str] | None = None) -> HTMLResponse:
    """A plain Chinese page for anything that went wrong."""
    return render(request, ctx, "error.html", status=status, title=title, message=message, link=link)


Page = Callable[[Request, Ctx], Awaitable[Response]]


async def _read_form(request: Request) -> FormData | None:
    if request.method != "POST":
        return None
    return await request.form(max_files=MAX_UPLOAD_FILES, max_fields=64)


async def _staff_actor(staff: Staff) -> Actor:
    now = time.monotonic()
    hit = _actors.get(staff.id)
    if hit is not None and hit[0] > now:
        return hit[1]
    actor = await actor_for(staff)
    if len(_actors) > 10_000:
        _actors.clear()
    _actors[staff.id] = (now + ACTOR_CACHE_SECONDS, actor)
    return actor


def forget_actors() -> None:
    """Drop cached staff scopes (tests)."""
    _actors.clear()


def _wrap(page: Page, kind: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        settings: Settings = getattr(request.app.state, "settings", None) or get_settings()
        ctx = Ctx(settings=settings, session=sessions.load(request, settings), nonce=secrets.token_urlsafe(12))
        if await sessions.is_revoked(session=ctx.session):  # logged out: the cookie is dead everywhere
            ctx.session = sessions.replace_session(request, Session.anonymous())
        try:
            ctx.form = await _read_form(request)
        except Exception:  # multipart limits, broken bodies
            return _finish(error_page(request, ctx, status=400, title="提交失败", message="提交的内容无法读取。"), ctx)
        if request.method == "POST" and not csrf.verify(request, ctx.form, ctx.session, settings):
            log.info("h5.csrf_refused", path=request.url.path)
            return _finish(error_page(request, ctx, status=403, title="页面已过期",
                                      message="页面已过期或来源不正确，请返回刷新后重试。"), ctx)
        if kind is not None and ctx.session.kind != kind:
            return _finish(_login_needed(request, ctx, kind), ctx)
        if kind == "staff":
            staff = await Staff.get_or_none(id=ctx.session.staff_id, status="active")
            if staff is None:
                ctx.session = Session.anonymous()
                return _finish(error_page(request, ctx, status=403, title="无法使用工作台",
                                          message="你的账号不是在职的客服人员，或已被停用。请联系管理员。"), ctx)
            ctx.staff = staff
            ctx.actor = replace(await _staff_actor(staff), login_at=ctx.session.login_at)
        try:
            response = await page(request, ctx)
        except ReauthRequired as exc:
            response = _reauth_needed(request, exc)
        except NotFound:
            response = error_page(request, ctx, status=404, title="找不到", message="工单不存在，或你无权查看。")
        except PermissionDenied as exc:
            response = error_page(request, ctx, status=403, title="没有权限", message=exc.message)
        except DomainError as exc:
            response = error_page(request, ctx, status=exc.status_code, title="操作未完成", message=exc.message)
        except Exception:
            # a person on a phone gets a page, never a stack trace; the log has the details
            log.exception("h5.page_crashed", path=request.url.path)
            response = error_page(request, ctx, status=500, title="出错了", message="服务器开小差了，请稍后重试。")
        return _finish(response, ctx)

    endpoint.__name__ = page.__name__
    endpoint.__doc__ = page.__doc__
    return endpoint


def _login_needed(request: Request, ctx: Ctx, kind: str) -> Response:
    login = "/h5/login" if kind == "staff" else "/h5/my/login"
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"{login}?next={quote(safe_next(target, '/h5/'), safe='')}")
    return error_page(request, ctx, status=401, title="请先登录", message="登录已过期，请重新登录后再提交。",
                      link=(login, "重新登录"))


def _reauth_needed(request: Request, exc: ReauthRequired) -> Response:
    """A sensitive action with an old login: through the WeCom login again, then back to the page it came from
    (a script asking for JSON gets 401 ``reauth_required`` with the login URL instead)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form's action (…/reveal): back to the page that showed the form
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = not referer.netloc or referer.netloc == request.url.netloc
        target = referer.path + (f"?{referer.query}" if referer.query else "") if same_site else ""
        target = target or request.url.path.rsplit("/", 1)[0]
    login = f"/h5/login?reauth=1&next={quote(safe_next(target, '/h5/'), safe='')}"
    if "application/json" in request.headers.get("accept", ""):
        return error_response(401, exc.code, exc.message, {"login_url": login})
    return redirect(login)


def staff_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for logged-in, active staff (``ctx.staff`` and ``ctx.actor`` are set)."""
    return _wrap(page, "staff")


def customer_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for a logged-in WeChat customer (``ctx.session.openid``)."""
    return _wrap(page, "customer")


def public_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page anyone may open (login pages); POSTs still need the CSRF token."""
    return _wrap(page, None)
