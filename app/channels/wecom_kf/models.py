"""kf state the desk keeps: the sync cursor per open_kfid, msgids already processed, and each customer session."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class KfCursor(Model):
    id = fields.IntField(primary_key=True)
    open_kfid = fields.CharField(max_length=64, unique=True)
    #: the opaque next_cursor of the last page fully processed ("" = from the start of the 3-day window)
    cursor = fields.CharField(max_length=128, default="")
    #: a puller holds the lease until this time - others wait (two pullers on one cursor would read twice)
    lease_until = fields.DatetimeField(null=True)
    pages = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "kf_cursor"


class KfSeen(Model):
    """A pulled item (message or event) already handled: msgid dedupe across pages, pulls and crashes."""

    id = fields.BigIntField(primary_key=True)
    msgid = fields.CharField(max_length=128, unique=True)
    open_kfid = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "kf_seen"


class KfSession(Model):
    """What we know of WeCom's session with one customer: its state and the send window."""

    id = fields.IntField(primary_key=True)
    open_kfid = fields.CharField(max_length=64)
    external_userid = fields.CharField(max_length=128)
    #: 0 new, 1 bot, 2 queue, 3 servicer, 4 ended (path/94698)
    service_state = fields.IntField(default=0)
    servicer_userid = fields.CharField(max_length=64, default="")
    #: the customer's last message (the 48-hour window counts from it)
    last_customer_at = fields.DatetimeField(null=True)
    #: messages we sent since then (at most 5)
    sent_since = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "kf_session"
        unique_together = (("open_kfid", "external_userid"),)
