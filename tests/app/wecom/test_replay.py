"""Replay protection: a verified (timestamp, nonce, signature) is accepted once within the window."""

from __future__ import annotations

import secrets

import pytest
import redis.asyncio as aioredis

from app.errors import CallbackRejected
from app.wecom.replay import MemoryReplayGuard, RedisReplayGuard, check_not_replayed, make_replay_guard, replay_key
from tests.conftest import make_settings, redis_url_or_skip

PARAMS = {"timestamp": "1700000000", "nonce": "12345", "msg_signature": "ab" * 20, "signature": "cd" * 20}


def test_key_covers_the_signed_triple_and_the_channel_and_hides_the_values() -> None:
    key = replay_key("wechat_mp:default", PARAMS)
    assert key.startswith("wechat_mp:default:") and "12345" not in key and "ab" * 20 not in key
    assert replay_key("wecom_app", PARAMS) != replay_key("wecom_contacts", PARAMS)
    assert replay_key("x", {**PARAMS, "nonce": "12346"}) != replay_key("x", PARAMS)
    assert replay_key("x", {**PARAMS, "msg_signature": "ef" * 20}) != replay_key("x", PARAMS)
    plain = {k: v for k, v in PARAMS.items() if k != "msg_signature"}
    assert replay_key("x", plain) != replay_key("x", PARAMS)  # plain mode: the 3-value signature


async def test_memory_guard_refuses_the_second_sighting_until_it_expires() -> None:
    now = [1000.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    assert await check_not_replayed(guard, channel="c", params=PARAMS, window_seconds=300)
    with pytest.raises(CallbackRejected) as excinfo:
        await check_not_replayed(guard, channel="c", params=PARAMS, window_seconds=300)
    assert (excinfo.value.reason, excinfo.value.status_code) == ("replayed", 403)
    now[0] += 600  # two windows: the timestamp is stale by then anyway
    with pytest.raises(CallbackRejected):
        await check_not_replayed(guard, channel="c", params=PARAMS, window_seconds=300)
    now[0] += 2
    key = await check_not_replayed(guard, channel="c", params=PARAMS, window_seconds=300)
    await guard.forget(key)  # storing failed: the platform's retry must pass
    assert await check_not_replayed(guard, channel="c", params=PARAMS, window_seconds=300) == key


async def test_memory_guard_prunes_expired_entries() -> None:
    now = [0.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    for i in range(100):
        assert await guard.first_seen(f"k{i}", 10)
    now[0] = 11
    assert await guard.first_seen("fresh", 10)
    assert len(guard._expiry) == 1


async def test_memory_guard_keeps_a_key_forgotten_and_seen_again_until_its_new_expiry() -> None:
    now = [0.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    assert await guard.first_seen("a", 10)
    await guard.forget("a")
    now[0] = 5
    assert await guard.first_seen("a", 10)  # remembered again: expires at 15, not 10
    assert await guard.first_seen("b", 1)  # a shorter ttl behind a longer one waits its turn, and still expires
    now[0] = 11
    assert not await guard.first_seen("a", 10)
    assert await guard.first_seen("b", 1)
    now[0] = 16
    assert await guard.first_seen("a", 10)
    assert sorted(guard._expiry) == ["a"]  # b expired at 12


def test_store_is_picked_like_the_token_store() -> None:
    assert isinstance(make_replay_guard(make_settings()), MemoryReplayGuard)
    assert isinstance(make_replay_guard(make_settings(redis_url="redis://127.0.0.1:6379/0")), RedisReplayGuard)


@pytest.mark.redis
async def test_redis_guard_is_shared_by_every_process() -> None:
    url = redis_url_or_skip()
    first, second = (RedisReplayGuard(aioredis.Redis.from_url(url)) for _ in range(2))  # two "processes"
    key = f"test:{secrets.token_hex(8)}"
    try:
        assert await first.first_seen(key, 5) is True
        assert await second.first_seen(key, 5) is False
        assert 0 < await first.client.ttl(first.prefix + key) <= 5
        await second.forget(key)
        assert await first.first_seen(key, 5) is True
    finally:
        await first.forget(key)
        await first.client.aclose()
        await second.client.aclose()
