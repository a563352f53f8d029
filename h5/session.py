"""The H5 session: a signed, HttpOnly cookie holding who is logged in, with an expiry.

The cookie is an itsdangerous ``URLSafeTimedSerializer`` payload signed with SECRET_KEY (readable by its holder,
never forgeable). It holds a random session id, the kind of user and their id; nothing personal. Every login
issues a fresh session id (``Session.login``), so a cookie planted before login (session fixation) is worthless
afterwards, and CSRF tokens, derived from the session id, change with it.

Logging out revokes the session server-side (``revoke``: the SHA-256 of its id in ``RevokedSession``), so a copy
of the cookie kept by anyone is anonymous from then on (``is_revoked``, checked by every page wrapper), not only
the browser that pressed the button.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from app.security.models import RevokedSession
from app.settings import Settings
from app.timeutil import utcnow

__all__ = ["COOKIE", "Kind", "Session", "clear_cookie", "is_revoked", "load", "purge_revoked", "revoke", "save"]

COOKIE = "gd_h5"
_SALT = "gongdan.h5.session"
Kind = Literal["anon", "staff", "customer"]


@dataclass(frozen=True)
class Session:
    """Who holds this browser: an anonymous visitor, a staff member or a WeChat customer."""

    sid: str
    kind: Kind = "anon"
    #: Staff.id for staff
    staff_id: int | None = None
    #: the customer's openid and the Official Account (channel account key) it belongs to
    openid: str = ""
    account: str = ""
    issued_at: int = field(default_factory=lambda: int(time.time()))
    #: when the holder last logged in (OAuth or the development login), epoch seconds by the desk's clock
    #: (app.timeutil, so tests can move it); sensitive actions need a recent one (app.security.reauth)
    login_at: int = 0
    #: True when this request created it (the response must set the cookie)
    fresh: bool = False

    @classmethod
    def anonymous(cls) -> Session:
        """A new anonymous session (it only binds CSRF tokens of pre-login forms)."""
        return cls(sid=secrets.token_urlsafe(18), fresh=True)

    def login(self, *, kind: Kind, staff_id: int | None = None, openid: str = "", account: str = "") -> Session:
        """A logged-in session with a NEW session id (never reuse the pre-login one)."""
        return Session(sid=secrets.token_urlsafe(18), kind=kind, staff_id=staff_id, openid=openid,
                       account=account, login_at=int(utcnow().timestamp()), fresh=True)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"s": self.sid, "k": self.kind, "t": self.issued_at}
        if self.login_at:
            data["l"] = self.login_at
        if self.staff_id is not None:
            data["u"] = self.staff_id
        if self.openid:
            data.update(o=self.openid, a=self.account)
        return data


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(settings.secret_key), salt=_SALT)


def _parse(raw: str, settings: Settings) -> Session | None:
    try:
        data = _serializer(settings).loads(raw, max_age=settings.h5_session_hours * 3600)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("s"), str):
        return None
    kind = data.get("k")
    if kind not in ("anon", "staff", "customer"):
        return None
    staff_id = data.get("u")
    login_at = data.get("l")
    return Session(sid=data["s"], kind=kind, staff_id=int(staff_id) if isinstance(staff_id, int) else None,
                   openid=str(data.get("o", "")), account=str(data.get("a", "")), issued_at=int(data.get("t", 0)),
                   login_at=login_at if isinstance(login_at, int) else 0)


def load(request: Request, settings: Settings) -> Session:
    """This request's session (cached on the request); a new anonymous one when the cookie is missing or bad."""
    cached = getattr(request.state, "h5_session", None)
    if isinstance(cached, Session):
        return cached
    raw = request.cookies.get(COOKIE)
    session = _parse(raw, settings) if raw else None
    if session is None:
        session = Session.anonymous()
    request.state.h5_session = session
    return session


def replace_session(request: Request, session: Session) -> Session:
    """Make ``session`` the request's session (after login); the response must then be passed to ``save``."""
    request.state.h5_session = session
    return session


def save(response: Response, session: Session, settings: Settings) -> None:
    """Set the cookie: signed, HttpOnly, SameSite=Lax, Secure on https, expiring with the session."""
    value = _serializer(settings).dumps(session.to_json())
    age = settings.h5_session_hours * 3600
    if session.kind != "anon":
        age = max(1, session.issued_at + age - int(time.time()))
    response.set_cookie(COOKIE, value, max_age=age, path="/", httponly=True, samesite="lax",
                        secure=settings.public_url.startswith("https://"))


def clear_cookie(response: Response, settings: Settings) -> None:
    """Forget the session in the browser."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=settings.public_url.startswith("https://"))


def unfresh(session: Session) -> Session:
    """The same session, marked as already stored."""
    return replace(session, fresh=False)


def _sid_hash(session: Session) -> str:
    return hashlib.sha256(session.sid.encode("utf-8")).hexdigest()


async def revoke(*, session: Session, settings: Settings) -> None:
    """End ``session`` server-side: its cookie, wherever a copy of it is, no longer logs anyone in."""
    expires = datetime.fromtimestamp(session.issued_at + settings.h5_session_hours * 3600, UTC)
    await RevokedSession.get_or_create(sid_hash=_sid_hash(session), defaults={"expires_at": expires})


async def is_revoked(*, session: Session) -> bool:
    """Whether ``session`` was ended by a logout (anonymous sessions are never stored, so never revoked)."""
    if session.kind == "anon":
        return False
    return await RevokedSession.filter(sid_hash=_sid_hash(session)).exists()


async def purge_revoked(ctx: dict[str, Any] | None = None) -> int:
    """Delete revocations whose cookies have expired anyway (a daily cron job); returns how many."""
    deleted: int = await RevokedSession.filter(expires_at__lt=utcnow()).delete()
    return deleted
