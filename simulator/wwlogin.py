"""WeCom's desktop QR-code login (企业微信扫码登录) as the platform runs it, so the console's login is exercised.

* ``GET /wwlogin/sso/login?login_type=CorpApp&appid=<corpid>&agentid=<agentid>&redirect_uri&state[&lang]``
  (login.work.weixin.qq.com; 构造企业微信登录链接 https://developer.work.weixin.qq.com/document/path/98152): the real
  page shows a QR code that a member scans with WeCom on their phone and confirms there. Here the page lists the
  corp's members instead; choosing one is the scan (``/wwlogin/sso/scan``), which issues a single-use code (5
  minutes) and redirects to ``redirect_uri?code=CODE&state=STATE``; 「拒绝」 redirects with ``state`` only, as the
  platform does when the member refuses on the phone.
* The code is exchanged by ``auth/getuserinfo`` (``simulator.oauth``): the same store of codes as the web OAuth
  login, so a code works once, for the app (agentid) whose login page issued it, and gives ``userid`` for an active
  member only.

Parameter errors show a Chinese error page and never redirect (an unknown appid or agentid, a login_type other than
``CorpApp``, a redirect_uri that is not http(s)), as the real page does.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.oauth import CODE_TTL_SECONDS, Grant, codes_of, oauth_page
from simulator.state import SimulatorState

__all__ = ["wwlogin_routes"]

_PARAMS = ("login_type", "appid", "agentid", "redirect_uri", "state")
_STATUS = {1: "", 2: "已禁用", 4: "未激活", 5: "已退出"}


def _error(message: str) -> HTMLResponse:
    return oauth_page("企业微信登录", f"<h1>{escape(message)}</h1>", status=400)


def _check(state: SimulatorState, request: Request) -> str | None:
    """What is wrong with the login link (None: nothing)."""
    q = request.query_params
    if q.get("login_type") != "CorpApp":
        return "参数错误：login_type 无效"
    if not q.get("appid") or q.get("appid") != state.wecom.corp_id:
        return "参数错误：appid 无效"
    agentid = q.get("agentid", "")
    with state.lock:
        apps = [a for a in state.wecom.apps.values() if a.agent_id is not None and str(a.agent_id) == agentid]
    if not apps:
        return "参数错误：agentid 无效"
    if urlsplit(q.get("redirect_uri", "")).scheme not in ("http", "https"):
        return "redirect_uri 参数错误"
    return None


async def login_page(request: Request) -> Response:
    """The QR-code page: here, the members to "scan" as."""
    state: SimulatorState = request.app.state.sim
    problem = _check(state, request)
    if problem:
        return _error(problem)
    base = {k: request.query_params.get(k, "") for k in _PARAMS}
    with state.lock:
        members = [(u.userid, u.name, _STATUS.get(u.status, "")) for u in state.wecom.users.values()]
    links = "".join(
        f'<a class="who" href="/wwlogin/sso/scan?{escape(urlencode({**base, "who": who}))}">'
        f"{escape(name)} <span class=hint>{escape(who)} {escape(note)}</span></a>"
        for who, name, note in members
    )
    refuse = f'<p><a class=hint href="/wwlogin/sso/scan?{escape(urlencode({**base, "refuse": "1"}))}">拒绝</a></p>'
    return oauth_page("企业微信登录", "<h1>企业微信登录</h1><p class=hint>请使用企业微信扫描二维码登录。"
                      f"模拟器：选择扫码的成员。</p>{links}{refuse}")


async def scan(request: Request) -> Response:
    """A member scanned and confirmed (or refused): back to the site with a code (or without)."""
    state: SimulatorState = request.app.state.sim
    problem = _check(state, request)
    if problem:
        return _error(problem)
    q = request.query_params
    redirect_uri = q.get("redirect_uri", "")
    sep = "&" if "?" in redirect_uri else "?"
    if q.get("refuse") == "1":
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode({'state': q.get('state', '')})}", status_code=302)
    who = q.get("who", "").strip()
    if not who:
        return _error("参数错误")
    with state.lock:
        code = codes_of(state).issue(Grant(appid=q.get("appid", ""), platform="wecom", who=who, scope="",
                                           agentid=q.get("agentid", ""),
                                           expires_at=state.clock.now() + CODE_TTL_SECONDS))
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}",
                            status_code=302)


def wwlogin_routes() -> list[BaseRoute]:
    """The QR-code login pages (the code exchange is ``auth/getuserinfo`` in ``simulator.oauth``)."""
    return [
        Route("/wwlogin/sso/login", login_page, methods=["GET"], name="wwlogin:login"),
        Route("/wwlogin/sso/scan", scan, methods=["GET"], name="wwlogin:scan"),
    ]
