"""The webhook adapter: POSTs a delivery's event to its subscriber, signed the Standard Webhooks way.

The outbox claims the row, retries it with backoff on any failure and dead-letters it after OUTBOX_MAX_ATTEMPTS;
every attempt is also written to the delivery log, and a long run of failures switches the subscription off.
A repeat is harmless (the ``webhook-id`` header stays the same), so a send with an unknown outcome is retried.
"""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from standardwebhooks.webhooks import Webhook

from app import __version__
from app.channels.base import DeliveryResult
from app.errors import PermanentChannelError, TemporaryChannelError
from app.settings import get_settings
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage

#: connect and read limits of one POST (the outbox lease covers 30 s and is renewed while the send runs)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: one TLS context for every send: building it (loading the CA bundle) costs more than a local POST
_tls: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The shared client TLS context (certifi's CA bundle, as httpx uses by default)."""
    global _tls
    if _tls is None:
        _tls = httpx.create_ssl_context()
    return _tls


def signed_request(*, subscription: WebhookSubscription, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: webhook-id, webhook-timestamp and webhook-signature."""
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    # the receiver checks the timestamp against its own clock: sign with the wall clock, not the desk's test clock
    now = datetime.now(UTC)
    signature = Webhook(service.secret_of(subscription)).sign(delivery.msg_id, now, body)
    headers = {"content-type": "application/json", "user-agent": f"Gongdan-Webhooks/{__version__}",
               "webhook-id": delivery.msg_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature}
    return body, headers


class WebhookAdapter:
    """Delivers outbox rows of channel "webhook" (payload: {"delivery_id"})."""

    kind = service.CHANNEL
    resend_safe = True

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        """POST the delivery's event; 2xx is a delivery, anything else a temporary failure for the outbox."""
        delivery = await WebhookDelivery.get_or_none(id=int(message.payload.get("delivery_id") or 0))
        if delivery is None:
            raise PermanentChannelError("delivery log row is gone", code="no_delivery")
        sub = await WebhookSubscription.get_or_none(id=delivery.subscription_id)  # type: ignore[attr-defined]
        if sub is None or not sub.active:
            await WebhookDelivery.filter(id=delivery.id).update(status="skipped")
            raise PermanentChannelError("subscription is disabled or deleted", code="subscription_disabled")
        body, headers = signed_request(subscription=sub, delivery=delivery)
        final = message.attempts >= get_settings().outbox_max_attempts
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, verify=tls_context()) as client:
                response = await client.post(sub.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            await service.record_attempt(delivery=delivery, attempt=service.Attempt(False, None, error), final=final)
            raise TemporaryChannelError(error[:200]) from exc
        if 200 <= response.status_code < 300:
            await service.record_attempt(delivery=delivery, attempt=service.Attempt(True, response.status_code),
                                         final=True)
            return DeliveryResult(provider_msg_id=delivery.msg_id, detail={"status_code": response.status_code})
        error = f"HTTP {response.status_code}"
        await service.record_attempt(delivery=delivery, attempt=service.Attempt(False, response.status_code, error),
                                     final=final)
        raise TemporaryChannelError(error)
