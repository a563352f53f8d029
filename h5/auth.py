"""Logging in and out: WeCom OAuth2 for staff, Official Account ``snsapi_base`` for customers, and the development
login of ``make run``.

Follows 构造网页授权链接 / 获取访问用户身份 https://developer.work.weixin.qq.com/document/path/91022 and
https://developer.work.weixin.qq.com/document/path/91023 (staff), and 网页授权
https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html (customers).

The round trip: a page that needs a login redirects to ``/h5/login?next=<path>``; we set a short-lived signed cookie
holding a random ``state`` and the deep link, and redirect to the authorize page; WeChat/WeCom comes back to our
callback with ``code`` and ``state``; the state must match the cookie (login CSRF), the code is exchanged for the
userid (or openid), and a NEW session is issued before redirecting to the deep link (only our own /h5 paths).

The development login (pick a seeded staff member or a simulated customer) exists only while the simulator stands in
for WeChat: ``GONGDAN_SIMULATOR`` must be on and no platform URL may point at Tencent (real credentials only work
against real hosts), so it cannot be switched on in a real deployment.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.channels.wechat_mp import accounts
from app.customers.models import CustomerIdentity
from app.logs import get_logger
from app.settings import Settings
from app.staff import service as staff_service
from app.staff.models import Staff
from h5 import platform
from h5 import session as sessions
from h5.web import Ctx, error_page, public_page, redirect, render, safe_next

__all__ = ["PendingLogin", "dev_login_enabled"]

log = get_logger(__name__)

STAFF_HOME = "/h5/"
CUSTOMER_HOME = "/h5/my/tickets"


def dev_login_enabled(settings: Settings) -> bool:
    """The development login: only with the simulator, and never while any platform URL points at Tencent."""
    if not settings.simulator or settings.env == "production":
        return False
    for url in (settings.wechat_api_base, settings.wecom_api_base, settings.wechat_oauth_base):
        host = (urlsplit(url).hostname or "").lower()
        if host == "qq.com" or host.endswith(".qq.com"):
            return False
    return True


@dataclass(frozen=True)
class PendingLogin:
    """A login away at WeChat or WeCom: a random ``state`` and what to do on return, in a short-lived signed cookie
    on ``path``. The state must come back (login CSRF), and only once: the cookie is dropped when it does."""

    cookie: str
    path: str
    salt: str
    seconds: int = 600

    def start(self, ctx: Ctx, **data: str) -> str:
        """Remember ``data`` under a new state (the cookie goes out with the response); the state."""
        state = secrets.token_urlsafe(16)
        value = self._signer(ctx.settings).dumps({"n": state, **data})
        secure = ctx.settings.public_url.startswith("https://")
        ctx.cookies.append(lambda r: r.set_cookie(self.cookie, value, max_age=self.seconds, path=self.path,
                                                  httponly=True, samesite="lax", secure=secure))
        return state

    def take(self, request: Request, ctx: Ctx, **expect: str) -> dict[str, Any] | None:
        """What was remembered for the ``state`` that came back, when it holds ``expect`` (else None)."""
        ctx.cookies.append(lambda r: r.delete_cookie(self.cookie, path=self.path))
        raw = request.cookies.get(self.cookie, "")
        try:
            data = self._signer(ctx.settings).loads(raw, max_age=self.seconds) if raw else None
        except BadSignature:  # also expired
            data = None
        state = request.query_params.get("state", "")
        if not isinstance(data, dict) or not state or any(data.get(k) != v for k, v in expect.items()):
            return None
        if not hmac.compare_digest(str(data.get("n", "")).encode(), state.encode()):
            return None
        return data

    def _signer(self, settings: Settings) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(str(settings.secret_key), salt=self.salt)


PENDING = PendingLogin(cookie="gd_oauth", path="/h5", salt="gongdan.h5.oauth")


def _start_oauth(request: Request, ctx: Ctx, *, kind: str, next_url: str, account: Any = None) -> Response:
    """Remember state + deep link in a signed cookie and send the browser to the authorize page."""
    state = PENDING.start(ctx, k=kind, next=next_url, a=account.key if account else "")
    base = ctx.settings.public_url
    if kind == "staff":
        url = platform.wecom_authorize_url(ctx.settings, redirect_uri=f"{base}/h5/auth/wecom/callback", state=state)
    else:
        url = platform.mp_authorize_url(ctx.settings, appid=account.appid, redirect_uri=f"{base}/h5/my/auth/callback",
                                        state=state)
    return RedirectResponse(url, status_code=302)


def _expired_link(request: Request, ctx: Ctx, login: str) -> Response:
    return error_page(request, ctx, status=400, title="登录链接已失效",
                      message="登录链接已失效或不完整，请重新打开页面。", link=(login, "重新登录"))


# ---- staff ---------------------------------------------------------------------------------------------------


@public_page
async def staff_login(request: Request, ctx: Ctx) -> Response:
    """Staff login: the development picker with the simulator, WeCom OAuth otherwise."""
    next_url = safe_next(request.query_params.get("next"), STAFF_HOME)
    # reauth=1: a sensitive action needs a fresh login (app.security.reauth), so a logged-in member logs in again
    if ctx.session.kind == "staff" and request.query_params.get("reauth") != "1":
        return redirect(next_url)
    if dev_login_enabled(ctx.settings):
        people = await Staff.filter(status="active").order_by("id").limit(100)
        return render(request, ctx, "login_dev.html", title="开发登录", kind="staff", next_url=next_url,
                      people=[(p.userid, p.name, p.position or p.role) for p in people],
                      oauth_url=f"/h5/auth/wecom?next={quote(next_url, safe='')}"
                      if ctx.settings.wecom.corp_id else None)
    return _wecom_or_error(request, ctx, next_url)


def _wecom_or_error(request: Request, ctx: Ctx, next_url: str) -> Response:
    if not ctx.settings.wecom.corp_id or not ctx.settings.wecom.agent_id:
        return error_page(request, ctx, status=503, title="暂时无法登录",
                          message="企业微信应用尚未配置（WECOM_CORP_ID / WECOM_AGENT_ID），请联系管理员。")
    return _start_oauth(request, ctx, kind="staff", next_url=next_url)


@public_page
async def wecom_start(request: Request, ctx: Ctx) -> Response:
    """Go to WeCom's authorize page."""
    return _wecom_or_error(request, ctx, safe_next(request.query_params.get("next"), STAFF_HOME))


