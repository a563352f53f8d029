"""WeCom's call limits (频率限制 https://developer.work.weixin.qq.com/document/path/90454) kept on our side.

WeCom counts calls per corp and per API (10,000/min and 150,000/h), whichever process makes them. Two limiters keep
Gongdan under our own ceilings (``WECOM_RATE_PER_MINUTE``/``WECOM_RATE_PER_HOUR``):

* ``RateLimiter`` (no REDIS_URL, the embedded mode): windows in this process's memory. Enough when one process
  makes every call; N processes would each allow the whole budget.
* ``RedisRateLimiter`` (REDIS_URL set): the same windows in Redis, through the ``limits`` library's moving window,
  so every web and worker process of the deployment draws on one budget per (corp, API). Should Redis fail, a call
  is counted in this process's own windows instead: a Redis outage never fails a WeCom call.

Both wait rather than fail, and report how long they waited (``acquire``; ``waited`` adds it up).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from anyio import fail_after, sleep
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from app.logs import get_logger
from app.redisconn import async_client

__all__ = ["RateLimiter", "RedisRateLimiter", "SpecialLimits"]

log = get_logger(__name__)

#: APIs with their own limits instead of the general ones: path -> (per minute, per hour), None for no such window
SpecialLimits = Mapping[str, tuple[int | None, int | None]]

#: the shortest sleep before asking again, so a refused call never spins on Redis
MIN_WAIT = 0.005
#: prefix of the limiter's Redis keys (``gongdan:wecom-rate:LIMITER/<corp>/<path>/<amount>/1/<minute|hour>``)
REDIS_KEY_PREFIX = "gongdan:wecom-rate"
#: longest a Redis round trip may take before the call falls back to this process's windows
REDIS_TIMEOUT = 2.0
#: after a Redis failure, count in-process this long before asking Redis again (an outage costs one timeout, not
#: one per call)
REDIS_RETRY_AFTER = 5.0


class _SlidingWindow:
    """Calls in the last ``length`` seconds, counted in one-second buckets."""

    def __init__(self, length: float, limit: int) -> None:
        self.length = length
        self.limit = limit
        self.buckets: deque[list[float]] = deque()
        self.total = 0

    def wait(self, now: float) -> float:
        """Seconds until one more call fits (0.0 when it fits now)."""
        while self.buckets and self.buckets[0][0] <= now - self.length:
            self.total -= int(self.buckets.popleft()[1])
        if self.total < self.limit:
            return 0.0
        # drop whole buckets from the oldest until there is room
        excess = self.total - self.limit + 1
        for second, count in self.buckets:
            excess -= int(count)
            if excess <= 0:
                return max(0.001, second + self.length - now)
        return self.length  # pragma: no cover

    def add(self, now: float) -> None:
        second = float(int(now))
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([second, 1.0])
        self.total += 1


class RateLimiter:
    """Per-API sliding windows of one corp, shared by every client of one process; ``acquire`` waits for room."""

    def __init__(self, *, per_minute: int, per_hour: int, special: SpecialLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.special: SpecialLimits = dict(special or {})
        self._clock = clock
        self._windows: dict[str, list[_SlidingWindow]] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def limits_for(self, path: str) -> tuple[int | None, int | None]:
        """(per minute, per hour) for calls of ``path``; None where that window does not apply."""
        return self.special.get(path, (self.per_minute, self.per_hour))

    def _windows_for(self, path: str) -> list[_SlidingWindow]:
        windows = self._windows.get(path)
        if windows is None:
            per_minute, per_hour = self.limits_for(path)
            windows = []
            if per_minute:
                windows.append(_SlidingWindow(60.0, per_minute))
            if per_hour:
                windows.append(_SlidingWindow(3600.0, per_hour))
            self._windows[path] = windows
        return windows

    def _take(self, path: str) -> float:
        with self._lock:
            now = self._clock()
            windows = self._windows_for(path)
            wait = max((w.wait(now) for w in windows), default=0.0)
            if wait <= 0:
                for w in windows:
                    w.add(now)
            return wait

    async def _next_wait(self, path: str) -> float:
        """Take a call of ``path`` and return 0.0, or return the seconds to wait before asking again."""
        return self._take(path)

    async def acquire(self, path: str) -> float:
        """Wait until a call of ``path`` fits under the limits; return the seconds waited."""
        waited = 0.0
        # Waiting on time passing, not on an event another task would set.
        while (wait := await self._next_wait(path)) > 0:
            await sleep(wait)
            waited += wait
        if waited:
            with self._lock:
                self.waited += waited
        return waited


class RedisRateLimiter(RateLimiter):
    """The windows of one corp in Redis, shared by every process that uses the same REDIS_URL.

    ``limits``' moving window keeps one timestamp per call, so like the in-process windows it is exact: no burst
    gets through across a window boundary (the sliding-window *counter* estimates the previous window's share and
    can let through up to twice the limit in the true trailing minute when those calls bunched at its end). It
    costs one list entry per call in a window, at most the limit: 140,000 for the hour window of a busy API.
    The timestamps are the callers' wall clocks, so the hosts' clocks should agree (NTP).

    redis.asyncio clients belong to the event loop that opened them, while this limiter is cached process-wide:
    each running loop gets its own client, opened on first use.
    """

    def __init__(self, *, corp_id: str, redis_url: str, per_minute: int, per_hour: int,
                 special: SpecialLimits | None = None, clock: Callable[[], float] = time.monotonic,
                 key_prefix: str = REDIS_KEY_PREFIX) -> None:
        super().__init__(per_minute=per_minute, per_hour=per_hour, special=special, clock=clock)
        self.corp_id = corp_id
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self._strategies: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, MovingWindowRateLimiter]]
        self._strategies = weakref.WeakKeyDictionary()
        self._items: dict[str, list[RateLimitItem]] = {}
        self._redis_down_until: float | None = None

    def _strategy(self) -> MovingWindowRateLimiter:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._strategies.get(loop)
            if entry is None:
                # our own client, so sentinel URLs (redis+sentinel://.../MASTER/DB) work as everywhere else
                client = async_client(self.redis_url)
                storage = RedisStorage("async+redis://", implementation="redispy", key_prefix=self.key_prefix,
                                       connection_pool=client.connection_pool)
                entry = (client, MovingWindowRateLimiter(storage))
                self._strategies[loop] = entry
            return entry[1]

    def _items_for(self, path: str) -> list[RateLimitItem]:
        items = self._items.get(path)
        if items is None:
            per_minute, per_hour = self.limits_for(path)
            items = []
            if per_minute:
                items.append(RateLimitItemPerMinute(per_minute))
            if per_hour:
                items.append(RateLimitItemPerHour(per_hour))
            self._items[path] = items
        return items

    async def _next_wait(self, path: str) -> float:
        now = self._clock()
        if self._redis_down_until is not None and now < self._redis_down_until:
            return self._take(path)
        try:
            with fail_after(REDIS_TIMEOUT):
                wait = await self._take_shared(path)
        except (RedisError, OSError) as exc:  # TimeoutError (fail_after) is an OSError
            # Redis only shares the budget between processes: a Redis outage must never fail a WeCom call, so
            # this process counts on its own (as without REDIS_URL) until Redis answers again.
            if self._redis_down_until is None:
                log.warning("wecom.rate_limiter_redis_unavailable", corp_id=self.corp_id, path=path,
                            error=type(exc).__name__, detail=str(exc)[:200])
            self._redis_down_until = now + REDIS_RETRY_AFTER
            return self._take(path)
        if self._redis_down_until is not None:
            log.info("wecom.rate_limiter_redis_back", corp_id=self.corp_id)
            self._redis_down_until = None
        return wait

    async def _take_shared(self, path: str) -> float:
        strategy = self._strategy()
        items = self._items_for(path)
        ids = (self.corp_id, path)
        # A hit that a later window then refuses still spends its slot, so look at the later windows first: when
        # the hour is spent, the waiting callers do not also burn the minute's budget each time they wake.
        for item in items[1:]:
            if not await strategy.test(item, *ids):
                return await self._reset_in(strategy, item, ids)
        for item in items:
            if not await strategy.hit(item, *ids):
                return await self._reset_in(strategy, item, ids)
        return 0.0

    @staticmethod
    async def _reset_in(strategy: MovingWindowRateLimiter, item: RateLimitItem, ids: tuple[str, str]) -> float:
        stats = await strategy.get_window_stats(item, *ids)
        if stats.remaining > 0:  # a slot freed since the refusal
            return MIN_WAIT
        # reset_time is when the oldest call in the window leaves it (wall clock, as limits stores it)
        return max(MIN_WAIT, stats.reset_time - time.time())

    async def aclose(self) -> None:
        """Close the running loop's Redis client (tests, shutdown); the next call opens a new one."""
        with self._lock:
            entry = self._strategies.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].connection_pool.disconnect()
