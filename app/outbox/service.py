"""Writing outbox rows (always inside the caller's transaction), claiming them for delivery, and the rows whose
outcome is unknown (sent, but the platform never answered) that wait for staff to resend them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from app.errors import InvalidTransition, NotFound
from app.outbox.models import OutboxMessage
from app.queue import enqueue
from app.rows import inserted
from app.security.scope import Actor
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from app.ttl import ExpiringMap
from app.uow import atomic, on_commit

#: a claimed row's lease: longer than one HTTP call (10 s connect + 10 s read) and renewed every RENEW_EVERY seconds
#: while the send runs, so only a dead sender loses it; the sweep (every SWEEP_EVERY s) then takes the row back
LEASE = timedelta(seconds=30)
RENEW_EVERY = 10.0
SWEEP_EVERY = 10
#: a due row nobody claimed for this long has lost its job (a worker died holding it): the sweep enqueues a new one
LOST_AFTER = timedelta(seconds=20)
#: what staff read on the ticket when a send's outcome is unknown
UNKNOWN_REASON = "平台超时未答复，消息可能已送达也可能没有送达。请先向客户确认，需要时再点“重新发送”。"


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
    row = await _insert(channel=channel, kind=kind, recipient=recipient, payload=payload,
                        channel_account_id=channel_account_id, ticket_id=ticket_id, dedupe_key=dedupe_key)
    if row is None:
        existing = await OutboxMessage.get_or_none(dedupe_key=dedupe_key)
        if existing is None:
            raise IntegrityError(f"outbox row {dedupe_key!r} refused and not stored")
        return existing
    return row


#: fold keys this process knows are stored (learnt after the commit that wrote or met the row; rows are never
#: deleted), with when to forget them: the next fold under a known key is one UPDATE instead of a refused INSERT,
#: the UPDATE and a read (a customer's every message in a burst folds into the card of its minute)
KNOWN_KEY_SECONDS = 300.0
_known_keys: ExpiringMap[str, bool] = ExpiringMap(KNOWN_KEY_SECONDS)


#: fold keys whose row was claimed for delivery, with when to forget them: a claim counts an attempt and only an
#: unclaimed row takes a fold, so every later fold under the key is "covered" and needs no statement to say so
_covered_keys: ExpiringMap[str, bool] = ExpiringMap(KNOWN_KEY_SECONDS)


def invalidate() -> None:
    """Forget the fold keys this process learnt (tests: each has its own database)."""
    _known_keys.clear()
    _covered_keys.clear()


async def _learn(dedupe_key: str) -> None:
    async def remember() -> None:
        _known_keys.put(dedupe_key, True)

    await on_commit(remember)


async def create_or_fold(*, channel: str, kind: str, recipient: str, payload: dict[str, Any],
                         folded: dict[str, Any], dedupe_key: str, ticket_id: int | None = None) -> str:
    """Write a row under `dedupe_key`, or make `folded` its payload while it waits: created, folded or covered."""
    # only while unclaimed: a claim re-reads the row after taking it, so the fold is either in what goes out or not
    # made at all (and the row that went out stands for this one)
    fold = OutboxMessage.filter(dedupe_key=dedupe_key, status="pending", attempts=0)
    if _covered_keys.get(dedupe_key):
        return "covered"
    if _known_keys.get(dedupe_key):
        if await fold.update(payload=folded):
            return "folded"
        _covered_keys.put(dedupe_key, True)
        return "covered"
    row = await _insert(channel=channel, kind=kind, recipient=recipient, payload=payload, channel_account_id=None,
                        ticket_id=ticket_id, dedupe_key=dedupe_key)
    if row is not None:
        outcome = "created"
    elif await fold.update(payload=folded):
        outcome = "folded"
    elif await OutboxMessage.filter(dedupe_key=dedupe_key).exists():
        outcome = "covered"
        _covered_keys.put(dedupe_key, True)
    else:
        raise IntegrityError(f"outbox row {dedupe_key!r} refused and not stored")
    await _learn(dedupe_key)
    return outcome


async def _insert(*, channel: str, kind: str, recipient: str, payload: dict[str, Any],
                  channel_account_id: int | None, ticket_id: int | None,
                  dedupe_key: str | None) -> OutboxMessage | None:
    """The row, its delivery enqueued after commit; None when its dedupe_key may be taken already."""
    try:
        # insert first: a repeated key is rare, so the unique index answers it instead of a read before every write
        row = await inserted(OutboxMessage, {
            "channel": channel, "kind": kind, "recipient": recipient, "payload": payload,
            "channel_account_id": channel_account_id, "ticket_id": ticket_id, "dedupe_key": dedupe_key,
            "next_attempt_at": utcnow()})
    except IntegrityError:
        if dedupe_key is None:
            raise
        return None
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


def _ours(row: OutboxMessage) -> dict[str, Any]:
    """The filter matching the row only while this claim holds it (a claim counts one attempt)."""
    return {"id": row.id, "status": "sending", "attempts": row.attempts}


async def renew(*, row: OutboxMessage) -> bool:
    """Extend this claim's lease; False when the row is no longer ours."""
    return bool(await OutboxMessage.filter(**_ours(row)).update(lease_until=utcnow() + LEASE))


