"""Processing stored callbacks: one job per InboundEvent, dispatched on the channel kind (Zulip's mapper shape).

The callback endpoint only verifies, stores and enqueues. This job may run twice, late, or concurrently with a
sweep-enqueued copy: it claims the row with a lease, and the processors it calls are idempotent (messages are
unique per provider id).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from tortoise.expressions import F, Q

from app.channels.models import ChannelAccount, InboundEvent
from app.logs import get_logger
from app.queue import enqueue
from app.timeutil import utcnow

log = get_logger(__name__)

Processor = Callable[[InboundEvent, ChannelAccount | None], Awaitable[str]]
#: channel kind -> processor returning the final status ("done" or "ignored")
PROCESSORS: dict[str, Processor] = {}
LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 8


_sender_locks: dict[str, asyncio.Lock] = {}


@asynccontextmanager
async def in_order(key: str) -> AsyncIterator[None]:
    """One sender's messages one at a time, in the order their jobs started, within this process (a customer's
    two quick messages must not overtake each other while the first waits on the platform)."""
    lock = _sender_locks.setdefault(key, asyncio.Lock())
    try:
        async with lock:
            yield
    finally:
        if not lock.locked() and _sender_locks.get(key) is lock:
            _sender_locks.pop(key, None)


def register_processor(kind: str, processor: Processor) -> None:
    """Route stored events of a channel kind to `processor`."""
    PROCESSORS[kind] = processor


async def process_inbound_event(ctx: dict[str, Any], event_id: int) -> str:
    """Turn one stored callback into messages, tickets and notifications."""
    now = utcnow()
    claimed = await InboundEvent.filter(
        Q(status="pending") | Q(status="processing", processed_at__lt=now - LEASE), id=event_id
    ).update(status="processing", attempts=F("attempts") + 1, processed_at=now)
    if not claimed:
        return "skipped"
    event = await InboundEvent.get(id=event_id).select_related("channel_account")
    account = event.channel_account
    kind = account.kind if account is not None else event.dedupe_key.split(":", 1)[0]
    processor = PROCESSORS.get(kind)
    if processor is None:
        await InboundEvent.filter(id=event_id).update(status="ignored", error=f"no processor for {kind}")
        return "ignored"
    try:
        result = await processor(event, account)
    except Exception as exc:
        failed = event.attempts >= MAX_ATTEMPTS
        await InboundEvent.filter(id=event_id).update(
            status="failed" if failed else "pending", error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        log.exception("inbound.failed", event_id=event_id, attempt=event.attempts)
        if not failed:
            await enqueue("process_inbound_event", event_id, job_id=f"inbound:{event_id}:{event.attempts}",
                          defer_by=min(300, 2 ** event.attempts))
        return "error"
    await InboundEvent.filter(id=event_id).update(status=result, processed_at=utcnow(), error=None)
    return result


async def sweep_inbound(ctx: dict[str, Any]) -> int:
    """Re-enqueue callbacks stored but never processed (a crash between insert and enqueue)."""
    cutoff = utcnow() - timedelta(seconds=30)
    rows = await InboundEvent.filter(
        Q(status="pending", received_at__lt=cutoff) | Q(status="processing", processed_at__lt=utcnow() - LEASE)
    ).order_by("id").limit(500).values_list("id", "attempts")
    for event_id, attempts in rows:
        await enqueue("process_inbound_event", event_id, job_id=f"inbound:{event_id}:{attempts}")
    return len(rows)

