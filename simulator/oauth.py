"""OAuth2 web authorisation as WeChat and WeCom run it, so the desk's login path is exercised for real.

* ``GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state[&agentid]#wechat_redirect``
  (open.weixin.qq.com): the real page is silent inside WeChat/WeCom (the WebView knows who is there); here a small
  page lets the person pick who they are (an MP follower, or a WeCom member), then redirects to
  ``redirect_uri?code=CODE&state=STATE`` like the platform does. The code is single-use and lives 5 minutes.
  MP: 网页授权 https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html;
  WeCom: 构造网页授权链接 https://developer.work.weixin.qq.com/document/path/91022.
* ``GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`` (api.weixin.qq.com): the MP code
  exchange, ``{"access_token", "expires_in", "refresh_token", "openid", "scope"}``; 40029 for an unknown or expired
  code, 40163 for a used one, 40013 for an unknown appid, 40125 for a wrong secret.
* ``GET /qyapi/cgi-bin/auth/getuserinfo?access_token&code`` (WeCom, 获取访问用户身份
  https://developer.work.weixin.qq.com/document/path/91023): ``{"userid"}`` for an active member, ``{"openid",
  "external_userid"}`` for anyone else; 40029 for a bad, used or expired code or one issued to another app.

Codes live in a WeCom-store extension, so ``SimulatorState.reset`` forgets them with everything else.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.responses import mp_error_body, wechat_json
from simulator.state import SimulatorState
from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["CODE_TTL_SECONDS", "Grant", "OAuthCodes", "codes_of", "oauth_page", "oauth_routes"]

CODE_TTL_SECONDS = 300
_MP_ERRMSG = {40002: "invalid grant_type", 40013: "invalid appid", 40029: "invalid code", 40125: "invalid appsecret",
              40163: "code been used"}
SCOPES = ("snsapi_base", "snsapi_userinfo", "snsapi_privateinfo")


@dataclass
class Grant:
    """One issued code: for which app, whom, and until when."""

    appid: str
    platform: str  # mp | wecom
    who: str
    scope: str
    agentid: str
    expires_at: float
    used: bool = False


class OAuthCodes:
    """Issued codes by value."""

    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {}
        self.issued = 0

    def issue(self, grant: Grant) -> str:
        code = secrets.token_urlsafe(24)
        self.grants[code] = grant
        self.issued += 1
        return code


def _codes(state: SimulatorState) -> OAuthCodes:
    return state.wecom.extension("oauth_codes", OAuthCodes)


def codes_of(state: SimulatorState) -> OAuthCodes:
    """The issued codes (shared with the QR-code login of ``simulator.wwlogin``)."""
    return _codes(state)


def oauth_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A platform-looking page (the QR-code login page uses it too)."""
    return _page(title, body, status)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;margin:0;padding:16px;background:#ededed}}"
        "h1{font-size:18px}.who{display:block;margin:8px 0;padding:14px;background:#fff;border-radius:8px;color:#111;"
        "text-decoration:none}.hint{color:#888;font-size:13px}input{padding:10px;width:60%}button{padding:10px}"
        f"</style></head><body><p class=hint>模拟器 · 网页授权</p>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _error(message: str) -> HTMLResponse:
    # the real page shows a short Chinese error and never redirects on bad parameters
    return _page("授权失败", f"<h1>{escape(message)}</h1>", status=400)


def _platform(state: SimulatorState, appid: str) -> str | None:
    if appid and appid == state.wecom.corp_id:
        return "wecom"
    try:
        state.mp.account(appid)
    except KeyError:
        return None
    return "mp"


def _candidates(state: SimulatorState, platform: str, appid: str) -> list[tuple[str, str]]:
    with state.lock:
        if platform == "wecom":
            return [(u.userid, u.name) for u in state.wecom.users.values()]
        return [(openid, user.remark or openid) for (aid, openid), user in state.mp.users.items() if aid == appid]


async def authorize(request: Request) -> Response:
    """The authorize page: validate like the platform, then offer the identities to log in as."""
    state: SimulatorState = request.app.state.sim
    q = request.query_params
    appid, redirect_uri, scope = q.get("appid", ""), q.get("redirect_uri", ""), q.get("scope", "")
    platform = _platform(state, appid)
    if platform is None:
        return _error("参数错误：appid 无效")
    if q.get("response_type") != "code" or scope not in SCOPES:
        return _error("参数错误：response_type 或 scope 无效")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _error("redirect_uri 参数错误")
    base = {k: q.get(k, "") for k in ("appid", "redirect_uri", "scope", "state", "agentid")}
    links = "".join(
        f'<a class="who" href="/connect/oauth2/grant?{escape(urlencode({**base, "who": who}))}">'
        f"{escape(name)} <span class=hint>{escape(who)}</span></a>"
        for who, name in _candidates(state, platform, appid)
    )
    label = "企业微信成员" if platform == "wecom" else "微信用户 openid"
    hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in base.items())
    form = (f'<form action="/connect/oauth2/grant" method="get">{hidden}'
            f'<input name="who" placeholder="{label}" aria-label="{label}"> <button>以此身份登录</button></form>')
    title = "企业微信登录" if platform == "wecom" else "微信网页授权"
    return _page(title, f"<h1>{title}</h1><p class=hint>选择身份：</p>{links}{form}")


