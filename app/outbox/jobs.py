"""Delivery of outbox rows: idempotent, retried with backoff, dead-lettered after OUTBOX_MAX_ATTEMPTS.

A send that timed out after the request went out (``OutcomeUnknown``) may have reached the customer. An adapter whose
platform recognises a repeat (kf ``msgid``, WeCom's duplicate check) is retried as any temporary failure; one that
declares ``resend_safe = False`` (the Official Account's custom and template messages) is parked as "unknown" and
shown on the ticket, and goes out again only when staff ask (``service.resend``).
"""

from __future__ import annotations

from typing import Any

from app.channels.base import get_adapter
from app.errors import OutcomeUnknown, PermanentChannelError, TemporaryChannelError
from app.lease import renewed
from app.logs import get_logger
from app.outbox import service
from app.queue import backoff, enqueue
from app.security.tokens import detokenise_data
from app.settings import get_settings
from app.timeutil import utcnow

log = get_logger(__name__)


def resend_safe(adapter: object) -> bool:
    """Whether the adapter's platform recognises a repeated send (adapters say so with ``resend_safe``)."""
    return bool(getattr(adapter, "resend_safe", True))


async def deliver_outbox(ctx: dict[str, Any], outbox_id: int) -> str:
    """Send one outbox row through its channel's adapter, at most once per claim."""
    row = await service.claim(outbox_id=outbox_id)
    if row is None:
        return "skipped"
    adapter = get_adapter(row.channel)
    if adapter is None:
        await service.mark_failed(row=row, error=f"no adapter for channel {row.channel}", code="no_channel")
        return "failed"
    stored = row.payload
    # the customer and the adapter see personal data in clear (issue 11), the stored payload keeps its tokens
    row.payload = await detokenise_data(stored)
    try:
        async with renewed(lambda: service.renew(row=row), every=service.RENEW_EVERY, name=f"outbox:{row.id}"):
            result = await adapter.send(row)
    except PermanentChannelError as exc:
        log.warning("outbox.failed", outbox_id=row.id, channel=row.channel, code=exc.code, reason=exc.reason)
        await service.mark_failed(row=row, error=exc.reason, code=exc.code)
        return "failed"
    except OutcomeUnknown as exc:
        if resend_safe(adapter):
            return await _retry(row, exc)
        log.warning("outbox.unknown", outbox_id=row.id, channel=row.channel, attempt=row.attempts)
        await service.mark_unknown(row=row, error=f"{type(exc).__name__}: {exc}"[:1000])
        return "unknown"
    except Exception as exc:  # every other failure is worth another try
        return await _retry(row, exc)
    row.payload = stored
    await service.mark_sent(row=row, provider_msg_id=result.provider_msg_id, detail=result.detail)
    return "sent"


async def _retry(row: Any, exc: Exception) -> str:
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


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue due rows nobody is delivering (a crash between commit and enqueue, a worker killed mid-send)."""
    released = await service.release_expired_leases()
    due = await service.list_due()
    minute = int(utcnow().timestamp()) // 60
    for outbox_id, attempts, lost in due:
        # a row due a moment ago keeps its normal job id, so a job still queued is not queued twice; a lost one
        # gets a new id: its old job may be stuck "in progress" in arq with the dead worker (arq refuses that id
        # until its in-progress key expires, minutes later), and the claim keeps two jobs from sending twice
        job_id = f"deliver:{outbox_id}:{attempts}" + (f":lost:{minute}" if lost else "")
        await enqueue("deliver_outbox", outbox_id, job_id=job_id)
    if due or released:
        log.info("outbox.sweep", enqueued=len(due), released=released)
    return len(due)
