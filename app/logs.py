"""Structured logging: JSON lines in production, readable lines in development; never a secret or a phone.

Every record passes `redact`, which drops values of secret-looking keys and masks phone numbers (full-width digits
too), ID-card numbers and e-mail addresses in every string, key and rendered object, URL-encoded ones included
(an access log line with ``?q=zhang%40example.com``), so a careless `log.info("x", body=...)` cannot leak them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import structlog

from app.security.crypto import mask_text

_SECRET_KEYS = ("secret", "token", "password", "aes_key", "encodingaeskey", "authorization", "cookie", "signature")


def _mask(text: str) -> str:
    """mask_text, also over the URL-decoded text: a query string carries zhang%40example.com or 138+1234+5678."""
    masked = mask_text(text)
    if "%" in text or "+" in text:
        decoded = unquote_plus(masked)
        if decoded != masked:
            again = mask_text(decoded)
            if again != decoded:
                return again
    return masked


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, bytes | bytearray):
        return _mask(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else k: ("[redacted]" if _is_secret(k) else _scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # any other object (a URL, an exception, a model) is rendered with str() later: mask that text now
    text = str(value)
    masked = _mask(text)
    return value if masked == text else masked


def _is_secret(key: object) -> bool:
    if isinstance(key, str):
        return _is_secret_key(key)
    lowered = str(key).lower()
    return any(word in lowered for word in _SECRET_KEYS)


@lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # log keys are a small fixed vocabulary: each is checked once per process
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_KEYS)


#: keys the processors before `redact` set themselves (TimeStamper, add_log_level, add_logger_name), whatever the
#: call passed: their values are ours, never a customer's
_OWN_KEYS = frozenset({"timestamp", "level", "logger"})


def redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-looking keys, mask phones, ID-card numbers and e-mails everywhere."""
    for key in list(event_dict):
        if key.startswith("_") or key in _OWN_KEYS:
            continue  # structlog's own (_record, _from_structlog): never rendered; or set by the processors above
        if _is_secret(key):
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(*, fmt: str = "console", level: str = "INFO") -> None:
    """Configure structlog and route the stdlib loggers (uvicorn, tortoise, arq) through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # a line below the level is dropped before the chain runs (redaction scans every value): without this an
        # info line at LOG_LEVEL=WARNING cost its whole chain and was thrown away by stdlib logging afterwards
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("tortoise", "aiosqlite", "asyncio", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> Any:
    """Return a structlog logger bound to a module name."""
    return structlog.get_logger(name)
