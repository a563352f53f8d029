"""Webhook subscriptions (who wants which events at which URL) and the delivery log (one row per event and
subscription, kept for replay)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.security.fields import encrypted_json_field

if TYPE_CHECKING:
    from app.staff.models import Staff


class WebhookSubscription(Model):
    id = fields.IntField(primary_key=True)
    #: who created it: told by a WeCom card when it is disabled after a run of failures
    owner: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="webhook_subscriptions", null=True, on_delete=fields.SET_NULL
    )
    url = fields.CharField(max_length=500)
    description = fields.CharField(max_length=200, default="")
    #: the event types it receives (ticket.created, message.created, ...)
    events: list[str] = fields.JSONField(default=list)
    #: the Standard Webhooks signing secret ("whsec_" + base64), Fernet-encrypted
    secret_enc = fields.TextField()
    active = fields.BooleanField(default=True)
    #: why it was switched off (failures, by whom), null while active
    disabled_reason = fields.CharField(max_length=200, null=True)
    disabled_at = fields.DatetimeField(null=True)
    #: failed attempts in a row (any success resets it) and when that run began
    consecutive_failures = fields.IntField(default=0)
    failing_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_subscription"


class WebhookDelivery(Model):
    """One event sent to one subscription: the signed message, its attempts and its outcome."""

    id = fields.BigIntField(primary_key=True)
    subscription: fields.ForeignKeyRelation[WebhookSubscription] = fields.ForeignKeyField(
        "gongdan.WebhookSubscription", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_type = fields.CharField(max_length=64)
    #: the webhook-id header: the same on every attempt and replay, so receivers can drop repeats
    msg_id = fields.CharField(max_length=64, unique=True)
    #: the JSON body sent ({"type", "timestamp", "data"}), personal data masked, encrypted at rest
    payload: dict[str, Any] = encrypted_json_field(default=dict)
    #: pending | retrying | sent | failed | skipped (the subscription was off)
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    #: the outbox row of the latest send (a replay writes a new one)
    outbox_id = fields.BigIntField(null=True)
    ticket_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_delivery"
        indexes = (("subscription_id", "id"),)
