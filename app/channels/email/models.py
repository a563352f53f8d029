"""What the desk keeps per mailbox: where reading stopped (UIDVALIDITY and the last UID read), who watches it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.channels.models import ChannelAccount


class MailboxCursor(Model):
    id = fields.IntField(primary_key=True)
    channel_account: fields.ForeignKeyRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="mailbox_cursors", on_delete=fields.CASCADE
    )
    folder = fields.CharField(max_length=128, default="INBOX")
    #: the folder's UIDVALIDITY when last_uid was read (a change means every UID is new: re-read from a date)
    uidvalidity = fields.BigIntField(null=True)
    #: the highest UID stored as an InboundEvent (UIDs only grow within one UIDVALIDITY)
    last_uid = fields.BigIntField(default=0)
    #: a poller holds the lease until this time (two pollers on one mailbox would read the same mail)
    lease_until = fields.DatetimeField(null=True)
    #: a process holds the mailbox's IMAP IDLE watch until this time (one watcher per mailbox across processes)
    idle_until = fields.DatetimeField(null=True)
    #: how new mail is noticed: "idle" (the server offers IDLE), "poll" (it does not), "" (not known yet)
    mode = fields.CharField(max_length=8, default="")
    polled_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "mailbox_cursor"
        unique_together = (("channel_account", "folder"),)
