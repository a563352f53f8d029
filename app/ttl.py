"""A value read from the database and kept a few seconds by this process (SLA policies, skill group names,
assignment strategies): other processes see a change once their copy is that old; the process that makes the
change clears its copy at once (the module's ``invalidate``). ``ExpiringMap`` keeps such values by key (API tokens,
the outbox's fold keys, a card window's recipients)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Expiring", "ExpiringMap"]

T = TypeVar("T")
K = TypeVar("K")


class Expiring(Generic[T]):
    """One cached value and when it was read (``clock``: the monotonic clock; tests move their own)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._held: tuple[float, T] | None = None

    def get(self) -> T | None:
        """The value while it is younger than ``seconds``, else None."""
        held = self._held
        if held is None or self.clock() - held[0] >= self.seconds:
            return None
        return held[1]

    def put(self, value: T) -> T:
        """Keep ``value`` from now on; returns it."""
        self._held = (self.clock(), value)
        return value

    def clear(self) -> None:
        """Forget the value (the next ``get`` answers None)."""
        self._held = None


class ExpiringMap(Generic[K, T]):
    """Values by key, each kept ``seconds`` from when it was put. Past ``limit`` keys the map starts afresh: the keys
    are many and short-lived (a token, a fold key, a minute's window), and a forgotten one costs one read again."""

    def __init__(self, seconds: float, *, limit: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.limit = limit
        self.clock = clock
        self._held: dict[K, tuple[float, T]] = {}

    def get(self, key: K) -> T | None:
        """The key's value while it is younger than ``seconds``, else None."""
        held = self._held.get(key)
        if held is None or self.clock() >= held[0]:
            return None
        return held[1]

    def put(self, key: K, value: T) -> T:
        """Keep ``value`` under ``key`` from now on; returns it."""
        if len(self._held) >= self.limit:
            self._held.clear()
        self._held[key] = (self.clock() + self.seconds, value)
        return value

    def pop(self, key: K) -> None:
        """Forget one key."""
        self._held.pop(key, None)

    def clear(self) -> None:
        """Forget every key."""
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)
