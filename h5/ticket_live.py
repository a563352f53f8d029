"""The staff ticket page's live link to a web chat: ``/h5/tickets/{number}/live`` (WebSocket, JSON frames).

To the page: ``state`` {staff, visitor} (the read marks on connect), then the visitor's ``typing``, ``read`` {id}
and new ``message`` {id, text} as they happen. From the page: ``typing`` (shown in the widget as 「客服正在输入…」)
and ``read`` {id} (the staff member saw the visitor's messages up to it: 已读 in the widget).

The socket is the page's own: the H5 session cookie of an active staff member who may see the ticket, from a page
of this desk (the Origin must be the desk's own host, so another site cannot open it with the staff's cookie).
Events travel through the web chat hub, so the page and the visitor's widget may be in different web processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Any, cast
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.channels.webchat import live
from app.channels.webchat.hub import hub
from app.errors import DomainError
from app.logs import get_logger
from app.security.scope import actor_for
from app.settings import Settings, get_settings
from app.staff.models import Staff
from app.tickets import service as tickets
from h5 import session as sessions

log = get_logger(__name__)

#: the least seconds between two typing events passed on from one page
TYPING_EVERY = 1.0


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    host = ws.headers.get("host")
    return bool(origin and host) and urlsplit(origin or "").netloc.lower() == (host or "").lower()


async def _chat(ws: WebSocket) -> live.Chat | None:
    """The chat behind the ticket, when the socket's session may see it."""
    if not _same_origin(ws):
        return None
    settings: Settings = getattr(ws.app.state, "settings", None) or get_settings()
    session = sessions.load(cast(Request, ws), settings)
    if session.kind != "staff" or await sessions.is_revoked(session=session):
        return None
    staff = await Staff.get_or_none(id=session.staff_id, status="active")
    if staff is None:
        return None
    actor = replace(await actor_for(staff), login_at=session.login_at)
    try:
        ticket = await tickets.get_by_number(actor=actor, number=ws.path_params["number"])
    except DomainError:
        return None
    return await live.chat_of(ticket=ticket)


async def _push(ws: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await ws.send_json(await queue.get())


async def ticket_live(ws: WebSocket) -> None:
    """The live link: refused (closed before it opens) for anyone who may not see the ticket, or no web chat."""
    chat = await _chat(ws)
    if chat is None:
        await ws.close(code=1008)
        return
    await ws.accept()
    await hub.start()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=200)
    for name in chat.staff_topics:
        hub.subscribe(name, queue)
    pusher = asyncio.create_task(_push(ws, queue))
    typed_at = 0.0
    try:
        await ws.send_json({"type": "state", **await live.chat_read_state(chat=chat)})
        while True:
            try:
                frame = await ws.receive_json()
            except (ValueError, KeyError):
                continue
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "typing":
                now = time.monotonic()
                if now - typed_at >= TYPING_EVERY:
                    typed_at = now
                    await live.staff_typing(chat=chat)
            elif kind == "read":
                try:
                    mark = int(frame.get("id") or 0)
                except (TypeError, ValueError):
                    continue
                await live.staff_read(chat=chat, message_id=mark)
    except WebSocketDisconnect:
        pass
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pusher
        for name in chat.staff_topics:
            hub.unsubscribe(name, queue)
