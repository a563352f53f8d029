"""A value read from the database and kept a few seconds by this process (SLA policies, skill group names,
assignment strategies): other processes see a change once their copy is that old; the process that makes the
change clears its copy at once (the module's ``invalidate``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Expiring"]

T = TypeVar("T")


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