async def grant(request: Request) -> Response:
    """Issue a code for the chosen identity and go back to the desk (what the silent real page does)."""
    state: SimulatorState = request.app.state.sim
    q = request.query_params
    appid, who, redirect_uri = q.get("appid", ""), q.get("who", "").strip(), q.get("redirect_uri", "")
    platform = _platform(state, appid)
    if platform is None or not who or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _error("参数错误")
    with state.lock:
        code = _codes(state).issue(Grant(appid=appid, platform=platform, who=who, scope=q.get("scope", ""),
                                         agentid=q.get("agentid", ""),
                                         expires_at=state.clock.now() + CODE_TTL_SECONDS))
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}",
                            status_code=302)


def _take(state: SimulatorState, code: str, platform: str, appid: str) -> Grant | int:
    """The grant behind a code (marked used), or the errcode to answer."""
    with state.lock:
        grant_ = _codes(state).grants.get(code)
        if grant_ is None or grant_.platform != platform or grant_.appid != appid:
            return 40029
        if grant_.used:
            return 40163 if platform == "mp" else 40029
        if state.clock.now() >= grant_.expires_at:
            return 40029
        grant_.used = True
        return grant_


async def sns_access_token(request: Request) -> Response:
    """``GET /sns/oauth2/access_token``: the MP code exchange."""
    state: SimulatorState = request.app.state.sim
    q = request.query_params
    appid, errcode = q.get("appid", ""), 0
    body: dict[str, Any]
    try:
        account = state.mp.account(appid)
    except KeyError:
        account = None
    if q.get("grant_type") != "authorization_code":
        errcode = 40002
    elif account is None:
        errcode = 40013
    elif q.get("secret") != account.secret:
        errcode = 40125
    if errcode == 0:
        taken = _take(state, q.get("code", ""), "mp", appid)
        if isinstance(taken, int):
            errcode = taken
        else:
            body = {"access_token": secrets.token_urlsafe(48), "expires_in": 7200,
                    "refresh_token": secrets.token_urlsafe(48), "openid": taken.who, "scope": taken.scope}
    if errcode:
        body = mp_error_body(errcode, _MP_ERRMSG[errcode])
    state.record_api_call(platform="mp", method="GET", path="sns/oauth2/access_token",
                          query={k: ("***" if k == "secret" else v) for k, v in q.items()}, body=b"",
                          appid=appid or None, errcode=errcode or None, http_status=200)
    return wechat_json(body)


def _outsider_openid(corp_id: str, who: str) -> str:
    return "o" + hashlib.sha256(f"{corp_id}:{who}".encode()).hexdigest()[:27]


async def wecom_getuserinfo(call: WeComCall) -> dict[str, Any]:
    """``GET auth/getuserinfo?code``: a member's userid, or an outsider's openid."""
    app = call.require_app()
    taken = _take(call.state, call.request.query_params.get("code", ""), "wecom", call.wecom.corp_id)
    if isinstance(taken, int):
        raise WeComError(taken)
    if taken.agentid and app.agent_id is not None and taken.agentid != str(app.agent_id):
        raise WeComError(40029)  # a code belongs to the app whose login page issued it
    with call.state.lock:
        user = call.wecom.users.get(taken.who)
        active = user is not None and user.status == 1
    if active:
        return {"userid": taken.who}
    return {"openid": _outsider_openid(call.wecom.corp_id, taken.who),
            "external_userid": "wm" + _outsider_openid(call.wecom.corp_id, taken.who)[1:]}


def oauth_routes() -> list[BaseRoute]:
    """The OAuth pages and code exchanges (mounted beside the MP and WeCom API routes)."""
    return [
        Route("/connect/oauth2/authorize", authorize, methods=["GET"], name="oauth:authorize"),
        Route("/connect/oauth2/grant", grant, methods=["GET"], name="oauth:grant"),
        Route("/sns/oauth2/access_token", sns_access_token, methods=["GET"], name="oauth:sns_access_token"),
        # a valid-code getuserinfo is exempt from WeCom's rate limits (path/90454)
        wecom_route("auth/getuserinfo", wecom_getuserinfo, methods=["GET"], rate_limited=False),
    ]
