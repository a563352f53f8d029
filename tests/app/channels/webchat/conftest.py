"""The web chat channel's test set-up: a site, and an in-loop WebSocket client for the ASGI endpoint.

Starlette's TestClient runs the app on a loop of its own in another thread, where the test's database connection
(aiosqlite, tortoise) is not usable; this client drives the same ASGI WebSocket protocol on the test's own loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
from starlette.applications import Starlette

from app import queue as jobqueue
from app.channels.models import ChannelAccount
from app.channels.webchat import accounts, endpoint, visitors
from app.settings import Settings

ORIGIN = "https://shop.example.com"
#: a Wednesday, 10:00 and 22:00 in China (02:00 and 14:00 UTC)
WORKING = datetime.fromisoformat("2026-12-09T02:00:00+00:00")
EVENING = datetime.fromisoformat("2026-12-09T14:00:00+00:00")
#: a bounded wait so a broken endpoint fails the test instead of hanging it (not a timed assertion)
WAIT = 10.0


class Refused(Exception):
    """The endpoint closed the socket before accepting it."""


class Socket:
    """One WebSocket to the ASGI app, on the running loop."""

    def __init__(self, app: Starlette, *, site: str, origin: str | None, ip: str) -> None:
        headers = [(b"host", b"desk")] + ([(b"origin", origin.encode())] if origin else [])
        self.scope: dict[str, Any] = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
            "path": "/webchat/ws", "raw_path": b"/webchat/ws", "root_path": "",
            "query_string": f"site={site}".encode(), "headers": headers, "client": (ip, 50000),
            "server": ("desk", 80), "subprotocols": [], "state": {},
        }
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> Socket:
        self.task = asyncio.create_task(self.app(self.scope, self.inbox.get, self.outbox.put))  # type: ignore[arg-type]
        await self.inbox.put({"type": "websocket.connect"})
        first = await asyncio.wait_for(self.outbox.get(), WAIT)
        if first["type"] != "websocket.accept":
            await self.task
            raise Refused(first)
        return self

    async def send(self, frame: dict[str, Any]) -> None:
        await self.inbox.put({"type": "websocket.receive", "text": json.dumps(frame, ensure_ascii=False)})

    async def receive(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.outbox.get(), WAIT)
        assert msg["type"] == "websocket.send", msg
        data: dict[str, Any] = json.loads(msg["text"])
        return data

    async def receive_until(self, kind: str) -> dict[str, Any]:
        """The next frame of ``kind`` (frames of other kinds before it are skipped)."""
        while True:
            frame = await self.receive()
            if frame["type"] == kind:
                return frame

    async def hello(self, **frame: Any) -> dict[str, Any]:
        await self.send({"type": "hello", **frame})
        return await self.receive_until("welcome")

    async def close(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            await asyncio.wait_for(self.task, WAIT)


class Desk:
    def __init__(self, account: ChannelAccount, jobs: jobqueue.InProcessQueue) -> None:
        self.account = account
        self.jobs = jobs
        self.app = Starlette(routes=endpoint.routes)

    async def socket(self, *, origin: str | None = ORIGIN, ip: str = "203.0.113.5",
                     site: str | None = None) -> Socket:
        return await Socket(self.app, site=site or self.account.key, origin=origin, ip=ip).connect()


@pytest.fixture
def at_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(endpoint, "utcnow", lambda: WORKING)
    yield


@pytest.fixture
async def desk(db: None, settings: Settings, jobs: jobqueue.InProcessQueue) -> AsyncIterator[Desk]:
    from app.seed import ensure_org

    await ensure_org()
    visitors.visitor_limiter.reset()
    visitors.ip_limiter.reset()
    account = await accounts.upsert_account(key="shop", name="示例商城", origins=[ORIGIN + "/"], bot=False)
    yield Desk(account, jobs)
