"""A chat page for people playing a 微信客服 (kf) customer: type as the customer, see what the desk sends back.

``GET /_sim/kf/chat?open_kfid=&external_userid=`` is the phone-sized chat. The page POSTs to ``/_sim/kf/chat/send``:
the simulator queues the customer's message in its kf store (as WeChat does) and announces it to the desk with a
real encrypted ``kf_msg_or_event`` callback carrying a fresh sync Token, sent to the self-built app's callback URL;
the desk then pulls with ``kf/sync_msg`` (接收消息和事件 https://developer.work.weixin.qq.com/document/path/94670).
The page polls ``/_sim/kf/conversation``, which lists the customer's messages and what the desk sent with
``kf/send_msg`` / ``kf/send_msg_on_event``; a ``msgmenu``'s click items are buttons, and clicking one sends the
item's text with its ``menu_id``, as WeChat does. Everything is escaped: Jinja autoescape on the server, and the
page's script only ever sets ``textContent``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.chat import _env as pages
from simulator.state import SimulatorState
from simulator.wecom.driver import WeComDriver
from simulator.wecom.kf import KfState, kf_state
from simulator.wecom.store import WeComApp

__all__ = ["callback_app", "kf_chat_routes", "new_external_userid"]

ACTIONS = ("text", "enter_session")
#: the shared phone page's paths and words for a 微信客服 chat (templates/_phone.html)
PAGE = {"conversation": "/_sim/kf/conversation", "sendUrl": "/_sim/kf/chat/send",
        "identity": ["open_kfid", "external_userid"], "outAvatar": "客服", "sending": "发送中…", "failed": "回调：",
        "failedDefault": "服务台未应答", "delivered": "已通知服务台"}
#: kf text messages are at most 2048 bytes (发送消息 path/94677); the customer side is held to the same
MAX_TEXT_BYTES = 2048

def new_external_userid() -> str:
    """A fresh external_userid in WeCom's shape (``wm`` + 30 characters)."""
    return "wm" + secrets.token_hex(15)


def callback_app(state: SimulatorState) -> WeComApp | None:
    """The app kf callbacks go to: the self-built app ("app") if it has a callback URL, else any app that has."""
    with state.lock:
        apps = [a for a in state.wecom.apps.values() if a.callback_url and a.agent_id is not None]
    apps.sort(key=lambda a: a.name != "app")
    return apps[0] if apps else None


def _state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.sim
    return state


def _kf(request: Request) -> KfState:
    return kf_state(_state(request))


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


async def chat(request: Request) -> Response:
    """The chat page for one customer of one kf account."""
    kf = _kf(request)
    open_kfid = request.query_params.get("open_kfid", "")
    external_userid = request.query_params.get("external_userid", "")
    with kf.lock:
        name = kf.accounts.get(open_kfid)
    if name is None:
        return HTMLResponse("未知的客服账号 open_kfid", status_code=404)
    if not external_userid:
        query = urlencode({"open_kfid": open_kfid, "external_userid": new_external_userid()})
        return RedirectResponse("/_sim/kf/chat?" + query, status_code=303)
    html = pages.get_template("kf_chat.html").render(
        name=name, external_userid=external_userid,
        config={"open_kfid": open_kfid, "external_userid": external_userid},
        page=PAGE,
    )
    return HTMLResponse(html)


async def send(request: Request) -> Response:
    """The customer writes (or enters the session): queue it, then send kf_msg_or_event to the desk."""
    try:
        data = json.loads(await request.body())
    except ValueError:
        return _error("body is not JSON", 400)
    if not isinstance(data, dict):
        return _error("body must be a JSON object", 400)
    fields = {k: str(v) for k, v in data.items() if v is not None}
    open_kfid, external_userid = fields.get("open_kfid", ""), fields.get("external_userid", "")
    action, content = fields.get("action", "text"), fields.get("content", "")
    if action not in ACTIONS or not external_userid:
        return _error(f"action must be one of {ACTIONS}; external_userid is required", 400)
    if action == "text" and not content.strip():
        return _error("content is required", 400)
    if len(content.encode("utf-8")) > MAX_TEXT_BYTES:
        return _error(f"content is longer than {MAX_TEXT_BYTES} bytes", 400)
    state = _state(request)
    kf = kf_state(state)
    with kf.lock:
        known = open_kfid in kf.accounts
    if not known:
        return _error("unknown open_kfid", 404)
    app = callback_app(state)
    if app is None:
        return _error("no WeCom app has a callback URL: kf callbacks have nowhere to go", 409)
    now = state.clock.now()
    if action == "enter_session":
        item = kf.event(now, open_kfid, external_userid, {"event_type": "enter_session", "scene": "sim_chat"})
    else:
        body: dict[str, Any] = {"content": content}
        if fields.get("menu_id"):
            body["menu_id"] = fields["menu_id"][:128]
        item = kf.customer_message(now, open_kfid, external_userid, "text", body)
    token = kf.issue_token(now, open_kfid)
    driver = WeComDriver(state, app, transport=kf.callback_transport)
    delivery = await driver.send_event("kf_msg_or_event", [("Token", token), ("OpenKfId", open_kfid)],
                                       from_user=None)
    return JSONResponse({
        "ok": delivery.delivered,
        "msgid": item["msgid"],
        "attempts": [{"status": status, "elapsed": round(elapsed, 3), "body": text[:500]}
                     for status, elapsed, text in delivery.attempts],
    })


async def conversation(request: Request) -> Response:
    """One customer's kf chat after ``since_id``: their messages and events, and what the desk sent."""
    open_kfid = request.query_params.get("open_kfid", "")
    external_userid = request.query_params.get("external_userid", "")
    if not open_kfid or not external_userid:
        return _error("open_kfid and external_userid are required", 400)
    try:
        since_id = max(0, int(request.query_params.get("since_id") or 0))
    except ValueError:
        return _error("since_id must be a whole number", 400)
    return JSONResponse({"items": _kf(request).conversation(open_kfid, external_userid, since_id)})


def kf_chat_routes() -> list[BaseRoute]:
    """The kf chat routes under ``/_sim/kf/``."""
    return [
        Route("/_sim/kf/chat", chat, methods=["GET"]),
        Route("/_sim/kf/chat/send", send, methods=["POST"]),
        Route("/_sim/kf/conversation", conversation, methods=["GET"]),
    ]
