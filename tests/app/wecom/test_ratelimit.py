"""The WeCom rate limiter: in-process windows without REDIS_URL, windows in Redis shared by every process with it.

Time is a fake the test moves on: the limiter's clock, its sleeps and the wall clock that ``limits`` stamps its Redis
entries with, so a minute passes at once and nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import socket
import time
from collections.abc import Iterator

import pytest
import redis
from limits import RateLimitItemPerMinute
from limits.aio.storage.redis import redispy

from app.wecom import ratelimit
from app.wecom.ratelimit import RateLimiter, RedisRateLimiter
from app.wecom.work import AGENT_TICKET, JSAPI_TICKET, _limiter, reset_wecom_apis, wecom_api_for
from tests.conftest import make_settings, redis_url_or_skip

CORP = "wwtestcorp"
PATH = "externalcontact/get"
#: Redis database of these tests (10-15 belong to the queue, worker, e2e and bench tests)
REDIS_DB = 9


class FakeTime:
    """A clock that moves only when the test says so; a sleep ends once the clock passes its end."""

    def __init__(self) -> None:
        self.now = time.time()
        self.waits: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [s for s in self._sleepers if s[0] <= self.now]
        self._sleepers = [s for s in self._sleepers if s[0] > self.now]
        for _, future in due:
            future.set_result(None)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    async def settle(self, tasks: list[asyncio.Task[float]]) -> int:
        """Let the tasks run until each is done or asleep; how many are done."""
        for _ in range(5000):  # Redis answers in real time: poll, bounded
            done = sum(t.done() for t in tasks)
            if done + self.sleeping == len(tasks):
                return done
            await asyncio.sleep(0.001)
        raise AssertionError("the acquires neither finished nor slept")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(ratelimit, "sleep", clock.sleep)
    monkeypatch.setattr(ratelimit, "time", clock)
    monkeypatch.setattr(redispy, "time", clock)  # limits stamps its moving-window entries with time.time()
    return clock


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    """A Redis URL on this module's database and a key prefix of this test's own (deleted afterwards)."""
    url = redis_url_or_skip().rsplit("/", 1)[0] + f"/{REDIS_DB}"
    prefix = f"gongdan-test:wecom-rate:{secrets.token_hex(6)}"
    yield url, prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + ":*"))
    if keys:
        client.delete(*keys)
    client.close()


def _redis_limiter(url: str, prefix: str, fake: FakeTime, *, per_minute: int = 5, per_hour: int = 1000,
                   corp_id: str = CORP, special: ratelimit.SpecialLimits | None = None) -> RedisRateLimiter:
    return RedisRateLimiter(corp_id=corp_id, redis_url=url, per_minute=per_minute, per_hour=per_hour,
                            special=special, clock=fake.time, key_prefix=prefix)


async def test_in_process_limiter_waits_for_room_and_reports_the_wait(fake: FakeTime) -> None:
    limiter = RateLimiter(per_minute=2, per_hour=100, clock=fake.time)
    assert await limiter.acquire(PATH) == 0.0
    assert await limiter.acquire(PATH) == 0.0
    third = asyncio.create_task(limiter.acquire(PATH))
    assert await fake.settle([third]) == 0
    fake.advance(61)
    waited = await third
    assert waited > 0
    assert waited == sum(fake.waits)
    assert limiter.waited == waited


@pytest.mark.redis
async def test_two_processes_together_stay_under_the_limit(fake: FakeTime, shared: tuple[str, str]) -> None:
    url, prefix = shared
    # two instances with their own Redis clients, as two processes would have them
    first, second = _redis_limiter(url, prefix, fake), _redis_limiter(url, prefix, fake)
    try:
        tasks = [asyncio.create_task(limiter.acquire(PATH)) for _ in range(6) for limiter in (first, second)]
        assert await fake.settle(tasks) == 5  # 12 calls, 5 a minute between both
        assert fake.sleeping == 7
        fake.advance(61)
        assert await fake.settle(tasks) == 10
        fake.advance(61)
        assert await fake.settle(tasks) == 12
        waits = [t.result() for t in tasks]
        assert waits.count(0.0) == 5
        assert all(w > 0 for w in waits if w)
        assert first.waited + second.waited == pytest.approx(sum(waits))
        assert first._windows == second._windows == {}  # counted in Redis, not in the fallback windows
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_spent_hour_leaves_the_minute_alone(fake: FakeTime, shared: tuple[str, str]) -> None:
    url, prefix = shared
    limiter = _redis_limiter(url, prefix, fake, per_minute=3, per_hour=4)
    try:
        for _ in range(3):
            assert await limiter.acquire(PATH) == 0.0
        fake.advance(61)
        assert await limiter.acquire(PATH) == 0.0
        fifth = asyncio.create_task(limiter.acquire(PATH))
        assert await fake.settle([fifth]) == 0
        assert fake.waits and all(w > 0 for w in fake.waits)
        # the refused call took no slot of the minute: only the 4th call is in it
        stats = await limiter._strategy().get_window_stats(RateLimitItemPerMinute(3), CORP, PATH)
        assert stats.remaining == 2
        fifth.cancel()
    finally:
        await limiter.aclose()


@pytest.mark.redis
async def test_windows_are_per_corp_and_per_api(fake: FakeTime, shared: tuple[str, str]) -> None:
    url, prefix = shared
    special = {JSAPI_TICKET: (None, 2)}
    ours = _redis_limiter(url, prefix, fake, per_minute=2, special=special)
    theirs = _redis_limiter(url, prefix, fake, per_minute=2, corp_id="wwothercorp", special=special)
    try:
        for _ in range(2):
            assert await ours.acquire(JSAPI_TICKET) == 0.0
            assert await ours.acquire(PATH) == 0.0
            assert await theirs.acquire(PATH) == 0.0
        assert await ours.acquire("message/send") == 0.0
        blocked = [asyncio.create_task(limiter.acquire(path))
                   for limiter, path in ((ours, JSAPI_TICKET), (ours, PATH), (theirs, PATH))]
        assert await fake.settle(blocked) == 0
        for task in blocked:
            task.cancel()
    finally:
        await ours.aclose()
        await theirs.aclose()


def test_factory_picks_redis_when_redis_url_is_set() -> None:
    reset_wecom_apis()
    try:
        embedded = _limiter(CORP, make_settings())
        assert type(embedded) is RateLimiter
        url = "redis://127.0.0.1:6379/0"
        shared = _limiter(CORP, make_settings(redis_url=url))
        assert isinstance(shared, RedisRateLimiter)
        assert (shared.corp_id, shared.redis_url) == (CORP, url)
        assert _limiter(CORP, make_settings(redis_url=url)) is shared
        assert wecom_api_for(CORP, "secret", make_settings(redis_url=url)).limiter is shared
        for limiter in (embedded, shared):
            assert limiter.limits_for(JSAPI_TICKET) == (None, 400)
            assert limiter.limits_for(AGENT_TICKET) == (None, 100)
            assert limiter.limits_for(PATH) == (9000, 140000)
    finally:
        reset_wecom_apis()


@pytest.mark.redis
def test_cached_limiter_works_in_every_event_loop(shared: tuple[str, str]) -> None:
    url, prefix = shared
    limiter = RedisRateLimiter(corp_id=CORP, redis_url=url, per_minute=100, per_hour=1000, key_prefix=prefix)

    async def call() -> float:
        try:
            return await limiter.acquire(PATH)
        finally:
            await limiter.aclose()

    # each test, and each asyncio.run, has a loop of its own; the factory's limiter outlives them
    assert asyncio.run(call()) == 0.0
    assert asyncio.run(call()) == 0.0
    assert limiter._windows == {}  # both went through Redis
    client = redis.Redis.from_url(url)
    try:
        assert client.llen(f"{prefix}:{RateLimitItemPerMinute(100).key_for(CORP, PATH)}") == 2
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_redis_outage_falls_back_to_this_process(fake: FakeTime, log_output: io.StringIO) -> None:
    limiter = _redis_limiter(f"redis://127.0.0.1:{_closed_port()}/0", "gongdan-test:wecom-rate:down", fake,
                             per_minute=2)
    try:
        assert await limiter.acquire(PATH) == 0.0
        assert await limiter.acquire(PATH) == 0.0
        third = asyncio.create_task(limiter.acquire(PATH))  # this process's window is full
        assert await fake.settle([third]) == 0
        fake.advance(61)
        assert await third > 0
        assert limiter._windows[PATH][0].total == 1
        assert log_output.getvalue().count("wecom.rate_limiter_redis_unavailable") == 1
    finally:
        await limiter.aclose()


async def test_after_an_outage_redis_is_asked_again_later(fake: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = _redis_limiter("redis://127.0.0.1:6379/0", "gongdan-test:wecom-rate:flaky", fake)
    attempts: list[str] = []

    async def down(path: str) -> float:
        attempts.append(path)
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(limiter, "_take_shared", down)
    assert await limiter.acquire(PATH) == 0.0
    assert await limiter.acquire(PATH) == 0.0
    assert len(attempts) == 1  # the second call did not wait on a Redis known to be down
    fake.advance(ratelimit.REDIS_RETRY_AFTER)

    async def up(path: str) -> float:
        attempts.append(path)
        return 0.0

    monkeypatch.setattr(limiter, "_take_shared", up)
    assert await limiter.acquire(PATH) == 0.0
    assert await limiter.acquire(PATH) == 0.0
    assert len(attempts) == 3
    assert limiter._windows[PATH][0].total == 2  # only the calls made while Redis was down
