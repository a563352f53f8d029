"""Fan-out of live events (staff replies, typing, read state) to the sockets of one visitor.

With REDIS_URL set, ``publish`` goes through Redis pub/sub and every web process delivers to the sockets it holds
(one pattern subscription per process); without it, delivery is in this process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from app.logs import get_logger
from app.settings import get_settings

log = get_logger(__name__)

PREFIX = "webchat:"


def topic(*, account_id: int, visitor_id: str) -> str:
    """The channel name of one visitor on one site."""
    return f"{PREFIX}{account_id}:{visitor_id}"


class Hub:
    """Local subscribers per topic, fed directly or from Redis."""

    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None

    def subscribe(self, name: str, queue: asyncio.Queue[dict[str, Any]] | None = None
                  ) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every event published on ``name`` from now on (``queue``: one already listening to
        other topics, so a page watching several visitors reads one queue)."""
        if queue is None:
            queue = asyncio.Queue(maxsize=200)
        self._subs.setdefault(name, set()).add(queue)
        return queue

    def unsubscribe(self, name: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering ``name`` to ``queue``."""
        subs = self._subs.get(name)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[name]

    def deliver(self, name: str, event: dict[str, Any]) -> int:
        """Hand an event to this process's subscribers of ``name``; how many got it."""
        count = 0
        for queue in list(self._subs.get(name, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck socket loses live events; re-sync recovers
                queue.put_nowait(event)
                count += 1
        return count

    async def publish(self, name: str, event: dict[str, Any]) -> None:
        """Send an event to every process's subscribers of ``name``."""
        url = get_settings().redis_url
        if not url:
            self.deliver(name, event)
            return
        await self._ensure_redis(url)
        await self._redis.publish(name, json.dumps(event, ensure_ascii=False))

    async def _ensure_redis(self, url: str) -> None:
        if self._redis is None:
            from app.redisconn import async_client

            self._redis = async_client(url)  # sentinel-aware
        if self._listener is None or self._listener.done():
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready))
            await ready.wait()

    async def _listen(self, ready: asyncio.Event) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.psubscribe(f"{PREFIX}*")
        ready.set()
        try:
            async for item in pubsub.listen():
                if item.get("type") != "pmessage":
                    continue
                name = item["channel"].decode() if isinstance(item["channel"], bytes) else str(item["channel"])
                try:
                    self.deliver(name, json.loads(item["data"]))
                except ValueError:
                    log.warning("webchat.bad_fanout_event")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def start(self) -> None:
        """Listen on Redis (when configured) before the first socket subscribes."""
        url = get_settings().redis_url
        if url:
            await self._ensure_redis(url)

    async def close(self) -> None:
        """Stop listening and drop the Redis connection."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()
        self._listener = None
        self._redis = None


hub = Hub()
