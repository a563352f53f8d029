"""A WeChat-looking chat page for people: type as a customer, see what the desk sends back.

``GET /_sim/`` lists accounts and customers; ``GET /_sim/chat?appid=&openid=`` is the phone-sized chat; the page
POSTs to ``/_sim/chat/send``, which uses ``WeChatDriver`` to deliver a real signed callback to the account's
callback URL, and polls ``/_sim/mp/conversation``. Everything is escaped: Jinja autoescape on the server, and the
page's script only ever sets ``textContent``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.driver import DeliveryResult, WeChatDriver
from simulator.state import SimulatorState
from simulator.wecom.kf import kf_state

__all__ = ["chat_routes"]

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

ACTIONS = ("text", "image", "subscribe", "unsubscribe", "click", "view", "location")
#: the shared phone page's paths and words for an Official Account chat (templates/_phone.html)
PAGE = {"conversation": "/_sim/mp/conversation", "sendUrl": "/_sim/chat/send", "identity": ["appid", "openid"],
        "outAvatar": "号", "sending": "投递中…", "failed": "投递：", "failedDefault": "失败", "delivered": "已送达"}


def _state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.sim
    return state


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context))


async def index(request: Request) -> Response:
    """Accounts, their customers, and a way to start a new chat (Official Accounts and kf accounts)."""
    state = _state(request)
    with state.lock:
        accounts = [a.to_json() for a in state.mp.accounts.values()]
        users: dict[str, list[dict[str, Any]]] = {}
        for user in state.mp.users.values():
            users.setdefault(user.appid, []).append(user.to_json())
    kf = kf_state(state)
    with kf.lock:
        kf_accounts = [{"open_kfid": k, "name": v} for k, v in sorted(kf.accounts.items())]
    sms = [m.to_json() for m in reversed(state.sms.messages()[-20:])]
    return _render("index.html", accounts=accounts, users=users, new_openid=_new_openid(), kf_accounts=kf_accounts,
                   sms=sms)


async def chat(request: Request) -> Response:
    """The chat page for one customer of one account."""
    state = _state(request)
    appid = request.query_params.get("appid", "")
    openid = request.query_params.get("openid", "")
    try:
        account = state.mp_account(appid)
    except KeyError:
        return HTMLResponse("未知的公众号 appid", status_code=404)
    if not openid:
        return RedirectResponse("/_sim/chat?" + urlencode({"appid": appid, "openid": _new_openid()}), status_code=303)
    menu = state.mp.menu(appid) or {}
    return _render(
        "chat.html",
        account=account.to_json(),
        openid=openid,
        menu_buttons=_click_buttons(menu),
        config={"appid": appid, "openid": openid},
        page=PAGE,
    )


async def send(request: Request) -> Response:
    """Deliver one customer action through the driver; answers with a summary of the delivery."""
    state = _state(request)
    upload: UploadFile | None = None
    raw = await request.body()
    if raw.lstrip().startswith(b"{"):
        try:
            loaded = json.loads(raw)
        except ValueError:
            return JSONResponse({"ok": False, "error": "body is not JSON"}, status_code=400)
        fields = {k: str(v) for k, v in loaded.items()}
    else:  # the page's image upload (multipart) or a plain HTML form
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        file = form.get("file")
        upload = file if isinstance(file, UploadFile) else None
    appid, openid, action = fields.get("appid", ""), fields.get("openid", ""), fields.get("action", "")
    if action not in ACTIONS or not openid:
        return JSONResponse({"ok": False, "error": f"action must be one of {ACTIONS}; openid is required"}, 400)
    try:
        account = state.mp_account(appid)
    except KeyError:
        return JSONResponse({"ok": False, "error": "unknown appid"}, status_code=404)
    if not account.callback_url:
        return JSONResponse({"ok": False, "error": "this account has no callback_url"}, status_code=409)
    driver = WeChatDriver(state, account)
    result = await _perform(driver, action, openid, fields, upload)
    return JSONResponse(_summary(result))


async def _perform(
    driver: WeChatDriver, action: str, openid: str, fields: dict[str, str], upload: UploadFile | None
) -> DeliveryResult:
    if action == "image":
        if upload is None:
            return await driver.send_image(openid)
        content = await upload.read()
        return await driver.send_image(
            openid, content, content_type=upload.content_type or "image/png", filename=upload.filename or "image.png"
        )
    if action == "subscribe":
        return await driver.subscribe(openid, scene=fields.get("scene") or None)
    if action == "unsubscribe":
        return await driver.unsubscribe(openid)
    if action == "click":
        return await driver.click(openid, fields.get("key", ""))
    if action == "view":
        return await driver.view(openid, fields.get("url", ""))
    if action == "location":
        return await driver.send_location(
            openid,
            float(fields.get("lat") or 31.2304),
            float(fields.get("lng") or 121.4737),
            int(fields.get("scale") or 15),
            fields.get("label", ""),
        )
    return await driver.send_text(openid, fields.get("content", ""))


def _summary(result: DeliveryResult) -> dict[str, Any]:
    return {
        "ok": result.delivered and result.reply_error is None,
        "delivered": result.delivered,
        # MsgIds exceed 2**53, so JavaScript gets them as strings
        "msg_id": None if result.msg_id is None else str(result.msg_id),
        "attempts": [
            {"status": a.status_code, "elapsed": round(a.elapsed, 3), "body": a.body[:500]} for a in result.attempts
        ],
        "reply_error": result.reply_error,
        "reply": None if result.reply is None else result.reply.as_message(),
    }


def _click_buttons(menu: dict[str, Any]) -> list[dict[str, str]]:
    """The menu's CLICK/VIEW buttons, flattened, for the page's 菜单 panel."""
    out: list[dict[str, str]] = []
    for button in menu.get("button") or []:
        for item in [button, *(button.get("sub_button") or [])]:
            if item.get("type") == "click":
                out.append({"name": str(item.get("name", "")), "type": "click", "value": str(item.get("key", ""))})
            elif item.get("type") == "view":
                out.append({"name": str(item.get("name", "")), "type": "view", "value": str(item.get("url", ""))})
    return out


def _new_openid() -> str:
    return "oSim" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:24]


def chat_routes() -> list[BaseRoute]:
    """The HTML routes under ``/_sim/``."""
    return [
        Route("/_sim/", index, methods=["GET"]),
        Route("/_sim/chat", chat, methods=["GET"]),
        Route("/_sim/chat/send", send, methods=["POST"]),
    ]