@public_page
async def wecom_callback(request: Request, ctx: Ctx) -> Response:
    """WeCom came back with a code: find the staff member and start their session."""
    pending = PENDING.take(request, ctx, k="staff")
    code = request.query_params.get("code", "")
    if pending is None or not code:
        return _expired_link(request, ctx, "/h5/login")
    identity = await platform.exchange_wecom_code(ctx.settings, code=code)
    staff = await staff_service.active_by_userid(userid=identity.userid) if identity.userid else None
    if staff is None:
        log.info("h5.login_refused", member=bool(identity.userid))
        return error_page(request, ctx, status=403, title="无法使用工作台",
                          message="你不是本企业在职的客服人员，无法使用工单工作台。如有疑问请联系管理员。")
    ctx.session = ctx.session.login(kind="staff", staff_id=staff.id)
    log.info("h5.login", staff_id=staff.id, via="wecom")
    return redirect(safe_next(str(pending.get("next", "")), STAFF_HOME))


@public_page
async def staff_dev_login(request: Request, ctx: Ctx) -> Response:
    """The development login (simulator only)."""
    if not dev_login_enabled(ctx.settings):
        return error_page(request, ctx, status=404, title="找不到", message="页面不存在。")
    staff = await Staff.get_or_none(userid=ctx.field("userid"), status="active")
    if staff is None:
        return error_page(request, ctx, status=403, title="无法使用工作台", message="该成员不存在或已停用。")
    ctx.session = ctx.session.login(kind="staff", staff_id=staff.id)
    log.info("h5.login", staff_id=staff.id, via="dev")
    return redirect(safe_next(ctx.field("next"), STAFF_HOME))


