"""Tickets, their audit trail, and the per-day number counter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.channels.models import ChannelAccount
    from app.conversations.models import Conversation
    from app.customers.models import Customer
    from app.staff.models import SkillGroup, Staff


class Ticket(Model):
    id = fields.IntField(primary_key=True)
    #: human-readable, e.g. GD-20261125-0042 (per-day sequence, Asia/Shanghai date)
    number = fields.CharField(max_length=32, unique=True)
    subject = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    #: written only by app.tickets.states
    status = fields.CharField(max_length=16, default="new")
    #: low | normal | high | urgent
    priority = fields.CharField(max_length=16, default="normal")
    category = fields.CharField(max_length=32, default="", db_index=True)
    #: extracted or entered fields (problem type, address, ...) - phone numbers are never stored here
    custom_fields = fields.JSONField(default=dict)
    order_no = fields.CharField(max_length=64, null=True, db_index=True)
    #: Fernet ciphertext of a phone number given for this ticket, and its keyed hash
    phone_enc = fields.TextField(null=True)
    phone_hash = fields.CharField(max_length=64, null=True, db_index=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="tickets", on_delete=fields.RESTRICT
    )
    channel_account: fields.ForeignKeyNullableRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "gongdan.Conversation", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    group: fields.ForeignKeyNullableRelation[SkillGroup] = fields.ForeignKeyField(
        "gongdan.SkillGroup", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    assignee: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="assigned_tickets", null=True, on_delete=fields.SET_NULL
    )
    tags = fields.JSONField(default=list)
    merged_into: fields.ForeignKeyNullableRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="merged_from", null=True, on_delete=fields.SET_NULL
    )
    first_response_due = fields.DatetimeField(null=True, db_index=True)
    next_response_due = fields.DatetimeField(null=True, db_index=True)
    resolution_due = fields.DatetimeField(null=True, db_index=True)
    first_responded_at = fields.DatetimeField(null=True)
    resolved_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    #: optimistic lock: every write carries the version it read and bumps it
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    #: newest customer or staff activity - "my tickets" sort on it
    last_activity_at = fields.DatetimeField()

    class Meta:
        table = "ticket"
        indexes = (
            ("assignee_id", "status", "last_activity_at"),
            ("group_id", "status", "last_activity_at"),
            ("customer_id", "status"),
            ("last_activity_at", "id"),
        )


class TicketEvent(Model):
    """One row per change: who did what, from which value to which, and why."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="events", on_delete=fields.CASCADE
    )
    #: created | status_changed | assigned | priority_changed | group_changed | updated | replied | note |
    #: merged | customer_message
    kind = fields.CharField(max_length=32)
    #: staff | customer | system | bot
    actor_kind = fields.CharField(max_length=16)
    actor: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="ticket_events", null=True, on_delete=fields.SET_NULL
    )
    old = fields.CharField(max_length=255, null=True)
    new = fields.CharField(max_length=255, null=True)
    reason = fields.CharField(max_length=500, default="")
    data = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ticket_event"
        indexes = (("ticket_id", "id"),)


class TicketCounter(Model):
    #: the local date, YYYYMMDD
    day = fields.CharField(max_length=8, primary_key=True)
    seq = fields.IntField(default=0)

    class Meta:
        table = "ticket_counter"
