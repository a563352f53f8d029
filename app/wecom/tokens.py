"""access_token storage shared by every process, with a lock so that only one process refreshes at a time.

Follows 获取 Access token https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
(MP) and 获取access_token https://developer.work.weixin.qq.com/document/path/91039 (WeCom):

* tokens live about 7200 s (use ``expires_in``); we store them for ``expires_in - 300`` so a refresh happens about
  five minutes before expiry;
* an MP re-fetch **invalidates** the previous token after a 5-minute grace, so N processes fetching on their own
  would keep killing each other's tokens: fetches are serialised by a lock, and a process that waited for the lock
  re-reads the store before fetching (N processes, one fetch);
* a rejected token (40001 MP / 40014 / 42001) is deleted only if the store still holds that very token
  (compare-and-delete), so a slow process cannot throw away the fresh token another one just stored;
* a process reuses the token it read for up to ``LOCAL_SECONDS`` before reading the store again (a token read from
  the store has at least the margin to live), and drops its copy with the stored one when the platform rejects it.

The store interface is synchronous because wechatpy is, and runs in worker threads. ``RedisTokenStore`` serves
web and worker processes alike; ``MemoryTokenStore`` serves the embedded single-process mode. The same store holds
MP and WeCom tokens under different keys (``mp_token_key`` / ``wecom_token_key``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import redis
from redis.exceptions import LockError, RedisError

from app.errors import TemporaryChannelError
from app.logs import get_logger
from app.settings import Settings

__all__ = [
    "REFRESH_MARGIN_SECONDS",
    "CachedToken",
    "MemoryTokenStore",
    "RedisTokenStore",
    "TokenLockTimeout",
    "TokenStore",
    "make_token_store",
    "mp_token_key",
    "reset_token_stores",
    "wecom_token_key",
]

log = get_logger(__name__)

#: refresh this long before the platform's expiry
REFRESH_MARGIN_SECONDS = 300
#: never cache for less than this, whatever expires_in says
_MIN_TTL_SECONDS = 30
#: how long a process reuses the token it last read before reading the store again: every WeChat call read it
#: from Redis (a round trip in a thread per outbox delivery). A stored token has at least the refresh margin to
#: live, and after another process refreshes an MP token the old one stays valid for 5 minutes, so a copy this
#: young is valid; a token the platform revoked early is dropped here too when it is rejected (one retry, as before)
LOCAL_SECONDS = 30.0


class TokenLockTimeout(TemporaryChannelError):
    """Another process held the refresh lock for too long; try again later."""


class TokenStore(Protocol):
    """Where access tokens live; every method is synchronous and thread-safe."""

    def get(self, key: str) -> str | None:
        """The stored value, or None when absent or expired."""
        ...

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    def delete_if(self, key: str, value: str) -> bool:
        """Delete ``key`` only if it still holds ``value`` (atomically); True if deleted."""
        ...

    def lock(self, key: str, timeout: float) -> AbstractContextManager[None]:
        """Hold an exclusive lock named after ``key``: wait at most ``timeout`` s, hold at most ``timeout`` s.

        Raises ``TokenLockTimeout`` when it cannot be acquired in time.
        """
        ...


def mp_token_key(appid: str) -> str:
    """Store key of an Official Account's access_token (one token per appid)."""
    return f"mp:{appid}:access_token"


def wecom_token_key(corpid: str, secret: str) -> str:
    """Store key of a WeCom app's access_token (one token per app secret); the secret itself is only hashed."""
    digest = hashlib.sha256(f"{corpid}:{secret}".encode()).hexdigest()[:16]
    return f"wecom:{corpid}:{digest}:access_token"


