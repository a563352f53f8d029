"""Delivery of outbox rows: idempotent, retried with backoff, dead-lettered after OUTBOX_MAX_ATTEMPTS."""

from __future__ import annotations

from typing import Any

from app.channels.base import get_adapter
from app.errors import PermanentChannelError, TemporaryChannelError
from app.logs import get_logger
from app.outbox import service
from app.queue import backoff, enqueue
from app.settings import get_settings

log = get_logger(__name__)


async def deliver_outbox(ctx: dict[str, Any], outbox_id: int) -> str:
    """Send one outbox row through its channel's adapter, at most once per claim."""
    row = await service.claim(outbox_id=outbox_id)
    if row is None:
        return "skipped"
    adapter = get_adapter(row.channel)
    if adapter is None:
        await service.mark_failed(row=row, error=f"no adapter for channel {row.channel}", code="no_channel")
        return "failed"
    try:
        result = await adapter.send(row)
    except PermanentChannelError as exc:
        log.warning("outbox.failed", outbox_id=row.id, channel=row.channel, code=exc.code, reason=exc.reason)
        await service.mark_failed(row=row, error=exc.reason, code=exc.code)
        return "failed"
    except Exception as exc:  # every other failure is worth another try
        delay = getattr(exc, "retry_after", None) or backoff(row.attempts)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        temporary = isinstance(exc, TemporaryChannelError)
        log.warning("outbox.retry", outbox_id=row.id, attempt=row.attempts, error=error, temporary=temporary)
        alive = await service.schedule_retry(
            row=row, error=error, delay=delay, max_attempts=get_settings().outbox_max_attempts
        )
        if alive:
            await enqueue("deliver_outbox", row.id, job_id=f"deliver:{row.id}:{row.attempts}", defer_by=delay)
            return "retry"
        log.error("outbox.dead", outbox_id=row.id, attempts=row.attempts, error=error)
        return "dead"
    await service.mark_sent(row=row, provider_msg_id=result.provider_msg_id, detail=result.detail)
    return "sent"


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue due rows nobody is delivering (a crash between commit and enqueue, a lost job)."""
    released = await service.release_expired_leases()
    ids = await service.list_due()
    for outbox_id, attempts in ids:
        # the same job id as the normal path for this attempt, so a job still queued is not queued twice
        await enqueue("deliver_outbox", outbox_id, job_id=f"deliver:{outbox_id}:{attempts}")
    if ids or released:
        log.info("outbox.sweep", enqueued=len(ids), released=released)
    return len(ids)
