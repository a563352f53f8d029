"""Writing outbox rows (always inside the caller's transaction) and claiming them for delivery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tortoise.expressions import F

from app.outbox.models import OutboxMessage
from app.queue import enqueue
from app.timeutil import utcnow
from app.uow import on_commit

LEASE = timedelta(seconds=120)


async def create(
    *,
    channel: str,
    kind: str,
    recipient: str,
    payload: dict[str, Any],
    channel_account_id: int | None = None,
    ticket_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Write one outbox row and enqueue its delivery after commit; a repeated dedupe_key returns the first row."""
    if dedupe_key is not None:
        existing = await OutboxMessage.get_or_none(dedupe_key=dedupe_key)
        if existing is not None:
            return existing
    row = await OutboxMessage.create(
        channel=channel,
        kind=kind,
        recipient=recipient,
        payload=payload,
        channel_account_id=channel_account_id,
        ticket_id=ticket_id,
        dedupe_key=dedupe_key,
        next_attempt_at=utcnow(),
    )
    row_id = row.id

    async def _enqueue() -> None:
        await enqueue("deliver_outbox", row_id, job_id=f"deliver:{row_id}:0")

    await on_commit(_enqueue)
    return row


async def claim(*, outbox_id: int) -> OutboxMessage | None:
    """Take a due pending row for delivery (one claimer wins), or None when it is not ours to send."""
    now = utcnow()
    claimed = await OutboxMessage.filter(id=outbox_id, status="pending", next_attempt_at__lte=now).update(
        status="sending", lease_until=now + LEASE, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return await OutboxMessage.get(id=outbox_id)


async def mark_sent(*, row: OutboxMessage, provider_msg_id: str | None, detail: dict[str, Any]) -> None:
    """Record a delivery."""
    payload = dict(row.payload)
    if detail:
        payload["_delivery"] = detail
    await OutboxMessage.filter(id=row.id, status="sending").update(
        status="sent", sent_at=utcnow(), provider_msg_id=provider_msg_id, lease_until=None, last_error=None,
        payload=payload,
    )


async def mark_failed(*, row: OutboxMessage, error: str, code: str = "") -> None:
    """Record a permanent failure (retrying would not help)."""
    await OutboxMessage.filter(id=row.id).update(
        status="failed", last_error=error, delivery_state=code or None, lease_until=None
    )


async def schedule_retry(*, row: OutboxMessage, error: str, delay: float, max_attempts: int) -> bool:
    """Put the row back for a later attempt; returns False when it is dead-lettered instead."""
    if row.attempts >= max_attempts:
        await OutboxMessage.filter(id=row.id).update(status="dead", last_error=error, lease_until=None)
        return False
    await OutboxMessage.filter(id=row.id, status="sending").update(
        status="pending", last_error=error, lease_until=None, next_attempt_at=utcnow() + timedelta(seconds=delay)
    )
    return True


async def list_due(*, limit: int = 500) -> list[tuple[int, int]]:
    """(id, attempts) of pending rows whose time has come (the sweep's view)."""
    rows = await OutboxMessage.filter(status="pending", next_attempt_at__lte=utcnow()).order_by("id").limit(
        limit
    ).values_list("id", "attempts")
    return [(int(r[0]), int(r[1])) for r in rows]


async def release_expired_leases() -> int:
    """Give back rows whose sender died mid-delivery; returns how many."""
    return await OutboxMessage.filter(status="sending", lease_until__lt=utcnow()).update(
        status="pending", lease_until=None
    )


async def record_delivery_report(*, provider_msg_id: str, state: str) -> int:
    """Store a platform's asynchronous delivery report (TEMPLATESENDJOBFINISH, msg_send_fail)."""
    return await OutboxMessage.filter(provider_msg_id=provider_msg_id).update(delivery_state=state[:64])
