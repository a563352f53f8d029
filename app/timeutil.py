"""One clock for the whole desk, so tests (and SLA maths) can move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731

CHINA = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return _now()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests); None restores the real one."""
    global _now
    _now = clock or (lambda: datetime.now(UTC))


def local(dt: datetime) -> datetime:
    """The same instant in China time, for numbers and messages people read."""
    return dt.astimezone(CHINA)
