"""Processing stored callbacks: one job per InboundEvent, dispatched on the channel kind (Zulip's mapper shape).

The callback endpoint only verifies, stores and enqueues. This job may run twice, late, or concurrently with a
sweep-enqueued copy: it claims the row with a lease, and the processors it calls are idempotent (messages are
unique per provider id).

Crash recovery: the lease is short (LEASE) and renewed every RENEW_EVERY seconds while the processor runs, so a
live worker keeps its row however slow the platform is, and a killed worker's row is free LEASE after its last
renewal; the sweep (every SWEEP_EVERY s) then enqueues it under a new job id. A stored event no job has claimed
within LOST_AFTER is enqueued the same way. Worst case from the kill to the takeover: LEASE + SWEEP_EVERY.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from app.channels import inbox
from app.channels.models import ChannelAccount, InboundEvent
from app.db import dialect_sql
from app.lease import renewed
from app.logs import get_logger
from app.timeutil import utcnow

log = get_logger(__name__)

Processor = Callable[[InboundEvent, ChannelAccount | None], Awaitable[str]]
#: channel kind -> processor returning the final status ("done" or "ignored")
PROCESSORS: dict[str, Processor] = {}
#: a claim's lease (the claim time in processed_at, renewed while processing); see the module docstring
LEASE = timedelta(seconds=30)
RENEW_EVERY = 10.0
#: the sweep's period (the cron registered in app.setup)
SWEEP_EVERY = 10
#: a stored event that no job has claimed for this long (or whose retry is this late) has lost its job
LOST_AFTER = timedelta(seconds=20)
MAX_ATTEMPTS = 8


#: the claim and the final status, the two writes every event costs, as SQL written once (`app.db.dialect_sql`):
#: tortoise's query building cost more CPU than the round trip (the few other writes here are rare and stay in the ORM)
_CLAIM = ("UPDATE {q}inbound_event{q} SET {q}status{q}='processing',{q}attempts{q}={q}attempts{q}+1,"
          "{q}processed_at{q}={m} WHERE ({q}status{q}='pending' OR ({q}status{q}='processing' AND "
          "{q}processed_at{q}<{m})) AND {q}id{q}={m}")
_FINISH = ("UPDATE {q}inbound_event{q} SET {q}status{q}={m},{q}processed_at{q}={m},{q}error{q}=NULL "
           "WHERE {q}id{q}={m} AND {q}status{q}='processing' AND {q}attempts{q}={m}")


async def _write(template: str, *values: Any) -> int:
    """Run one of the templates above with its parameters (datetimes as the column stores them): rows changed."""
    conn: Any = InboundEvent._meta.db
    sql = dialect_sql(template, conn.capabilities.dialect)
    column = InboundEvent._meta.fields_map["processed_at"]
    params = [column.to_db_value(v, InboundEvent) if isinstance(v, datetime) else v for v in values]
    changed, _ = await conn.execute_query(sql, params)
    return int(changed)


def retry_delay(attempts: int) -> int:
    """Seconds before another try after a failed attempt."""
    return int(min(300, 2**attempts))


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


async def process_inbound_event(ctx: dict[str, Any], event_id: int, sender_key: str | None = None) -> str:
    """Turn one stored callback into messages, tickets and notifications; with a sender key, under the sender's
    lease, followed by that sender's events that arrived meanwhile, in order (``app.channels.inbox``)."""
    if sender_key is None:
        return await _process_one(event_id)
    leases = inbox.leases_for(ctx)
    token = inbox.new_token()
    if not await leases.acquire(sender_key, token, event_id):
        return "queued"  # the holder takes it from the waiting list before it lets go
    result = "error"
    try:
        result = await _process_one(event_id, sender_key)
        while waiting := await leases.release(sender_key, token):
            for one in sorted(set(waiting)):
                await _process_one(one, sender_key)
    except BaseException:
        # the waiting list stays for the next holder; the events are pending in the database for the sweep too
        await leases.abandon(sender_key, token)
        raise
    return result


async def _process_one(event_id: int, sender_key: str | None = None) -> str:
    """Claim one stored event and run its channel's processor."""
    now = utcnow()
    # status pending, or processing with its lease run out: then processing, one more attempt, claimed now
    claimed = await _write(_CLAIM, now, now - LEASE, event_id)
    if not claimed:
        return "skipped"
    event = await InboundEvent.get(id=event_id).select_related("channel_account")
    account = event.channel_account
    kind = account.kind if account is not None else event.dedupe_key.split(":", 1)[0]
    processor = PROCESSORS.get(kind)
    if processor is None:
        await InboundEvent.filter(id=event_id).update(status="ignored", error=f"no processor for {kind}")
        return "ignored"
    ours = {"id": event_id, "status": "processing", "attempts": event.attempts}

    async def renew() -> None:
        await InboundEvent.filter(**ours).update(processed_at=utcnow())

    try:
        async with renewed(renew, every=RENEW_EVERY, name=f"inbound:{event_id}"):
            result = await processor(event, account)
    except Exception as exc:
        failed = event.attempts >= MAX_ATTEMPTS
        # processed_at = when it failed, so the sweep knows when the retry below is due
        await InboundEvent.filter(**ours).update(
            status="failed" if failed else "pending", error=f"{type(exc).__name__}: {exc}"[:2000],
            processed_at=utcnow())
        log.exception("inbound.failed", event_id=event_id, attempt=event.attempts)
        if not failed:
            await inbox.enqueue_event(event_id, sender_key, job_id=f"inbound:{event_id}:{event.attempts}",
                                      defer_by=retry_delay(event.attempts))
        return "error"
    await _write(_FINISH, result, utcnow(), event_id, event.attempts)  # only while the claim is still ours
    return result


async def sweep_inbound(ctx: dict[str, Any]) -> int:
    """Re-enqueue callbacks whose job was lost: stored but never claimed (a crash between insert and enqueue, a
    worker killed holding the job), claimed by a worker that died (lease run out), or a retry that never ran."""
    now = utcnow()
    rows = await InboundEvent.filter(
        Q(status="pending", received_at__lt=now - LOST_AFTER) | Q(status="processing", processed_at__lt=now - LEASE)
    ).order_by("id").limit(500).values_list("id", "attempts", "status", "processed_at")
    # a new job id: the lost job may sit "in progress" in arq with the dead worker, which refuses its id until
    # the in-progress key expires (minutes); the claim keeps two jobs from processing one event at once
    minute = int(now.timestamp()) // 60
    enqueued = 0
    for event_id, attempts, status, processed_at in rows:
        if status == "pending" and attempts and processed_at is not None and (
                processed_at + timedelta(seconds=retry_delay(attempts)) + LOST_AFTER > now):
            continue  # a failed attempt's retry is scheduled and not late yet
        # without the sender key: the lease lives in Redis for a live holder only, and a lost event is rare
        await inbox.enqueue_event(event_id, None, job_id=f"inbound:{event_id}:{attempts}:lost:{minute}")
        enqueued += 1
    if enqueued:
        log.info("inbound.sweep", enqueued=enqueued)
    return enqueued