@public_page
async def logout(request: Request, ctx: Ctx) -> Response:
    """End the session server-side (a POST with the CSRF token, so no other site can log anyone out)."""
    was = ctx.session.kind
    if was != "anon":
        await sessions.revoke(session=ctx.session, settings=ctx.settings)
        log.info("h5.logout", kind=was)
    ctx.session = sessions.Session.anonymous()
    return redirect("/h5/my/login" if was == "customer" else "/h5/login")


# ---- customers -----------------------------------------------------------------------------------------------


async def _account(request: Request) -> accounts.MPAccount | None:
    key = request.query_params.get("account") or accounts.DEFAULT_KEY
    return await accounts.by_key(key)


def _no_account(request: Request, ctx: Ctx) -> Response:
    return error_page(request, ctx, status=503, title="暂时无法登录", message="公众号尚未配置，请稍后再试。")


@public_page
async def customer_login(request: Request, ctx: Ctx) -> Response:
    """Customer login: the development picker with the simulator, silent snsapi_base otherwise."""
    next_url = safe_next(request.query_params.get("next"), CUSTOMER_HOME)
    if ctx.session.kind == "customer":
        return redirect(next_url)
    account = await _account(request)
    if account is None:
        return _no_account(request, ctx)
    if dev_login_enabled(ctx.settings):
        idents = await CustomerIdentity.filter(kind="mp_openid", scope=account.key).select_related(
            "customer").order_by("-id").limit(50)
        return render(request, ctx, "login_dev.html", title="开发登录（客户）", kind="customer", next_url=next_url,
                      people=[(i.value, i.customer.name or "微信用户", "") for i in idents], account=account.key,
                      oauth_url=f"/h5/my/auth?next={quote(next_url, safe='')}&account={quote(account.key)}")
    return _start_oauth(request, ctx, kind="customer", next_url=next_url, account=account)


@public_page
async def mp_start(request: Request, ctx: Ctx) -> Response:
    """Go to the Official Account's authorize page."""
    account = await _account(request)
    if account is None:
        return _no_account(request, ctx)
    return _start_oauth(request, ctx, kind="customer", account=account,
                        next_url=safe_next(request.query_params.get("next"), CUSTOMER_HOME))


@public_page
async def mp_callback(request: Request, ctx: Ctx) -> Response:
    """WeChat came back with a code: exchange it for the openid and start the customer's session."""
    pending = PENDING.take(request, ctx, k="customer")
    code = request.query_params.get("code", "")
    if pending is None or not code:
        return _expired_link(request, ctx, "/h5/my/login")
    account = await accounts.by_key(str(pending.get("a") or accounts.DEFAULT_KEY))
    if account is None:
        return _no_account(request, ctx)
    openid = await platform.exchange_mp_code(ctx.settings, appid=account.appid, secret=account.secret, code=code)
    ctx.session = ctx.session.login(kind="customer", openid=openid, account=account.key)
    log.info("h5.customer_login", account=account.key)
    return redirect(safe_next(str(pending.get("next", "")), CUSTOMER_HOME))


@public_page
async def customer_dev_login(request: Request, ctx: Ctx) -> Response:
    """The development login for a simulated customer (simulator only)."""
    if not dev_login_enabled(ctx.settings):
        return error_page(request, ctx, status=404, title="找不到", message="页面不存在。")
    openid = ctx.field("openid")
    account = await accounts.by_key(ctx.field("account") or accounts.DEFAULT_KEY)
    if not openid or account is None:
        return error_page(request, ctx, status=400, title="无法登录", message="请选择或填写一个 openid。")
    ctx.session = ctx.session.login(kind="customer", openid=openid[:64], account=account.key)
    return redirect(safe_next(ctx.field("next"), CUSTOMER_HOME))
