"""Idempotency keys of API requests, business-event rules, and the log of business events received."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from app.security.fields import encrypted_json_field


class IdempotencyRecord(Model):
    """One ``Idempotency-Key`` a caller used on one endpoint, and the answer it got (replayed for a repeat)."""

    id = fields.BigIntField(primary_key=True)
    #: SHA-256 of caller (staff id), endpoint and key: one caller's keys never collide with another's
    key_hash = fields.CharField(max_length=64, unique=True)
    staff_id = fields.IntField(null=True)
    endpoint = fields.CharField(max_length=32)
    #: SHA-256 of the request body's canonical JSON: the same key with another body is refused
    body_hash = fields.CharField(max_length=64)
    #: 0 while the first request is still being handled
    status_code = fields.IntField(default=0)
    #: the answer's JSON body (encrypted: it may name a customer)
    response: dict[str, Any] = encrypted_json_field(default=dict)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_record"


class EventRule(Model):
    """What a business event of one type does for its customer: open a proactive ticket, message them, or both."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    #: payment_failed, delivery_delayed, ...
    event_type = fields.CharField(max_length=64, db_index=True)
    #: all must hold: [{"field": "amount", "op": "gte", "value": 100}, ...] on the event's data
    conditions: list[dict[str, Any]] = fields.JSONField(default=list)
    #: ticket | message | both
    action = fields.CharField(max_length=16)
    #: the ticket's subject and description, and the customer's message: {field} is replaced by the event's data
    subject = fields.CharField(max_length=200, default="")
    description = fields.TextField(default="")
    message = fields.TextField(default="")
    priority = fields.CharField(max_length=16, null=True)
    category = fields.CharField(max_length=32, default="")
    tags: list[str] = fields.JSONField(default=list)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "event_rule"


class BusinessEvent(Model):
    """A business event another system sent (POST /api/v1/events) and what the rules did with it."""

    id = fields.BigIntField(primary_key=True)
    event_type = fields.CharField(max_length=64)
    customer_id = fields.IntField(null=True, db_index=True)
    staff_id = fields.IntField(null=True)
    #: the event's fields as sent (encrypted: they may hold personal data)
    data: dict[str, Any] = encrypted_json_field(default=dict)
    #: [{"rule_id", "ticket_id"?, "message": "queued"|"no_channel"?}, ...]
    results: list[dict[str, Any]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "business_event"
