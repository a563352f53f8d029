"""Conversations (a customer's thread on one channel account) and their messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.channels.models import ChannelAccount
    from app.customers.models import Customer
    from app.staff.models import Staff
    from app.tickets.models import Ticket


class Conversation(Model):
    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="conversations", on_delete=fields.CASCADE
    )
    channel_account: fields.ForeignKeyNullableRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="conversations", null=True, on_delete=fields.SET_NULL
    )
    #: open | closed
    status = fields.CharField(max_length=16, default="open")
    message_count = fields.IntField(default=0)
    started_at = fields.DatetimeField(auto_now_add=True)
    last_message_at = fields.DatetimeField(null=True)
    #: the customer's last inbound message (the channels' reply windows count from it)
    last_inbound_at = fields.DatetimeField(null=True)

    class Meta:
        table = "conversation"
        indexes = (("customer_id", "status"),)


class Message(Model):
    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "gongdan.Conversation", related_name="messages", null=True, on_delete=fields.CASCADE
    )
    ticket: fields.ForeignKeyNullableRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    #: in (from the customer) | out (to the customer) | internal (a staff note, never sent)
    direction = fields.CharField(max_length=8)
    #: customer | staff | bot | system
    author_kind = fields.CharField(max_length=16)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    channel_account: fields.ForeignKeyNullableRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    #: the platform's id (MsgId, kf msgid): unique per account, so a message is never stored twice
    provider_msg_id = fields.CharField(max_length=128, null=True)
    #: text | image | voice | video | file | location | link | event
    msg_type = fields.CharField(max_length=16, default="text")
    text = fields.TextField(default="")
    #: [{"kind": "image", "path": "media/...", "content_type": "...", "provider_media_id": "..."}]
    media: list[dict[str, Any]] = fields.JSONField(default=list)
    data: dict[str, Any] = fields.JSONField(default=dict)
    #: for outbound messages: the outbox row that carries it
    outbox_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "message"
        unique_together = (("channel_account", "provider_msg_id"),)
        indexes = (("ticket_id", "id"),)
