"""Inspection and control API under ``/_sim/`` (JSON), for tests in other processes and for people.

Not part of any WeChat API; the shapes are ours. Python tests in the same process can call the same things on
``SimulatorState`` directly.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.mp.errors import MPError
from simulator.mp.media import media_response
from simulator.mp.store import MPAccount, SentKind
from simulator.state import SimulatorState

__all__ = ["admin_routes", "conversation"]

_KINDS: tuple[SentKind, ...] = ("custom", "template", "passive", "notice")


class _BadRequest(Exception):
    pass


def _state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.sim
    return state


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _BadRequest("body is not JSON") from exc
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


def _int(request: Request, name: str, default: int = 0) -> int:
    value = request.query_params.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise _BadRequest(f"{name} must be an integer") from exc


def _guard(handler: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except (_BadRequest, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc) or type(exc).__name__}, status_code=400)
        return response

    return wrapped


async def sent_messages(request: Request) -> Response:
    """``GET /_sim/mp/messages?appid=&touser=&since_id=&kind=``: what the desk sent, oldest first."""
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in _KINDS:
        raise _BadRequest(f"kind must be one of {_KINDS}")
    messages = _state(request).sent_messages(
        request.query_params.get("appid") or None,
        request.query_params.get("touser") or None,
        since_id=_int(request, "since_id"),
        kind=kind,
    )
    return JSONResponse({"messages": [m.to_json() for m in messages]})


async def received_messages(request: Request) -> Response:
    """``GET /_sim/mp/received?appid=&openid=&since_id=``: what customers sent."""
    messages = _state(request).received_messages(
        request.query_params.get("appid") or None,
        request.query_params.get("openid") or None,
        since_id=_int(request, "since_id"),
    )
    return JSONResponse({"messages": [m.to_json() for m in messages]})


def conversation(state: SimulatorState, appid: str, openid: str, since_id: int = 0) -> list[dict[str, Any]]:
    """One customer's timeline: their messages (``in``) and what they received (``out``), in order."""
    items: list[dict[str, Any]] = [
        {"direction": "in", **m.to_json()} for m in state.received_messages(appid, openid, since_id=since_id)
    ]
    for m in state.sent_messages(appid, openid, since_id=since_id):
        item = {"direction": "out", **m.to_json()}
        media_id = _media_id(m.body)
        if media_id:
            try:
                state.mp.get_media(appid, media_id)
                item["media_url"] = f"/_sim/media/{media_id}"
            except MPError:
                pass
        items.append(item)
    items.sort(key=lambda item: int(item["id"]))
    return items


def _media_id(body: dict[str, Any]) -> str | None:
    msgtype = body.get("msgtype")
    payload = body.get(msgtype) if isinstance(msgtype, str) else None
    if isinstance(payload, dict) and isinstance(payload.get("media_id"), str):
        return str(payload["media_id"])
    return None


async def conversation_view(request: Request) -> Response:
    """``GET /_sim/mp/conversation?appid=&openid=&since_id=`` for the chat page."""
    appid = request.query_params.get("appid", "")
    openid = request.query_params.get("openid", "")
    if not appid or not openid:
        raise _BadRequest("appid and openid are required")
    items = conversation(_state(request), appid, openid, _int(request, "since_id"))
    user = _state(request).mp_user(appid, openid)
    return JSONResponse({"items": items, "user": user.to_json() if user else None})


async def reset(request: Request) -> Response:
    """``POST /_sim/reset`` (``{"full": true}`` also drops accounts and templates)."""
    body = await _json_body(request)
    _state(request).reset(keep_accounts=not body.get("full"))
    return JSONResponse({"ok": True})


async def add_fault(request: Request) -> Response:
    """``POST /_sim/faults {"path": "message/custom/send", "fault": {"errcode": 45009}, "times": 1}``."""
    body = await _json_body(request)
    if "path" not in body or not isinstance(body.get("fault"), dict):
        raise _BadRequest("path and fault are required")
    times = body.get("times", 1)
    fault = _state(request).inject_fault(str(body["path"]), body["fault"], None if times is None else int(times))
    return JSONResponse({"ok": True, "fault": fault.to_dict()})


async def list_faults(request: Request) -> Response:
    """``GET /_sim/faults``: faults still queued."""
    return JSONResponse({"faults": _state(request).faults.pending()})


async def clear_faults(request: Request) -> Response:
    """``DELETE /_sim/faults[?path=]``."""
    _state(request).faults.clear(request.query_params.get("path") or None)
    return JSONResponse({"ok": True})


