"""Whether the last callback verified: per callback URL, the newest outcome, when, and the rejections of the last 24 h.

Refused callbacks (bad signature, replay, decrypt failure ...) are never stored as ``InboundEvent``s, so without this
the console could only show the newest callback that passed. The outcome is read from what the callback endpoint
answered (``observe`` wraps the route functions in ``app.channels.endpoints``): 200 is verified, a 4xx/5xx answer's
body is the rejection reason (``app.errors.CallbackRejected.reason``). A 404 (unknown account, URL not configured) is
not recorded, so made-up account keys cannot grow the in-memory state. The endpoints themselves stay one INSERT and
one enqueue.

The callback path must stay cheap and a flood of forged callbacks must not become a flood of writes, so:

* each process keeps the outcome in memory (``note``: a few attribute writes, no I/O);
* the database is written only when the outcome differs from what this process last wrote, or ``REFRESH_SECONDS``
  have passed (the time shown and the 24 h count are that fresh); a steady flood of forged callbacks costs one
  write a minute per URL and process, and flips between good and forged callbacks are bounded by the real traffic;
* the write runs after the answer has been sent (the response's own tail, no stray task), by at most one writer per
  URL and process; a failed write is logged, swallowed and not retried for ``REFRESH_SECONDS``.

Rejections are counted per hour in ``CallbackRejectionCount`` (each process adds its own count), so "the last 24 h"
is the current hour and the 23 before it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from app.channels.models import CallbackHealth, CallbackRejectionCount
from app.channels.wechat_mp.accounts import DEFAULT_KEY
from app.logs import get_logger
from app.timeutil import utcnow

__all__ = ["REASON_LABELS", "VERIFIED", "WECOM_CONTACTS", "CallbackStatus", "list_status", "note", "observe",
           "observe_routes", "reset", "scope_of_account"]

log = get_logger(__name__)

VERIFIED = "verified"
#: the WeCom contacts-sync callback (/callbacks/wecom/contacts): no channel account's, shown with the sync runs
WECOM_CONTACTS = "wecom_contacts"
#: how stale the stored time and 24 h count may get under steady traffic (seconds)
REFRESH_SECONDS = 60.0
#: a writer that never finished (the client went away before the answer's tail ran) is given up after this long
STUCK_SECONDS = 30.0
#: hourly counts older than this are deleted when the count is written
KEEP_HOURS = 48

#: the rejection reasons of ``app.wecom.callback`` / ``app.wecom.replay`` / the endpoints, as admins read them
REASON_LABELS = {
    "bad_signature": "签名错误",
    "bad_timestamp": "时间戳无效",
    "stale_timestamp": "时间戳已过期",
    "replayed": "重复提交的请求（疑似重放）",
    "decrypt_failed": "解密失败",
    "bad_base64": "密文格式错误",
    "wrong_receiver": "接收方不符（AppID/CorpID 不匹配）",
    "encryption_required": "未加密（安全模式要求加密）",
    "missing_encrypt": "缺少密文",
    "missing_parameter": "缺少参数",
    "unsupported_encrypt_type": "不支持的加密方式",
    "malformed_body": "报文格式错误",
    "forbidden_xml": "报文含不允许的 XML 内容",
    "too_deep": "报文嵌套过深",
    "field_too_long": "字段过长",
    "body_too_large": "报文过大",
    "replay_store_unavailable": "防重放存储不可用（本系统故障）",
    "rejected": "校验未通过",
}
_REASON = re.compile(r"[a-z_]{1,32}")


@dataclass
class _State:
    outcome: str
    seen_at: datetime
    verified_at: datetime | None = None
    rejected_at: datetime | None = None
    rejected_reason: str = ""
    pending: Counter[datetime] = field(default_factory=Counter)
    written_outcome: str | None = None
    written_mono: float = float("-inf")
    writing_since: float | None = None
    quiet_until: float = float("-inf")


_states: dict[str, _State] = {}
#: the throttle's clock (monotonic; tests move it)
_mono: Callable[[], float] = time.monotonic


def reset() -> None:
    """Forget every in-memory outcome (tests)."""
    _states.clear()


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _due(state: _State, mono: float) -> bool:
    return state.outcome != state.written_outcome or mono - state.written_mono >= REFRESH_SECONDS


def note(scope: str, outcome: str) -> Callable[[], Awaitable[None]] | None:
    """Remember one callback's outcome in memory; the write to run after the answer when one is due, else None."""
    now, mono = utcnow(), _mono()
    state = _states.get(scope)
    if state is None:
        state = _states[scope] = _State(outcome=outcome, seen_at=now)
    state.outcome, state.seen_at = outcome, now
    if outcome == VERIFIED:
        state.verified_at = now
    else:
        state.rejected_at, state.rejected_reason = now, outcome
        state.pending[_hour(now)] += 1
    if state.writing_since is not None and mono - state.writing_since < STUCK_SECONDS:
        return None  # the running writer takes this outcome along before it lets go
    if mono < state.quiet_until or not _due(state, mono):
        return None
    state.writing_since = mono
    return partial(_write, scope, state)


async def _write(scope: str, state: _State) -> None:
    try:
        while True:
            outcome, pending = state.outcome, dict(state.pending)
            state.pending.clear()
            try:
                await _store(scope, state, outcome, pending)
            except Exception as exc:  # never let the desk fail over a status line
                for hour, count in pending.items():
                    state.pending[hour] += count
                state.quiet_until = _mono() + REFRESH_SECONDS
                log.warning("callback_health.write_failed", scope=scope, error=type(exc).__name__)
                return
            state.written_outcome, state.written_mono = outcome, _mono()
            if not _due(state, state.written_mono):
                return
    finally:
        state.writing_since = None


