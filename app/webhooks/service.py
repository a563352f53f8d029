"""Webhook subscriptions and their deliveries: publish an event (one delivery and one outbox row per matching
subscription, in the caller's transaction), record each attempt, switch a subscription off after a long run of
failures (its owner gets a WeCom card), and replay a delivery from the log.

Signing follows Standard Webhooks (https://www.standardwebhooks.com/): ``webhook-id`` (the delivery's msg_id, the
same on every attempt and replay), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256
of ``id.timestamp.body``), computed by the ``standardwebhooks`` library.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from app.errors import InvalidTransition, NotFound, PermissionDenied
from app.logs import get_logger
from app.notifications import staff as staff_cards
from app.outbox import service as outbox
from app.security.crypto import decrypt_field, encrypt_field
from app.security.scope import Actor
from app.security.service import record_audit
from app.staff.models import Staff
from app.timeutil import utcnow
from app.uow import atomic
from app.webhooks.models import WebhookDelivery, WebhookSubscription

log = get_logger(__name__)

#: the events a subscription may ask for
EVENT_TYPES = ("ticket.created", "ticket.updated", "ticket.status_changed", "message.created", "sla.warning",
               "sla.breached", "csat.submitted", "approval.decided")
#: the outbox channel and kind of a webhook send
CHANNEL = "webhook"
KIND = "webhook_event"
#: a subscription failing this many attempts in a row, or for this long, is switched off
DISABLE_AFTER_FAILURES = 50
DISABLE_AFTER = timedelta(hours=24)
#: how long a process trusts its list of active subscriptions (changes made here apply at once)
CACHE_SECONDS = 10.0

_cache: tuple[float, dict[str, list[int]]] | None = None


def invalidate() -> None:
    """Forget the cached subscriptions (after a change, and between tests)."""
    global _cache
    _cache = None


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理事件推送订阅", code="admin_only")


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form ("whsec_" + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_of(subscription: WebhookSubscription) -> str:
    """The subscription's signing secret in clear (for signing, and shown once to its creator)."""
    return decrypt_field(subscription.secret_enc)


async def create(*, actor: Actor, url: str, events: list[str], description: str = "") -> tuple[WebhookSubscription,
                                                                                                  str]:
    """Subscribe a URL to events; returns the subscription and its secret (shown this once)."""
    _require_admin(actor)
    secret = new_secret()
    async with atomic():
        sub = await WebhookSubscription.create(owner_id=actor.staff_id, url=url, description=description,
                                               events=sorted(set(events)), secret_enc=encrypt_field(secret))
        await record_audit(actor=actor, action="webhook_create", object_type="webhook", object_id=str(sub.id),
                           reason=f"{_host(url)}：{', '.join(sub.events)}")
    invalidate()
    return sub, secret


def _host(url: str) -> str:
    """The URL's host, for audit reasons (a query string may carry a receiver's key)."""
    return urlsplit(url).netloc[:100]


async def get(*, actor: Actor, subscription_id: int) -> WebhookSubscription:
    """One subscription (admins only; 404 when there is none)."""
    _require_admin(actor)
    sub = await WebhookSubscription.get_or_none(id=subscription_id)
    if sub is None:
        raise NotFound("事件推送订阅不存在")
    return sub


async def list_subscriptions(*, actor: Actor) -> list[WebhookSubscription]:
    """Every subscription, oldest first (admins only)."""
    _require_admin(actor)
    return await WebhookSubscription.all().order_by("id")


async def delete(*, actor: Actor, subscription_id: int) -> None:
    """Remove a subscription and its delivery log."""
    sub = await get(actor=actor, subscription_id=subscription_id)
    async with atomic():
        await sub.delete()
        await record_audit(actor=actor, action="webhook_delete", object_type="webhook", object_id=str(sub.id),
                           reason=_host(sub.url))
    invalidate()


