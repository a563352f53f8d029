"""CSRF protection for every H5 form: a synchronizer token derived from the session id, plus an Origin check.

The token is HMAC-SHA256(SECRET_KEY, session id), so it needs no storage, differs per session and changes at login
(the session id is rotated). A POST must carry it in the ``csrf_token`` field (or the ``X-CSRF-Token`` header for
fetch calls) and, when the browser sends an ``Origin`` header, come from our own origin. The session cookie is also
SameSite=Lax, which alone stops cross-site POSTs in current browsers; the token covers older WebViews.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from app.settings import Settings
from h5.session import Session

__all__ = ["FIELD", "HEADER", "token_for", "verify"]

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def token_for(session: Session, settings: Settings) -> str:
    """The CSRF token of a session."""
    mac = hmac.new(str(settings.secret_key).encode(), b"h5-csrf:" + session.sid.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _same_origin(request: Request, settings: Settings) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        # no Origin (older WebViews, same-origin GET-initiated navigations): the token alone decides
        return origin is None
    ours = {f"{request.url.scheme}://{request.headers.get('host', '')}", settings.public_url}
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" in ours


def verify(request: Request, form: FormData | None, session: Session, settings: Settings) -> bool:
    """Whether a POST carries this session's token and comes from our origin."""
    sent = request.headers.get(HEADER) or (str(form.get(FIELD) or "") if form is not None else "")
    if not sent or not _same_origin(request, settings):
        return False
    return hmac.compare_digest(sent.encode(), token_for(session, settings).encode())
