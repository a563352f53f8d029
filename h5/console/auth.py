"""Console login: WeCom's desktop QR-code login (企业微信扫码登录), the development login, and logout.

Follows 企业微信登录 · 构造企业微信登录链接 https://developer.work.weixin.qq.com/document/path/98152 (the current
``wwlogin/sso/login`` page, successor of 构造扫码登录链接 https://developer.work.weixin.qq.com/document/path/91019)
and 获取访问用户身份 https://developer.work.weixin.qq.com/document/path/91023:

1. ``/console/auth/wecom?next=<path>`` sets a short-lived signed cookie holding a random ``state`` and the deep
   link, and redirects to ``{WECOM_LOGIN_BASE}/wwlogin/sso/login?login_type=CorpApp&appid=<corpid>&agentid=<agentid>
   &redirect_uri=<PUBLIC_URL>/console/auth/callback&state=<state>`` (login_type CorpApp: our self-built app);
2. the member scans the QR code with WeCom on their phone and confirms; WeCom redirects the desktop browser to
   ``redirect_uri?code=CODE&state=STATE`` (without ``code`` when they refused);
3. the state must match the cookie (login CSRF), the code is exchanged through ``auth/getuserinfo``
   (``h5.platform.exchange_wecom_code``, the same call as the H5 OAuth login, made by ``app.wecom``), only an active
   staff member gets in, and a NEW session is issued before redirecting to the deep link.

The session is the H5 one (``h5.session``, cookie path ``/``): logging in here also logs in the H5 workbench and
the other way round. The development login (``h5.auth.dev_login_enabled``: simulator only, never against Tencent)
picks a seeded staff member as on ``/h5/login``; with the simulator the QR button goes to its ``wwlogin/sso/login``
page, where a simulated member "scans".
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.logs import get_logger
from app.settings import Settings
from app.staff import service as staff_service
from app.staff.models import Staff
from h5 import platform
from h5 import session as sessions
from h5.auth import PendingLogin, dev_login_enabled
from h5.console.web import HOME, LOGIN, console_error, console_public_page, render_console
from h5.web import Ctx, redirect, safe_next

__all__ = ["CALLBACK_PATH", "qr_login_url"]

log = get_logger(__name__)

PENDING_COOKIE = "gd_console_login"
PENDING = PendingLogin(cookie=PENDING_COOKIE, path="/console", salt="gongdan.console.qrlogin")
CALLBACK_PATH = "/console/auth/callback"


def qr_login_url(settings: Settings, *, redirect_uri: str, state: str) -> str:
    """WeCom's QR-code login page for our self-built app (path/98152)."""
    params = {"login_type": "CorpApp", "appid": settings.wecom.corp_id, "agentid": str(settings.wecom.agent_id),
              "redirect_uri": redirect_uri, "state": state}
    return f"{settings.wecom_login_base}/wwlogin/sso/login?{urlencode(params, quote_via=quote)}"


def _qr_configured(settings: Settings) -> bool:
    return bool(settings.wecom.corp_id and settings.wecom.agent_id)


@console_public_page
async def login(request: Request, ctx: Ctx) -> Response:
    """The login page: 「企业微信扫码登录」, plus the development login with the simulator."""
    next_url = safe_next(request.query_params.get("next"), HOME)
    reauth = request.query_params.get("reauth") == "1"
    if ctx.staff is not None and not reauth:
        return redirect(next_url)
    people: list[tuple[str, str, str]] = []
    dev = dev_login_enabled(ctx.settings)
    if dev:
        rows = await Staff.filter(status="active").order_by("id").limit(100)
        people = [(p.userid, p.name, p.role) for p in rows]
    return render_console(request, ctx, "console/login.html", active="", title="登录管理后台", breadcrumb=[],
                          next_url=next_url, dev=dev, people=people, reauth=reauth,
                          qr_url=f"/console/auth/wecom?next={quote(next_url, safe='')}"
                          if _qr_configured(ctx.settings) else None)


@console_public_page
async def qr_start(request: Request, ctx: Ctx) -> Response:
    """Remember state + deep link in a signed cookie and go to WeCom's QR-code login page."""
    if not _qr_configured(ctx.settings):
        return console_error(request, ctx, status=503, title="暂时无法登录",
                             message="企业微信应用尚未配置（WECOM_CORP_ID / WECOM_AGENT_ID），请联系管理员。")
    state = PENDING.start(ctx, next=safe_next(request.query_params.get("next"), HOME))
    url = qr_login_url(ctx.settings, redirect_uri=f"{ctx.settings.public_url}{CALLBACK_PATH}", state=state)
    return RedirectResponse(url, status_code=302)


@console_public_page
async def callback(request: Request, ctx: Ctx) -> Response:
    """WeCom came back from the QR-code login: exchange the code and start a new session."""
    pending = PENDING.take(request, ctx)
    code = request.query_params.get("code", "")
    if pending is None:
        return console_error(request, ctx, status=400, title="登录链接已失效",
                             message="登录链接已失效或不完整，请重新扫码登录。", link=(LOGIN, "重新登录"))
    if not code:  # the member pressed 拒绝 on the phone
        return console_error(request, ctx, status=400, title="未完成登录", message="你已取消企业微信扫码授权。",
                             link=(LOGIN, "重新登录"))
    identity = await platform.exchange_wecom_code(ctx.settings, code=code)
    staff = await staff_service.active_by_userid(userid=identity.userid) if identity.userid else None
    if staff is None:
        log.info("console.login_refused", member=bool(identity.userid))
        ctx.session = sessions.replace_session(request, sessions.Session.anonymous())
        ctx.staff = ctx.actor = None
        return console_error(request, ctx, status=403, title="无法使用管理后台",
                             message="你不是本企业在职的客服人员，无法登录管理后台。如有疑问请联系管理员。",
                             link=(LOGIN, "返回登录"))
    ctx.session = ctx.session.login(kind="staff", staff_id=staff.id)
    log.info("console.login", staff_id=staff.id, via="wecom_qr")
    return redirect(safe_next(str(pending.get("next", "")), HOME))


@console_public_page
async def dev_login(request: Request, ctx: Ctx) -> Response:
    """The development login (simulator only), exactly like ``/h5/dev-login``."""
    if not dev_login_enabled(ctx.settings):
        return console_error(request, ctx, status=404, title="找不到", message="页面不存在。")
    staff = await Staff.get_or_none(userid=ctx.field("userid"), status="active")
    if staff is None:
        return console_error(request, ctx, status=403, title="无法使用管理后台", message="该成员不存在或已停用。",
                             link=(LOGIN, "返回登录"))
    ctx.session = ctx.session.login(kind="staff", staff_id=staff.id)
    log.info("console.login", staff_id=staff.id, via="dev")
    return redirect(safe_next(ctx.field("next"), HOME))


@console_public_page
async def logout(request: Request, ctx: Ctx) -> Response:
    """End the session server-side (a POST with the CSRF token); the H5 workbench is logged out too."""
    if ctx.session.kind != "anon":
        await sessions.revoke(session=ctx.session, settings=ctx.settings)
        log.info("console.logout", kind=ctx.session.kind)
    ctx.session = sessions.Session.anonymous()
    return redirect(LOGIN)