async def set_active(*, actor: Actor, subscription_id: int, active: bool) -> WebhookSubscription:
    """Switch a subscription on (its failure count starts again) or off."""
    sub = await get(actor=actor, subscription_id=subscription_id)
    if active:
        changes: dict[str, Any] = {"active": True, "disabled_reason": None, "disabled_at": None,
                                   "consecutive_failures": 0, "failing_since": None}
    else:
        changes = {"active": False, "disabled_reason": "管理员停用", "disabled_at": utcnow()}
    async with atomic():
        await WebhookSubscription.filter(id=sub.id).update(**changes)
        await record_audit(actor=actor, action="webhook_enable" if active else "webhook_disable",
                           object_type="webhook", object_id=str(sub.id), reason=_host(sub.url))
    invalidate()
    return await WebhookSubscription.get(id=sub.id)


async def _subscribers() -> dict[str, list[int]]:
    """Active subscription ids by event type (cached: most desks have none, and events fire on every message)."""
    global _cache
    now = time.monotonic()
    if _cache is not None and _cache[0] > now:
        return _cache[1]
    table: dict[str, list[int]] = {}
    for sub_id, events in await WebhookSubscription.filter(active=True).order_by("id").values_list("id", "events"):
        for event in events or []:
            table.setdefault(str(event), []).append(int(sub_id))
    _cache = (now + CACHE_SECONDS, table)
    return table


async def wants(event: str) -> bool:
    """Whether any active subscription receives ``event`` (cached; no query on a warm cache)."""
    return bool((await _subscribers()).get(event))


async def publish(*, event: str, data: dict[str, Any], ticket_id: int | None = None) -> list[WebhookDelivery]:
    """Write one delivery and one outbox row per active subscription to ``event`` (call inside the transaction of
    the change, so the event goes out only if the change commits)."""
    sub_ids = (await _subscribers()).get(event)
    if not sub_ids:
        return []
    body = {"type": event, "timestamp": utcnow().isoformat(), "data": data}
    out = []
    for sub_id in sub_ids:
        delivery = await WebhookDelivery.create(subscription_id=sub_id, event_type=event,
                                                msg_id=f"msg_{uuid.uuid4().hex}", payload=body, ticket_id=ticket_id)
        await _queue(delivery, dedupe_key=f"webhook:{delivery.id}")
        out.append(delivery)
    return out


async def _queue(delivery: WebhookDelivery, *, dedupe_key: str) -> None:
    row = await outbox.create(channel=CHANNEL, kind=KIND,
                              recipient=str(delivery.subscription_id),  # type: ignore[attr-defined]
                              payload={"delivery_id": delivery.id}, ticket_id=delivery.ticket_id,
                              dedupe_key=dedupe_key)
    await WebhookDelivery.filter(id=delivery.id).update(outbox_id=row.id)
    delivery.outbox_id = row.id