class MemoryTokenStore:
    """In-process store for the embedded mode: honours TTLs, one ``threading.Lock`` per key."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> str | None:
        """The value if present and not expired."""
        with self._guard:
            item = self._values.get(key)
            if item is None:
                return None
            if self._clock() >= item[1]:
                del self._values[key]
                return None
            return item[0]

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store for ``ttl`` seconds."""
        with self._guard:
            self._values[key] = (value, self._clock() + ttl)

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        with self._guard:
            self._values.pop(key, None)

    def delete_if(self, key: str, value: str) -> bool:
        """Compare-and-delete."""
        with self._guard:
            item = self._values.get(key)
            if item is None or item[0] != value:
                return False
            del self._values[key]
            return True

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[None]:
        """Exclusive per-key lock within this process."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=timeout):
            raise TokenLockTimeout("token refresh lock is busy")
        try:
            yield
        finally:
            lock.release()


class RedisTokenStore:
    """Redis store shared by every process; the lock is redis-py's ``Lock`` (SET NX PX + token-checked release)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "gongdan:token:") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str) -> str | None:
        """The value, or None (Redis expires it)."""
        try:
            value = self.client.get(self._key(key))
        except RedisError as exc:
            raise TemporaryChannelError("token store unavailable") from exc
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def set(self, key: str, value: str, ttl: float) -> None:
        """SET with a millisecond expiry."""
        try:
            self.client.set(self._key(key), value, px=max(1, int(ttl * 1000)))
        except RedisError as exc:
            raise TemporaryChannelError("token store unavailable") from exc

    def delete(self, key: str) -> None:
        """DEL."""
        try:
            self.client.delete(self._key(key))
        except RedisError as exc:
            raise TemporaryChannelError("token store unavailable") from exc

    _DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

    def delete_if(self, key: str, value: str) -> bool:
        """Compare-and-delete in one Lua script, so no other process's fresh token is lost."""
        try:
            deleted = self.client.eval(self._DELETE_IF, 1, self._key(key), value)
        except RedisError as exc:
            raise TemporaryChannelError("token store unavailable") from exc
        return bool(deleted)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[None]:
        """A Redis lock that expires after ``timeout`` s, so a crashed holder cannot block refreshes forever."""
        lock = self.client.lock(self._key(key) + ":lock", timeout=timeout, blocking_timeout=timeout)
        try:
            acquired = lock.acquire()
        except RedisError as exc:
            raise TemporaryChannelError("token store unavailable") from exc
        if not acquired:
            raise TokenLockTimeout("token refresh lock is busy")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:
                # The lock expired while we held it (a very slow fetch); someone else may own it now.
                log.warning("token_lock_expired", key=key)


class CachedToken:
    """One access token in a ``TokenStore``: read, fetch under the lock when missing, invalidate when rejected."""

    def __init__(
        self,
        store: TokenStore,
        key: str,
        fetch: Callable[[], tuple[str, int]],
        *,
        margin: int = REFRESH_MARGIN_SECONDS,
        lock_timeout: float = 15.0,
    ) -> None:
        self.store = store
        self.key = key
        self._fetch = fetch
        self.margin = margin
        self.lock_timeout = lock_timeout
        #: (token, reuse until: monotonic seconds); one tuple, replaced whole, so threads never see half of it
        self._local: tuple[str, float] | None = None

    def get(self) -> str:
        """The token: this process's recent copy, else the stored one, else fetched (once across all processes)."""
        local = self.peek()
        if local:
            return local
        token = self.store.get(self.key)
        if token:
            return self._keep(token)
        with self.store.lock(self.key, self.lock_timeout):
            # Whoever held the lock before us has probably stored a fresh token already.
            token = self.store.get(self.key)
            if token:
                return self._keep(token)
            token, expires_in = self._fetch()
            self.store.set(self.key, token, max(_MIN_TTL_SECONDS, expires_in - self.margin))
            log.info("access_token_fetched", key=self.key, expires_in=expires_in)
            return self._keep(token)

    def peek(self) -> str | None:
        """This process's recent copy of the token, or None (then ``get`` it, in a thread: it may block)."""
        local = self._local
        return local[0] if local is not None and time.monotonic() < local[1] else None

    def _keep(self, token: str) -> str:
        self._local = (token, time.monotonic() + min(LOCAL_SECONDS, self.margin / 2))
        return token

    def invalidate(self, rejected: str) -> bool:
        """Drop the token the platform rejected, here and in the store unless another process already replaced
        it."""
        local = self._local
        if local is not None and local[0] == rejected:
            self._local = None
        return self.store.delete_if(self.key, rejected)


_stores: dict[str | None, TokenStore] = {}
_stores_guard = threading.Lock()


def make_token_store(settings: Settings) -> TokenStore:
    """Redis when ``settings.redis_url`` is set, memory otherwise; one instance per URL in this process."""
    url = settings.redis_url
    with _stores_guard:
        store = _stores.get(url)
        if store is None:
            if url:
                from app.redisconn import sync_client

                store = RedisTokenStore(sync_client(url))  # sentinel-aware
            else:
                store = MemoryTokenStore()
            _stores[url] = store
        return store


def reset_token_stores() -> None:
    """Forget cached stores (tests)."""
    with _stores_guard:
        _stores.clear()
