"""Channel accounts (one per Official Account, WeCom app, kf account, mailbox) and raw inbound callbacks."""

from __future__ import annotations

import hashlib
from typing import Any

from tortoise import fields
from tortoise.models import Model

from app.security.fields import EncryptedTextField


class ChannelAccount(Model):
    id = fields.IntField(primary_key=True)
    #: wechat_mp | wecom_app | wecom_kf | email | webchat | api
    kind = fields.CharField(max_length=32)
    #: the slug in callback URLs: /callbacks/wechat/{key}
    key = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128, default="")
    #: non-secret settings (appid, template ids, routing) - secrets live in secrets_enc
    config: dict[str, Any] = fields.JSONField(default=dict)
    #: Fernet-encrypted JSON of the secrets (app secret, token, AES key)
    secrets_enc = fields.TextField(null=True)
    is_default = fields.BooleanField(default=False)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channel_account"


#: InboundEvent.dedupe_key's column width (utf8mb4 unique index limit)
DEDUPE_KEY_LENGTH = 191


def bounded_dedupe_key(key: str) -> str:
    """``key`` itself when it fits the column, else its first 100 characters + ``#`` + its SHA-256.

    Never a plain truncation: two different long keys sharing a prefix would collide and one message would be
    dropped as a "duplicate". The readable prefix keeps the key greppable.
    """
    if len(key) <= DEDUPE_KEY_LENGTH:
        return key
    return f"{key[:100]}#{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


class InboundEvent(Model):
    id = fields.BigIntField(primary_key=True)
    channel_account: fields.ForeignKeyNullableRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="inbound_events", null=True, on_delete=fields.SET_NULL
    )
    #: MsgId for messages, the event's own ids or a hash of the decrypted body for events
    dedupe_key = fields.CharField(max_length=191, unique=True)
    #: the decrypted payload exactly as received, encrypted at rest (it holds the customer's own words)
    payload = EncryptedTextField()
    #: pending | done | ignored | failed
    status = fields.CharField(max_length=16, default="pending", db_index=True)
    attempts = fields.IntField(default=0)
    error = fields.TextField(null=True)
    received_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbound_event"


class CallbackHealth(Model):
    """The newest verification outcome of one callback URL, written by ``app.channels.health`` (throttled)."""

    id = fields.IntField(primary_key=True)
    #: ``wechat_mp:{account key}``, ``wecom_app`` (also every 微信客服 account) or ``wecom_contacts``
    scope = fields.CharField(max_length=96, unique=True)
    #: ``verified`` or the rejection reason (``bad_signature``, ``replayed``, ``decrypt_failed``, ...)
    outcome = fields.CharField(max_length=32)
    #: when that outcome was seen (to the throttle's precision, about a minute)
    seen_at = fields.DatetimeField()
    verified_at = fields.DatetimeField(null=True)
    rejected_at = fields.DatetimeField(null=True)
    rejected_reason = fields.CharField(max_length=32, default="")

    class Meta:
        table = "callback_health"


class CallbackRejectionCount(Model):
    """Rejected callbacks of one callback URL per hour (each process adds its own count)."""

    id = fields.IntField(primary_key=True)
    scope = fields.CharField(max_length=96)
    #: the start of the hour, UTC
    hour = fields.DatetimeField()
    count = fields.IntField(default=0)

    class Meta:
        table = "callback_rejection_count"
        unique_together = (("scope", "hour"),)
