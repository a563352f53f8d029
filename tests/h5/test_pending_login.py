"""h5.auth.PendingLogin: the signed single-use state cookie of the WeCom OAuth and QR-code logins."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.settings import load_settings
from h5.auth import PendingLogin
from h5.session import Session
from h5.web import Ctx

PENDING = PendingLogin(cookie="gd_test_login", path="/h5", salt="gongdan.test")
SETTINGS = load_settings({"SECRET_KEY": "pending-login-secret-key-0123456789-abcdef", "PUBLIC_URL": "https://desk.cn"},
                         env_file=None)


def _ctx() -> Ctx:
    return Ctx(settings=SETTINGS, session=Session.anonymous(), nonce="n")


def _started(**data: str) -> tuple[str, str, str]:
    """(state, cookie value, Set-Cookie header) of a started login."""
    ctx = _ctx()
    state = PENDING.start(ctx, **data)
    response = Response()
    for apply in ctx.cookies:
        apply(response)
    header = response.headers["set-cookie"]
    return state, header.split(";", 1)[0].split("=", 1)[1], header


def _back(state: str, cookie: str) -> tuple[Request, Ctx]:
    scope = {"type": "http", "method": "GET", "path": "/h5/auth/callback", "query_string": f"state={state}".encode(),
             "headers": [(b"cookie", f"{PENDING.cookie}={cookie}".encode())]}
    return Request(scope), _ctx()


def test_the_state_comes_back_once_with_what_was_remembered() -> None:
    state, cookie, header = _started(k="staff", next="/h5/tickets/1")
    assert "HttpOnly" in header and "Path=/h5" in header and "Secure" in header and "Max-Age=600" in header
    request, ctx = _back(state, cookie)
    assert PENDING.take(request, ctx, k="staff") == {"n": state, "k": "staff", "next": "/h5/tickets/1"}
    dropped = Response()
    for apply in ctx.cookies:
        apply(dropped)
    assert dropped.headers["set-cookie"].startswith(f'{PENDING.cookie}=""')  # single use: the cookie is dropped


def test_another_state_another_kind_or_another_salt_is_refused() -> None:
    state, cookie, _ = _started(k="customer", next="/h5/my/tickets")
    assert PENDING.take(*_back(state + "x", cookie)) is None
    assert PENDING.take(*_back(state, cookie), k="staff") is None
    assert PENDING.take(*_back("", cookie)) is None
    other = PendingLogin(cookie=PENDING.cookie, path="/console", salt="gongdan.other")
    assert other.take(*_back(state, cookie)) is None
    assert PENDING.take(*_back(state, cookie), k="customer") is not None