async def token_stats(request: Request) -> Response:
    """``GET /_sim/mp/token-stats``: ``{appid: {"fetches", "valid_tokens", "last_fetch_at"}}``."""
    return JSONResponse(_state(request).mp.token_stats())


async def clock_advance(request: Request) -> Response:
    """``POST /_sim/clock/advance {"seconds": N}``."""
    body = await _json_body(request)
    now = _state(request).advance(float(body.get("seconds", 0)))
    return JSONResponse({"now": now})


async def clock_now(request: Request) -> Response:
    """``GET /_sim/clock``."""
    return JSONResponse({"now": _state(request).clock.now()})


async def list_accounts(request: Request) -> Response:
    """``GET /_sim/mp/accounts`` (no secrets)."""
    state = _state(request)
    with state.lock:
        accounts = [a.to_json() for a in state.mp.accounts.values()]
    return JSONResponse({"accounts": accounts})


async def add_account(request: Request) -> Response:
    """``POST /_sim/mp/accounts`` with the ``MPAccount`` fields."""
    body = await _json_body(request)
    account = _state(request).add_mp_account(MPAccount(**body))
    return JSONResponse({"ok": True, "account": account.to_json()})


async def set_user(request: Request) -> Response:
    """``POST /_sim/mp/users {"appid", "openid", ...MPUser fields}``."""
    body = await _json_body(request)
    appid, openid = str(body.pop("appid")), str(body.pop("openid"))
    user = _state(request).set_mp_user(appid, openid, **body)
    return JSONResponse({"ok": True, "user": user.to_json()})


async def list_users(request: Request) -> Response:
    """``GET /_sim/mp/users?appid=``."""
    state = _state(request)
    appid = request.query_params.get("appid")
    with state.lock:
        users = [u.to_json() for u in state.mp.users.values() if appid is None or u.appid == appid]
    return JSONResponse({"users": users})


async def add_template(request: Request) -> Response:
    """``POST /_sim/mp/templates {"appid", "template_id", "title", "content"}``."""
    body = await _json_body(request)
    _state(request).add_template(
        str(body["appid"]), str(body["template_id"]), str(body.get("title", "")), str(body.get("content", ""))
    )
    return JSONResponse({"ok": True})


async def api_calls(request: Request) -> Response:
    """``GET /_sim/api-calls?path=``: every API request the desk made."""
    calls = _state(request).api_calls_for(request.query_params.get("path") or None)
    return JSONResponse({"calls": [c.to_json() for c in calls]})


async def raw_media(request: Request) -> Response:
    """``GET /_sim/media/{media_id}``: the file without a token (PicUrl links and the chat page use it)."""
    try:
        media = _state(request).mp.get_media(None, request.path_params["media_id"])
    except MPError:
        return JSONResponse({"error": "unknown media"}, status_code=404)
    return media_response(media.content, media.content_type, media.filename)


async def health(request: Request) -> Response:
    """``GET /_sim/health``."""
    return JSONResponse({"ok": True})


def admin_routes() -> list[BaseRoute]:
    """The JSON routes under ``/_sim/``."""
    table: list[tuple[str, Any, list[str]]] = [
        ("/_sim/health", health, ["GET"]),
        ("/_sim/reset", reset, ["POST"]),
        ("/_sim/faults", add_fault, ["POST"]),
        ("/_sim/faults", list_faults, ["GET"]),
        ("/_sim/faults", clear_faults, ["DELETE"]),
        ("/_sim/clock", clock_now, ["GET"]),
        ("/_sim/clock/advance", clock_advance, ["POST"]),
        ("/_sim/api-calls", api_calls, ["GET"]),
        ("/_sim/media/{media_id}", raw_media, ["GET"]),
        ("/_sim/mp/messages", sent_messages, ["GET"]),
        ("/_sim/mp/received", received_messages, ["GET"]),
        ("/_sim/mp/conversation", conversation_view, ["GET"]),
        ("/_sim/mp/token-stats", token_stats, ["GET"]),
        ("/_sim/mp/accounts", list_accounts, ["GET"]),
        ("/_sim/mp/accounts", add_account, ["POST"]),
        ("/_sim/mp/users", list_users, ["GET"]),
        ("/_sim/mp/users", set_user, ["POST"]),
        ("/_sim/mp/templates", add_template, ["POST"]),
    ]
    return [Route(path, _guard(handler), methods=methods) for path, handler, methods in table]