async def _store(scope: str, state: _State, outcome: str, pending: dict[datetime, int]) -> None:
    values: dict[str, Any] = {"outcome": outcome, "seen_at": state.seen_at, "rejected_reason": state.rejected_reason}
    if state.verified_at is not None:
        values["verified_at"] = state.verified_at
    if state.rejected_at is not None:
        values["rejected_at"] = state.rejected_at
    # another process may have written a newer outcome: the newest sighting wins
    if not await CallbackHealth.filter(scope=scope, seen_at__lte=state.seen_at).update(**values):
        if not await CallbackHealth.filter(scope=scope).exists():
            try:
                await CallbackHealth.create(scope=scope, **values)
            except IntegrityError:
                pass  # another process created it a moment ago with an outcome at least as new
    for hour, count in pending.items():
        if await CallbackRejectionCount.filter(scope=scope, hour=hour).update(count=F("count") + count):
            continue
        try:
            await CallbackRejectionCount.create(scope=scope, hour=hour, count=count)
        except IntegrityError:
            await CallbackRejectionCount.filter(scope=scope, hour=hour).update(count=F("count") + count)
    if pending:
        await CallbackRejectionCount.filter(scope=scope, hour__lt=utcnow() - timedelta(hours=KEEP_HOURS)).delete()


def _outcome(response: Response) -> str | None:
    if response.status_code == 404 or response.status_code < 200:
        return None
    if response.status_code < 300:
        return VERIFIED
    body = bytes(response.body[:33]).decode("ascii", "replace").strip()
    return body if _REASON.fullmatch(body) else "rejected"


class _AnswerThen(Response):
    """The endpoint's answer, sent first; then the health write (the platform already has its acknowledgement)."""

    def __init__(self, answer: Response, then: Callable[[], Awaitable[None]]) -> None:
        # deliberately no Response.__init__: this object only forwards to the real answer
        self.answer, self.then = answer, then
        self.status_code = answer.status_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, receive, send)
        await self.then()


Endpoint = Callable[[Request], Awaitable[Response]]


def observe(endpoint: Endpoint, scope_of: Callable[[Request], str]) -> Endpoint:
    """``endpoint`` with its answers noted under ``scope_of(request)``; the answer itself is unchanged."""

    async def observed(request: Request) -> Response:
        answer = await endpoint(request)
        try:
            outcome = _outcome(answer)
            write = note(scope_of(request), outcome) if outcome is not None else None
        except Exception as exc:
            log.warning("callback_health.note_failed", error=type(exc).__name__)
            return answer
        return answer if write is None else _AnswerThen(answer, write)

    observed.__name__ = getattr(endpoint, "__name__", "observed")
    observed.__doc__ = endpoint.__doc__
    return observed


def _scope_of_path(path: str) -> Callable[[Request], str] | None:
    if path.startswith("/callbacks/wechat"):
        return lambda request: f"wechat_mp:{request.path_params.get('account', DEFAULT_KEY)}"
    if path.startswith("/callbacks/wecom/"):
        kind = "wecom_" + path.rsplit("/", 1)[-1]
        return lambda request: kind
    return None


def observe_routes(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """The callback routes with their answers noted (per Official Account; per WeCom URL); other routes as they are."""
    out: list[BaseRoute] = []
    for route in routes:
        scope_of = _scope_of_path(route.path) if isinstance(route, Route) else None
        if scope_of is None or not isinstance(route, Route) or not callable(route.endpoint):
            out.append(route)
            continue
        out.append(Route(route.path, observe(route.endpoint, scope_of), methods=route.methods, name=route.name))
    return out


def scope_of_account(*, kind: str, key: str) -> str | None:
    """The callback URL a channel account's callbacks arrive at (微信客服 events come through the WeCom app's URL)."""
    if kind == "wechat_mp":
        return f"wechat_mp:{key}"
    if kind in ("wecom_app", "wecom_kf"):
        return "wecom_app"
    return None


@dataclass(frozen=True)
class CallbackStatus:
    """What the console shows for one callback URL."""

    scope: str
    verified: bool
    reason: str
    reason_label: str
    seen_at: datetime
    verified_at: datetime | None
    rejected_at: datetime | None
    rejections_24h: int


async def list_status(*, scopes: Iterable[str]) -> dict[str, CallbackStatus]:
    """The stored outcome and 24 h rejection count of each of ``scopes`` that has seen a callback."""
    wanted = sorted(set(scopes))
    if not wanted:
        return {}
    since = _hour(utcnow()) - timedelta(hours=23)
    counts: Counter[str] = Counter()
    for row in await CallbackRejectionCount.filter(scope__in=wanted, hour__gte=since):
        counts[row.scope] += row.count
    out = {}
    for h in await CallbackHealth.filter(scope__in=wanted):
        verified = h.outcome == VERIFIED
        out[h.scope] = CallbackStatus(
            scope=h.scope, verified=verified, reason="" if verified else h.outcome,
            reason_label="" if verified else REASON_LABELS.get(h.outcome, REASON_LABELS["rejected"]),
            seen_at=h.seen_at, verified_at=h.verified_at, rejected_at=h.rejected_at,
            rejections_24h=counts[h.scope])
    return out
