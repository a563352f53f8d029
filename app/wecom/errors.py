"""WeChat (MP) and WeCom API failures, mapped onto Gongdan's channel errors.

Error codes follow 全局返回码说明 https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html
(MP) and 全局错误码 https://developer.work.weixin.qq.com/document/path/90455 (WeCom). Both platforms answer HTTP 200
with ``{"errcode": N, "errmsg": "..."}``; we branch on ``errcode`` only, never on the text.

    ChannelError                                  (app.errors)
    ├── TemporaryChannelError                     the outbox retries with backoff
    │   ├── PlatformUnavailable                   HTTP 5xx, connection refused, timeout (no errcode)
    │   │   └── PlatformTimedOut (+ OutcomeUnknown) the request went out, the answer did not come in time
    │   └── TemporaryAPIError (+ WeComAPIError)   an errcode worth retrying; ``retry_after`` hint in seconds
    │       ├── RateLimited                       45009 (60 s), 45033 (5 s)
    │       ├── PlatformBusy                      -1 (2 s)
    │       └── TokenRejected                     40001/40014/42001 still returned after one refresh
    └── PermanentChannelError                     retrying cannot help; ``code`` is stable, ``reason`` English
        └── PermanentAPIError (+ WeComAPIError)
            ├── code "mp_window_closed"           45015 customer-service window (48 h) closed or unfollowed
            ├── code "mp_quota_exceeded"          45047 message count of the window used up
            ├── code "mp_not_subscribed"          43004 the user does not follow the account
            ├── code "mp_invalid_openid"          40003 unknown openid
            ├── code "mp_invalid_media"           40007 media_id unknown or expired
            ├── code "mp_bad_credentials"         40001/40013/40125 while fetching a token (secret or appid wrong)
            └── code "api_error"                  any other non-zero errcode

``WeComAPIError`` is a mixin base carrying ``errcode`` and ``errmsg`` so callers can also catch every
platform-reported error at once.
"""

from __future__ import annotations

from app.errors import ChannelError, OutcomeUnknown, PermanentChannelError, TemporaryChannelError

__all__ = [
    "TOKEN_ERRCODES",
    "WECOM_PERMANENT",
    "WECOM_TOKEN_ERRCODES",
    "PermanentAPIError",
    "PlatformBusy",
    "PlatformTimedOut",
    "PlatformUnavailable",
    "RateLimited",
    "TemporaryAPIError",
    "TokenRejected",
    "WeComAPIError",
    "map_errcode",
    "map_wecom_errcode",
]

#: errcodes meaning "this access_token is not (or no longer) valid": refresh once, then give up
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})

_PERMANENT: dict[int, tuple[str, str]] = {
    45015: ("mp_window_closed", "customer-service window closed (no customer message in 48 hours, or unfollowed)"),
    45047: ("mp_quota_exceeded", "customer-service message quota for this window is used up"),
    43004: ("mp_not_subscribed", "the user does not follow the account"),
    40003: ("mp_invalid_openid", "the openid is not valid for this account"),
    40007: ("mp_invalid_media", "the media_id is unknown or expired"),
}
_TOKEN_FETCH_PERMANENT = frozenset({40001, 40013, 40125})