async def mark_sent(*, row: OutboxMessage, provider_msg_id: str | None, detail: dict[str, Any]) -> None:
    """Record a delivery."""
    payload = dict(row.payload)
    if detail:
        payload["_delivery"] = detail
    await OutboxMessage.filter(**_ours(row)).update(
        status="sent", sent_at=utcnow(), provider_msg_id=provider_msg_id, lease_until=None, last_error=None,
        payload=payload,
    )


async def mark_failed(*, row: OutboxMessage, error: str, code: str = "") -> None:
    """Record a permanent failure (retrying would not help)."""
    await OutboxMessage.filter(**_ours(row)).update(
        status="failed", last_error=error, delivery_state=code or None, lease_until=None
    )


async def mark_unknown(*, row: OutboxMessage, error: str) -> bool:
    """Park a send whose outcome is unknown on a channel without an idempotency key, and say so on its ticket."""
    async with atomic():
        changed = await OutboxMessage.filter(**_ours(row)).update(status="unknown", last_error=error,
                                                                  lease_until=None)
        ticket_id = row.ticket_id  # type: ignore[attr-defined]
        if changed and ticket_id is not None:
            await TicketEvent.create(ticket_id=ticket_id, kind="delivery_unknown", actor_kind="system",
                                     reason=UNKNOWN_REASON, data={"outbox_id": row.id, "channel": row.channel})
    return bool(changed)


async def schedule_retry(*, row: OutboxMessage, error: str, delay: float, max_attempts: int) -> bool:
    """Put the row back for a later attempt; returns False when it is dead-lettered instead."""
    if row.attempts >= max_attempts:
        await OutboxMessage.filter(**_ours(row)).update(status="dead", last_error=error, lease_until=None)
        return False
    await OutboxMessage.filter(**_ours(row)).update(
        status="pending", last_error=error, lease_until=None, next_attempt_at=utcnow() + timedelta(seconds=delay)
    )
    return True


async def list_due(*, limit: int = 500) -> list[tuple[int, int, bool]]:
    """(id, attempts, lost) of pending rows whose time has come (the sweep's view); ``lost``: due for longer than
    LOST_AFTER, so its job died with a worker and a job under a new id is needed."""
    now = utcnow()
    rows = await OutboxMessage.filter(status="pending", next_attempt_at__lte=now).order_by("id").limit(
        limit
    ).values_list("id", "attempts", "next_attempt_at")
    return [(int(r[0]), int(r[1]), r[2] <= now - LOST_AFTER) for r in rows]


async def release_expired_leases() -> int:
    """Give back rows whose sender died mid-delivery; returns how many."""
    # read, then release by id: the ranged UPDATE the sweep ran every 10 s locked index gaps that live claims and
    # sends were writing, and MariaDB answered it with a deadlock while workers delivered (nearly always nothing
    # has run out, and the read takes no lock)
    now = utcnow()
    expired = await OutboxMessage.filter(status="sending", lease_until__lt=now).values_list("id", flat=True)
    if not expired:
        return 0
    return await OutboxMessage.filter(id__in=list(expired), status="sending", lease_until__lt=now).update(
        status="pending", lease_until=None
    )


async def record_delivery_report(*, provider_msg_id: str, state: str) -> int:
    """Store a platform's asynchronous delivery report (TEMPLATESENDJOBFINISH, msg_send_fail)."""
    return await OutboxMessage.filter(provider_msg_id=provider_msg_id).update(delivery_state=state[:64])


async def resend(*, actor: Actor, outbox_id: int) -> OutboxMessage:
    """Send a row whose outcome is unknown once more, at a person's request, and record who asked on its ticket."""
    row = await OutboxMessage.get_or_none(id=outbox_id)
    ticket_id = row.ticket_id if row is not None else None  # type: ignore[attr-defined]
    visible = row is not None and (
        await Ticket.filter(actor.ticket_filter(), id=ticket_id).exists() if ticket_id is not None
        else actor.is_admin)
    if row is None or not visible:
        raise NotFound("消息不存在或不在你的权限范围内")
    now = utcnow()
    async with atomic():
        changed = await OutboxMessage.filter(id=row.id, status="unknown").update(
            status="pending", next_attempt_at=now, lease_until=None)
        if not changed:
            raise InvalidTransition("这条消息的发送结果已经确定（或已重新发送），无需再发", code="not_unknown")
        if ticket_id is not None:
            await TicketEvent.create(ticket_id=ticket_id, kind="delivery_resent", actor_kind=actor.kind,
                                     actor_id=actor.staff_id, data={"outbox_id": row.id})
        row_id, attempts = row.id, row.attempts

        async def _enqueue() -> None:
            await enqueue("deliver_outbox", row_id, job_id=f"deliver:{row_id}:{attempts}:resend")

        await on_commit(_enqueue)
    # the row as this request left it: a read after the enqueue raced the delivery it started (an in-process job
    # could claim the row first, and the answer said 'sending')
    row.status, row.next_attempt_at, row.lease_until = "pending", now, None
    return row
