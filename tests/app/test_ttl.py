"""A cached value is given back while younger than its seconds, then not; clear forgets it at once."""

from __future__ import annotations

from app.ttl import Expiring


def test_a_value_is_kept_for_its_seconds_and_cleared_at_once() -> None:
    now = [100.0]
    cache: Expiring[list[int]] = Expiring(5.0, clock=lambda: now[0])
    assert cache.get() is None
    assert cache.put([1, 2]) == [1, 2]
    now[0] += 4.999
    assert cache.get() == [1, 2]
    now[0] += 0.001
    assert cache.get() is None
    cache.put([3])
    cache.clear()
    assert cache.get() is None
