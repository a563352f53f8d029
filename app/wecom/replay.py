"""Replay protection for callbacks: a signed (timestamp, nonce, signature) is accepted once within the window.

The timestamp window alone lets a captured callback be posted again for ``CALLBACK_WINDOW_SECONDS``; wechatpy has
no nonce memory. After a callback's signature is verified, the endpoint calls ``ReplayGuard.first_seen``; a second
sighting of the same signed triple is refused. WeChat and WeCom retries carry a fresh timestamp, nonce and
signature, so they pass here and meet the InboundEvent dedupe key instead.

The store is picked like ``app.wecom.tokens`` picks its token store: Redis (``SET NX EX``, shared by every process)
when ``REDIS_URL`` is set, memory otherwise (the embedded single-process mode). Only verified callbacks are
remembered, so a stranger cannot fill the store. Keys hold a SHA-256 of the triple, never request values.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request

from app.errors import CallbackRejected
from app.settings import Settings
from app.timeutil import utcnow

__all__ = [
    "MemoryReplayGuard",
    "RedisReplayGuard",
    "ReplayGuard",
    "check_not_replayed",
    "make_replay_guard",
    "replay_guard_for",
    "replay_key",
]


class ReplayGuard(Protocol):
    """Remembers keys for a while."""

    async def first_seen(self, key: str, ttl: int) -> bool:
        """Remember ``key`` for ``ttl`` seconds; False when it was already remembered."""
        ...

    async def forget(self, key: str) -> None:
        """Forget ``key`` (the callback it stood for was not stored after all, so its retry must pass)."""
        ...


class MemoryReplayGuard:
    """In-process memory; entries expire on the application clock (``app.timeutil``), oldest pruned first."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or (lambda: utcnow().timestamp())
        self._expiry: dict[str, float] = {}
        #: (expiry, key) in the order remembered: pruning pops from the front and never walks the live entries
        #: (copying the whole store per callback cost 1 ms at 20,000 keys, a 300 s window at 70 callbacks/s)
        self._order: deque[tuple[float, str]] = deque()

    def _prune(self, now: float) -> None:
        # Remembering order is close to expiry order (one ttl per deployment); stop at the first live entry. An entry
        # whose key was forgotten or remembered again since is stale: only the dict's own expiry counts.
        order, expiry = self._order, self._expiry
        while order and order[0][0] <= now:
            expires, key = order.popleft()
            if expiry.get(key) == expires:
                del expiry[key]

    async def first_seen(self, key: str, ttl: int) -> bool:
        """True the first time within ``ttl``."""
        now = self._clock()
        self._prune(now)
        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return False
        self._expiry[key] = now + ttl
        self._order.append((now + ttl, key))
        return True

    async def forget(self, key: str) -> None:
        """Drop ``key``."""
        self._expiry.pop(key, None)


class RedisReplayGuard:
    """Redis ``SET key 1 NX EX ttl``: atomic across every web process."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "gongdan:callback-seen:") -> None:
        from app.redisconn import Pipeliner

        self.client = client
        self.prefix = prefix
        # concurrent callbacks share one round trip (issue 15: a SET per callback was 9% of the web process)
        self.batch = Pipeliner(client)

    async def first_seen(self, key: str, ttl: int) -> bool:
        """True when the SET NX succeeded."""
        try:
            created = await self.batch.execute("SET", self.prefix + key, b"1", "NX", "EX", max(1, ttl))
        except RedisError as exc:
            raise CallbackRejected("replay_store_unavailable", status_code=503) from exc
        return bool(created)

    async def forget(self, key: str) -> None:
        """DEL, best effort."""
        try:
            await self.client.delete(self.prefix + key)
        except RedisError:
            pass


def make_replay_guard(settings: Settings) -> ReplayGuard:
    """Redis when ``settings.redis_url`` is set, memory otherwise."""
    if settings.redis_url:
        from app.redisconn import async_client

        return RedisReplayGuard(async_client(settings.redis_url))
    return MemoryReplayGuard()


def replay_guard_for(request: Request, settings: Settings) -> ReplayGuard:
    """The application's guard, made on first use and kept on ``app.state`` (one memory store per app)."""
    state = request.app.state
    guard: ReplayGuard | None = getattr(state, "callback_replay_guard", None)
    if guard is None:
        guard = make_replay_guard(settings)
        state.callback_replay_guard = guard
    return guard


def replay_key(channel: str, params: Mapping[str, str]) -> str:
    """``channel:`` + SHA-256 of the signed triple (timestamp, nonce, msg_signature or signature)."""
    signature = params.get("msg_signature") or params.get("signature") or ""
    triple = "\n".join((params.get("timestamp") or "", params.get("nonce") or "", signature.lower()))
    return f"{channel}:{hashlib.sha256(triple.encode('utf-8', 'replace')).hexdigest()}"


async def check_not_replayed(
    guard: ReplayGuard, *, channel: str, params: Mapping[str, str], window_seconds: int
) -> str:
    """Remember this verified callback's signed triple; ``CallbackRejected("replayed", 403)`` if seen before.

    Returns the key, so the caller can ``forget`` it when storing the callback fails unexpectedly.
    """
    key = replay_key(channel, params)
    # A timestamp may be up to one window ahead of our clock and is accepted until one window after it.
    if not await guard.first_seen(key, 2 * window_seconds + 1):
        raise CallbackRejected("replayed", status_code=403)
    return key
