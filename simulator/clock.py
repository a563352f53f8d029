"""Injectable clock for the simulator.

Everything time-dependent in the simulator (token expiry, the customer-service window, CreateTime in callbacks,
media expiry) reads ``Clock.now()``, so a test can jump 49 hours ahead without sleeping.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Clock"]


class Clock:
    """Wall-clock time plus an offset that tests can move, optionally frozen at one instant."""

    def __init__(self, *, start: float | None = None, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        now = time.time()
        self._offset = 0.0 if start is None else start - now
        self._frozen_at: float | None = (now + self._offset if start is None else start) if frozen else None

    def now(self) -> float:
        """Return the simulated Unix time in seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move time forward (or backward with a negative value) and return the new time."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds
        return self.now()

    def freeze(self, at: float | None = None) -> None:
        """Stop time at ``at`` (default: now); ``advance`` still moves it."""
        current = self.now() if at is None else at
        with self._lock:
            self._frozen_at = current

    def unfreeze(self) -> None:
        """Let time run again from the frozen instant."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    def reset(self) -> None:
        """Back to real wall-clock time."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None