async def list_deliveries(*, actor: Actor, subscription_id: int, before_id: int | None = None,
                          limit: int = 50) -> list[WebhookDelivery]:
    """A subscription's delivery log, newest first (pass the last id seen as ``before_id`` for the next page)."""
    sub = await get(actor=actor, subscription_id=subscription_id)
    query = WebhookDelivery.filter(subscription_id=sub.id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(max(1, min(limit, 200)))


async def replay(*, actor: Actor, subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a logged delivery again (same webhook-id, newly signed); 409 while it is still being delivered or the
    subscription is off."""
    sub = await get(actor=actor, subscription_id=subscription_id)
    delivery = await WebhookDelivery.get_or_none(id=delivery_id, subscription_id=sub.id)
    if delivery is None:
        raise NotFound("投递记录不存在")
    if not sub.active:
        raise InvalidTransition("订阅已停用，请先启用再重发", code="subscription_disabled")
    async with atomic():
        changed = await WebhookDelivery.filter(id=delivery.id, status__in=("sent", "failed", "skipped")).update(
            status="pending")
        if not changed:
            raise InvalidTransition("这条投递仍在进行中，无需重发", code="delivery_in_progress")
        replays = await WebhookDelivery.filter(id=delivery.id).values_list("attempts", flat=True)
        await _queue(delivery, dedupe_key=f"webhook:{delivery.id}:replay:{replays[0]}:{uuid.uuid4().hex[:8]}")
        await record_audit(actor=actor, action="webhook_replay", object_type="webhook", object_id=str(sub.id),
                           reason=f"重发投递 #{delivery.id}（{delivery.event_type}）")
    return await WebhookDelivery.get(id=delivery.id)


@dataclass
class Attempt:
    """What one POST to a subscriber gave."""

    ok: bool
    status_code: int | None
    error: str = ""


async def record_attempt(*, delivery: WebhookDelivery, attempt: Attempt, final: bool) -> None:
    """Store an attempt on the delivery and its subscription; a long run of failures switches the subscription
    off and tells its owner. ``final``: the outbox will not try this delivery again."""
    now = utcnow()
    sub_id = delivery.subscription_id  # type: ignore[attr-defined]
    status = "sent" if attempt.ok else ("failed" if final else "retrying")
    async with atomic():
        await WebhookDelivery.filter(id=delivery.id).update(
            status=status, attempts=delivery.attempts + 1, last_status_code=attempt.status_code,
            last_error=attempt.error[:500] or None, delivered_at=now if attempt.ok else None)
        if attempt.ok:
            await WebhookSubscription.filter(id=sub_id).update(consecutive_failures=0, failing_since=None)
            return
        sub = await WebhookSubscription.get_or_none(id=sub_id)
        if sub is None or not sub.active:
            return
        failures = sub.consecutive_failures + 1
        since = sub.failing_since or now
        await WebhookSubscription.filter(id=sub_id).update(consecutive_failures=failures, failing_since=since)
        if failures >= DISABLE_AFTER_FAILURES or now - since >= DISABLE_AFTER:
            await _disable_for_failures(sub, failures=failures)


async def _disable_for_failures(sub: WebhookSubscription, *, failures: int) -> None:
    reason = f"连续 {failures} 次投递失败，已自动停用"
    changed = await WebhookSubscription.filter(id=sub.id, active=True).update(
        active=False, disabled_reason=reason, disabled_at=utcnow())
    invalidate()
    if not changed:
        return
    log.warning("webhook.disabled", subscription_id=sub.id, failures=failures)
    owner = await Staff.get_or_none(id=sub.owner_id, status="active") if sub.owner_id else None  # type: ignore[attr-defined]
    told = [owner] if owner is not None else await Staff.filter(role="admin", status="active").order_by("id")
    for staff in told:
        await staff_cards.webhook_disabled(staff=staff, subscription_id=sub.id, url=sub.url, reason=reason)


def serialize(sub: WebhookSubscription) -> dict[str, Any]:
    """A subscription as the API shows it (never its secret)."""
    return {"id": sub.id, "url": sub.url, "description": sub.description, "events": list(sub.events or []),
            "active": sub.active, "disabled_reason": sub.disabled_reason,
            "disabled_at": sub.disabled_at.isoformat() if sub.disabled_at else None,
            "consecutive_failures": sub.consecutive_failures,
            "owner_id": sub.owner_id,  # type: ignore[attr-defined]
            "created_at": sub.created_at.isoformat() if sub.created_at else None}


def serialize_delivery(d: WebhookDelivery) -> dict[str, Any]:
    """A delivery log row as the API shows it (the body is the masked event sent)."""
    return {"id": d.id, "subscription_id": d.subscription_id,  # type: ignore[attr-defined]
            "event_type": d.event_type, "msg_id": d.msg_id, "status": d.status, "attempts": d.attempts,
            "last_status_code": d.last_status_code, "last_error": d.last_error, "ticket_id": d.ticket_id,
            "payload": d.payload, "created_at": d.created_at.isoformat() if d.created_at else None,
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None}