class WeComAPIError(ChannelError):
    """A non-zero errcode from the MP or WeCom API."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        ChannelError.__init__(self, f"WeChat API errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class PlatformUnavailable(TemporaryChannelError):
    """The platform could not be reached or answered with an HTTP error (no errcode)."""

    def __init__(self, reason: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.retry_after = retry_after


class PlatformTimedOut(PlatformUnavailable, OutcomeUnknown):
    """The request was sent but the answer did not come within the timeout: the platform may have carried it out."""


class TemporaryAPIError(WeComAPIError, TemporaryChannelError):
    """An errcode that may pass; ``retry_after`` is a hint for the outbox (seconds, or None)."""

    default_retry_after: float | None = None

    def __init__(self, errcode: int, errmsg: str = "", *, retry_after: float | None = None) -> None:
        WeComAPIError.__init__(self, errcode, errmsg)
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after


class RateLimited(TemporaryAPIError):
    """45009 (call quota) or 45033 (concurrency) — back off, never loop tightly."""

    default_retry_after = 60.0


class PlatformBusy(TemporaryAPIError):
    """-1 系统繁忙 — the doc advises a few retries with backoff."""

    default_retry_after = 2.0


class TokenRejected(TemporaryAPIError):
    """The access_token was still rejected after one refresh (revoked app, token shared with another service)."""

    default_retry_after = 30.0


class PermanentAPIError(WeComAPIError, PermanentChannelError):
    """An errcode that retrying will not fix; ``code`` is a stable machine-readable name."""

    def __init__(self, errcode: int, errmsg: str = "", *, code: str, reason: str) -> None:
        PermanentChannelError.__init__(self, reason, code=code)
        self.errcode = errcode
        self.errmsg = errmsg

    def __str__(self) -> str:
        return f"{self.code} (errcode {self.errcode}): {self.reason}"


#: WeCom (企业微信) errcodes that retrying cannot fix, by stable code (全局错误码 path/90455). Only 40014 and 42001
#: mean "refresh the token": a WeCom 40001 is a wrong or reset secret, so it is not retried (unlike MP's 40001).
WECOM_TOKEN_ERRCODES = frozenset({40014, 42001})
WECOM_PERMANENT: dict[int, tuple[str, str]] = {
    40001: ("wecom_bad_credentials", "WeCom refused the secret (wrong or reset, or the app is disabled)"),
    40013: ("wecom_bad_credentials", "WeCom does not know this CorpID"),
    40029: ("wecom_invalid_code", "the OAuth code is invalid, used or older than 5 minutes"),
    40096: ("wecom_invalid_external_userid", "the external_userid is not valid"),
    48002: ("wecom_api_forbidden", "the app may not call this API (check 可调用接口的应用 / 通讯录同步)"),
    60003: ("wecom_department_not_found", "the department does not exist"),
    60011: ("wecom_no_privilege", "outside the app's visibility"),
    60020: ("wecom_untrusted_ip", "the server IP is not in the app's 可信IP"),
    60111: ("wecom_user_not_found", "the member does not exist"),
    81013: ("wecom_no_valid_recipient", "every recipient is invalid or outside the app's visibility"),
    84061: ("wecom_no_relation", "no relation with this external contact"),
    701008: ("wecom_unlicensed", "no member with an interworking (互通) licence"),
}


def map_wecom_errcode(errcode: int, errmsg: str = "") -> WeComAPIError:
    """Turn a WeCom errcode into the matching exception (to raise)."""
    if errcode in (45009, 45033, -1):
        return map_errcode(errcode, errmsg)
    if errcode in WECOM_TOKEN_ERRCODES:
        return TokenRejected(errcode, errmsg)
    if errcode in WECOM_PERMANENT:
        code, reason = WECOM_PERMANENT[errcode]
        return PermanentAPIError(errcode, errmsg, code=code, reason=reason)
    return PermanentAPIError(errcode, errmsg, code="api_error", reason=f"WeCom answered errcode {errcode}")


def map_errcode(errcode: int, errmsg: str = "", *, token_fetch: bool = False) -> WeComAPIError:
    """Turn a platform errcode into the matching exception (to raise); ``token_fetch`` for the token endpoint."""
    if errcode == 45009:
        return RateLimited(errcode, errmsg)
    if errcode == 45033:
        return RateLimited(errcode, errmsg, retry_after=5.0)
    if errcode == -1:
        return PlatformBusy(errcode, errmsg)
    if token_fetch and errcode in _TOKEN_FETCH_PERMANENT:
        return PermanentAPIError(
            errcode, errmsg, code="mp_bad_credentials", reason="the platform refused the app credentials"
        )
    if errcode in TOKEN_ERRCODES:
        return TokenRejected(errcode, errmsg)
    if errcode in _PERMANENT:
        code, reason = _PERMANENT[errcode]
        return PermanentAPIError(errcode, errmsg, code=code, reason=reason)
    return PermanentAPIError(errcode, errmsg, code="api_error", reason=f"the platform answered errcode {errcode}")
