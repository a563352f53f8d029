"""Outbox rows: every side effect (a message to a customer, a card to staff) as data, written with its cause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.security.fields import encrypted_json_field

if TYPE_CHECKING:
    from app.channels.models import ChannelAccount
    from app.tickets.models import Ticket


class OutboxMessage(Model):
    id = fields.BigIntField(primary_key=True)
    #: the adapter that delivers it: wechat_mp | wecom_app | wecom_kf | email | null ...
    channel: str = fields.CharField(max_length=32)  # type: ignore[assignment]
    channel_account: fields.ForeignKeyNullableRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="outbox", null=True, on_delete=fields.SET_NULL
    )
    #: customer_message | template_message | staff_card | ...
    kind = fields.CharField(max_length=32)
    #: the platform handle (openid, external_userid, WeCom userid)
    recipient = fields.CharField(max_length=128)
    #: encrypted as a whole at rest (it may hold a customer's personal data in clear for delivery)
    payload: dict[str, Any] = encrypted_json_field(default=dict)
    #: pending | sending | sent | failed (permanent) | dead (attempts exhausted)
    # also "unknown": sent without an answer on a channel that has no idempotency key, not resent until staff ask
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    #: a claimed row whose lease ran out is taken back by the sweep
    lease_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    #: the platform's id for the sent message (template msgid, kf msgid)
    provider_msg_id = fields.CharField(max_length=64, null=True, db_index=True)
    #: delivery report from the platform (TEMPLATESENDJOBFINISH, msg_send_fail)
    delivery_state = fields.CharField(max_length=64, null=True)
    #: optional idempotency key for the cause ("ack:ticket:42"), so writing it twice keeps one row
    dedupe_key = fields.CharField(max_length=191, null=True, unique=True)
    ticket: fields.ForeignKeyNullableRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="outbox", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_message"
        indexes = (("status", "next_attempt_at"),)
