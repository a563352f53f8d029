"""Gongdan's exception hierarchy.

    GongdanError
    ├── ConfigError                 a setting is missing or malformed (start-up stops)
    ├── DomainError                 a request the domain refuses; carries an HTTP status and a stable code
    │   ├── NotFound                404: missing, or outside the caller's scope (existence never leaks)
    │   ├── PermissionDenied        403: the caller is known to see it but may not do this
    │   ├── ValidationFailed        422: well-formed input with wrong values
    │   ├── BadRequest              400: malformed input (JSON, XML, parameters)
    │   ├── InvalidTransition       409: the state machine has no such move
    │   └── VersionConflict         409: the row changed since the caller read it; carries the current state
    ├── ChannelError                a channel could not deliver
    │   ├── TemporaryChannelError   retry later (rate limit, 5xx, token trouble)
    │   │   └── OutcomeUnknown      the request went out, no answer came: the platform may have acted on it
    │   └── PermanentChannelError   retrying will not help (window closed, user gone); carries a reason
    └── CallbackRejected            a platform callback failed verification (signature, timestamp, format)
"""

from __future__ import annotations

from typing import Any


class GongdanError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(GongdanError):
    """A setting is missing or malformed."""


class DomainError(GongdanError):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class ValidationFailed(DomainError):
    status_code = 422
    code = "validation_failed"

    @classmethod
    def for_field(cls, field: str, message: str, *, code: str) -> ValidationFailed:
        """The error of one input field: ``details.fields`` names it, so a form shows ``message`` beside it."""
        return cls(message, code=code, details={"fields": [{"field": field, "message": message}]})


class BadRequest(DomainError):
    status_code = 400
    code = "bad_request"


class InvalidTransition(DomainError):
    status_code = 409
    code = "invalid_transition"


class VersionConflict(DomainError):
    status_code = 409
    code = "version_conflict"


class ChannelError(GongdanError):
    """A channel could not deliver a message."""


class TemporaryChannelError(ChannelError):
    """Delivery failed for a reason that may pass; the outbox retries with backoff."""


class OutcomeUnknown(TemporaryChannelError):
    """The request reached the platform but no answer came back (a read timeout): it may have been carried out.

    Retrying is safe only where the platform recognises a repeat (an idempotency key); elsewhere the outbox marks
    the row "unknown" and leaves the decision to staff.
    """


class PermanentChannelError(ChannelError):
    """Delivery can never succeed as asked (window closed, user unsubscribed, bad recipient)."""

    def __init__(self, reason: str, *, code: str = "undeliverable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class CallbackRejected(GongdanError):
    """A platform callback failed verification; answered with a 4xx and nothing stored."""

    def __init__(self, reason: str, *, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
