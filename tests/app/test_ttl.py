"""A cached value is given back while younger than its seconds, then not; clear forgets it at once."""

from __future__ import annotations

from app.ttl import Expiring, ExpiringMap


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


def test_values_by_key_are_kept_for_their_seconds_each_and_the_map_starts_afresh_at_its_limit() -> None:
    now = [100.0]
    held: ExpiringMap[str, int] = ExpiringMap(5.0, limit=3, clock=lambda: now[0])
    assert held.get("a") is None
    assert held.put("a", 1) == 1
    now[0] += 3.0
    held.put("b", 2)
    now[0] += 2.0
    # "a" was put 5 s ago, "b" 2 s ago
    assert (held.get("a"), held.get("b")) == (None, 2)
    held.pop("b")
    assert held.get("b") is None
    held.put("c", 3)
    held.put("d", 4)
    assert len(held) == 3  # a (expired but still held), c, d
    held.put("e", 5)
    assert (len(held), held.get("c"), held.get("e")) == (1, None, 5)
    held.clear()
    assert held.get("e") is None
