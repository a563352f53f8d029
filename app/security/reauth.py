"""Re-authentication for sensitive operations: revealing a phone or e-mail, exporting or erasing a customer.

A staff member working in H5 must have logged in through WeCom at most SENSITIVE_REAUTH_MINUTES ago (the login
time travels in the session, then on the Actor as ``login_at``); otherwise the action is refused with 401
``reauth_required`` and the H5 page sends them through the WeCom login again, back to where they were. API tokens
(integrations, ``login_at`` None) are exempt; export and erase check the admin role themselves.
"""

from __future__ import annotations

from app.errors import DomainError
from app.security.scope import Actor
from app.settings import Settings, get_settings
from app.timeutil import utcnow

__all__ = ["ReauthRequired", "login_is_recent", "require_recent_login"]


class ReauthRequired(DomainError):
    """401: the H5 login is too old for a sensitive action; log in through WeCom again."""

    status_code = 401
    code = "reauth_required"


def login_is_recent(*, login_at: int | None, settings: Settings | None = None) -> bool:
    """Whether a login at ``login_at`` (epoch seconds) is recent enough for a sensitive action."""
    if not login_at:
        return False
    minutes = (settings or get_settings()).sensitive_reauth_minutes
    return 0 <= utcnow().timestamp() - login_at <= minutes * 60


def require_recent_login(*, actor: Actor, settings: Settings | None = None) -> None:
    """Refuse a sensitive action (401 reauth_required) when the caller's H5 login is too old; tokens pass."""
    if actor.kind != "staff" or actor.login_at is None:
        return
    s = settings or get_settings()
    if not login_is_recent(login_at=actor.login_at, settings=s):
        raise ReauthRequired(
            f"为保护客户信息，此操作需要在 {s.sensitive_reauth_minutes} 分钟内登录过企业微信，请重新登录后再试。",
            details={"login_url": "/h5/login?reauth=1"})
