"""Fault injection shared by every simulated platform.

A fault is attached to an API path (``message/custom/send``, or ``*`` for all) and is consumed once per matching
call, ``times`` times (``None`` = forever, e.g. to prove a client never loops on 40014). Kinds:

* ``{"errcode": 42001}`` / ``{"errcode": 45009}`` / ``{"errcode": -1}``: answer HTTP 200 with that error;
* ``{"http_status": 502}``: answer with that HTTP status and an HTML body, as a broken gateway would;
* ``{"delay": 2.5}``: wait, then answer normally (or combine with one of the above);
* ``{"slow": 12}``: carry the call out at once (the message is delivered), then hold the answer that long: a slow
  platform whose answer arrives after the caller's timeout, so the caller cannot know the call took effect.

Paths may carry a platform scope (``mp:token``) so the WeCom routes can share the table without clashing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "FaultTable", "normalize_path"]


@dataclass(frozen=True)
class Fault:
    """One injected failure."""

    errcode: int | None = None
    errmsg: str | None = None
    http_status: int | None = None
    delay: float = 0.0
    slow: float = 0.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the JSON shape used by the admin API; unknown keys are an error, not silently ignored."""
        unknown = set(data) - {"errcode", "errmsg", "http_status", "delay", "slow"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        fault = cls(
            errcode=None if data.get("errcode") is None else int(data["errcode"]),
            errmsg=None if data.get("errmsg") is None else str(data["errmsg"]),
            http_status=None if data.get("http_status") is None else int(data["http_status"]),
            delay=float(data.get("delay") or 0.0),
            slow=float(data.get("slow") or 0.0),
        )
        if fault.errcode is None and fault.http_status is None and fault.delay <= 0 and fault.slow <= 0:
            raise ValueError("a fault needs errcode, http_status, delay or slow")
        return fault

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, without empty keys."""
        out: dict[str, Any] = {}
        if self.errcode is not None:
            out["errcode"] = self.errcode
        if self.errmsg is not None:
            out["errmsg"] = self.errmsg
        if self.http_status is not None:
            out["http_status"] = self.http_status
        if self.delay:
            out["delay"] = self.delay
        if self.slow:
            out["slow"] = self.slow
        return out


@dataclass
class _Entry:
    fault: Fault
    remaining: int | None


def normalize_path(path: str) -> str:
    """``/cgi-bin/message/custom/send`` and ``message/custom/send`` name the same API."""
    scope, sep, rest = path.partition(":")
    if not sep:
        scope, rest = "", path
    rest = rest.strip().lstrip("/")
    if rest.startswith("cgi-bin/"):
        rest = rest[len("cgi-bin/") :]
    rest = rest.rstrip("/") or "*"
    return f"{scope}:{rest}" if scope else rest


class FaultTable:
    """Per-path FIFO queues of faults."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._queues: dict[str, list[_Entry]] = {}

    def inject(self, path: str, fault: Fault | Mapping[str, Any], times: int | None = 1) -> Fault:
        """Queue ``fault`` for ``path``; it fires on the next ``times`` matching calls (``None``: every call)."""
        if not isinstance(fault, Fault):
            fault = Fault.from_mapping(fault)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._queues.setdefault(normalize_path(path), []).append(_Entry(fault, times))
        return fault

    def take(self, path: str, scope: str | None = None) -> Fault | None:
        """Consume the next fault for a call to ``path``: the scoped path, the bare path, then the wildcards."""
        path = normalize_path(path)
        keys = [f"{scope}:{path}", path, f"{scope}:*", "*"] if scope else [path, "*"]
        with self._lock:
            for key in keys:
                queue = self._queues.get(key)
                if not queue:
                    continue
                entry = queue[0]
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        queue.pop(0)
                return entry.fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """What is still queued, for the admin API."""
        with self._lock:
            return [
                {"path": key, "fault": entry.fault.to_dict(), "times": entry.remaining}
                for key, queue in self._queues.items()
                for entry in queue
            ]

    def clear(self, path: str | None = None) -> None:
        """Drop every fault, or those of one path."""
        with self._lock:
            if path is None:
                self._queues.clear()
            else:
                self._queues.pop(normalize_path(path), None)
