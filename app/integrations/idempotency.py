"""``Idempotency-Key`` for POST /tickets and /events: the same key with the same body gets the first answer again
(nothing is created twice); the same key with another body is refused (422); a repeat that arrives while the first
is still being handled gets 409. Keys are kept per caller and endpoint for KEEP (24 h, as Stripe does).

Only successful answers are kept: a refused request changed nothing, so sending it again is harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from tortoise.exceptions import IntegrityError

from app.errors import BadRequest, InvalidTransition, ValidationFailed
from app.http import FastJSONResponse
from app.integrations.models import IdempotencyRecord
from app.security.scope import Actor
from app.timeutil import utcnow

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
KEEP = timedelta(hours=24)
#: a first request still "in progress" after this long died with its process: a repeat may take it over
STALE = timedelta(minutes=2)


def body_hash(raw: bytes) -> str:
    """SHA-256 of the body's canonical JSON (key order and spacing do not make a body different)."""
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True, ensure_ascii=False,
                               separators=(",", ":")).encode()
    except (json.JSONDecodeError, UnicodeDecodeError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def _key_hash(actor: Actor, endpoint: str, key: str) -> str:
    return hashlib.sha256(f"{actor.staff_id or 0}\n{endpoint}\n{key}".encode()).hexdigest()


async def run(request: Request, actor: Actor, *, endpoint: str,
              handler: Callable[[], Awaitable[Response]]) -> Response:
    """Answer the request through ``handler`` at most once per Idempotency-Key (no header: just run it)."""
    key = request.headers.get(HEADER)
    if key is None:
        return await handler()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(f"Idempotency-Key 必须是 1 到 {MAX_KEY_LENGTH} 个可打印字符", code="invalid_idempotency_key")
    digest = _key_hash(actor, endpoint, key)
    wanted = body_hash(await request.body())
    record = await _claim(digest, actor=actor, endpoint=endpoint, wanted=wanted)
    if record is not None:
        return _replay(record, wanted=wanted)
    try:
        response = await handler()
    except BaseException:
        await IdempotencyRecord.filter(key_hash=digest, status_code=0).delete()
        raise
    if 200 <= response.status_code < 300:
        body: Any = orjson.loads(bytes(response.body)) if response.body else None
        await IdempotencyRecord.filter(key_hash=digest).update(status_code=response.status_code,
                                                               response={"body": body})
    else:
        await IdempotencyRecord.filter(key_hash=digest, status_code=0).delete()
    return response


async def _claim(digest: str, *, actor: Actor, endpoint: str, wanted: str) -> IdempotencyRecord | None:
    """Insert the key as "in progress" (None: ours to handle), or return the record that holds it."""
    for _ in range(2):
        try:
            await IdempotencyRecord.create(key_hash=digest, staff_id=actor.staff_id, endpoint=endpoint,
                                           body_hash=wanted, created_at=utcnow())
            return None
        except IntegrityError:
            record = await IdempotencyRecord.get_or_none(key_hash=digest)
            if record is None:
                continue
            age = utcnow() - record.created_at
            if age > KEEP or (record.status_code == 0 and age > STALE):
                # expired, or its first request died: the key is free again
                await IdempotencyRecord.filter(id=record.id, status_code=record.status_code).delete()
                continue
            return record
    raise InvalidTransition("同一 Idempotency-Key 的请求正在处理中，请稍后重试", code="idempotency_in_progress")


def _replay(record: IdempotencyRecord, *, wanted: str) -> Response:
    if record.body_hash != wanted:
        raise ValidationFailed("该 Idempotency-Key 已用于内容不同的请求", code="idempotency_key_reused")
    if record.status_code == 0:
        raise InvalidTransition("同一 Idempotency-Key 的请求正在处理中，请稍后重试", code="idempotency_in_progress")
    response = FastJSONResponse((record.response or {}).get("body"), status_code=record.status_code)
    response.headers["idempotent-replayed"] = "true"
    return response


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Delete keys older than KEEP (a daily cron)."""
    return await IdempotencyRecord.filter(created_at__lt=utcnow() - KEEP).delete()
