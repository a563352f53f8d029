"""Visitor ids signed by the server (itsdangerous with SECRET_KEY), and per-visitor/per-IP rate limits."""

from __future__ import annotations

import re
import secrets
import time
from collections import deque

from itsdangerous import BadSignature, URLSafeSerializer

from app.settings import get_settings

SALT = "webchat-visitor"
#: messages one visitor, and one IP address, may send per window
PER_VISITOR = 10
PER_IP = 30
WINDOW_SECONDS = 60.0
#: the longest message a visitor may send
MAX_CHARS = 2000
#: what the forms accept as a phone number or an e-mail address
PHONE = re.compile(r"^\+?\d[\d\- ]{5,19}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(str(get_settings().secret_key), salt=SALT)


def new_visitor() -> tuple[str, str]:
    """A fresh visitor id and its signed token (what the browser keeps)."""
    vid = secrets.token_urlsafe(16)
    return vid, str(_serializer().dumps({"v": vid}))


def verify(token: str) -> str | None:
    """The visitor id of a signed token, or None when it was not signed by us."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    vid = data.get("v") if isinstance(data, dict) else None
    return vid if isinstance(vid, str) and vid else None


class RateLimiter:
    """A sliding-window counter per key, in this process (a visitor's socket lives in one process)."""

    def __init__(self, *, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, *, now: float | None = None, limit: int | None = None) -> bool:
        """Count one hit for ``key``; False when the window is full (the hit is not counted). ``limit``: the
        site's own limit instead of the default."""
        at = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= at - self.window:
            hits.popleft()
        if len(hits) >= (self.limit if limit is None else limit):
            return False
        hits.append(at)
        return True

    def reset(self) -> None:
        """Forget every count (tests)."""
        self._hits.clear()


visitor_limiter = RateLimiter(limit=PER_VISITOR)
ip_limiter = RateLimiter(limit=PER_IP)
