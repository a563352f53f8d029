"""Customers and their identities: one person, many handles across channels."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Customer(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128, default="")
    vip_level = fields.IntField(default=0)
    tags: list[str] = fields.JSONField(default=list)
    #: Fernet ciphertext - never stored or logged in the clear
    phone_enc = fields.TextField(null=True)
    #: keyed hash (HMAC-SHA256) of the normalised number, for exact-match search
    phone_hash = fields.CharField(max_length=64, null=True, db_index=True)
    email_enc = fields.TextField(null=True)
    email_hash = fields.CharField(max_length=64, null=True, db_index=True)
    #: set when this record was merged into another - the survivor keeps every identity
    merged_into: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="merged_from", null=True, on_delete=fields.SET_NULL
    )
    #: set when the customer's personal data was erased on request (app.customers.privacy): the row stays for the
    #: tickets' figures, the person is gone
    erased_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "customer"


class CustomerIdentity(Model):
    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="identities", on_delete=fields.CASCADE
    )
    #: mp_openid | unionid | external_userid | email | visitor | kf_external_userid | phone
    kind = fields.CharField(max_length=32)
    #: the channel account the handle belongs to ("" for global handles such as unionid)
    scope = fields.CharField(max_length=64, default="")
    value = fields.CharField(max_length=128)
    #: free-form data from the channel (subscribe state, follow info, ...)
    data: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "customer_identity"
        unique_together = (("kind", "scope", "value"),)


class CustomerMerge(Model):
    """One merge of two customers and exactly what it moved, so staff can undo it."""

    id = fields.IntField(primary_key=True)
    survivor: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="merges_kept", on_delete=fields.CASCADE
    )
    merged: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="merges_absorbed", on_delete=fields.CASCADE
    )
    #: unionid (automatic, the same WeChat person) | phone | email | manual
    reason = fields.CharField(max_length=16)
    #: the staff member who merged (null for automatic merges)
    staff_id = fields.IntField(null=True)
    comment = fields.CharField(max_length=500, default="")
    #: ids that moved to the survivor: {"identities": [..], "conversations": [..], "tickets": [..], "messages": [..]}
    moved: dict[str, list[int]] = fields.JSONField(default=dict)
    #: survivor fields the merge changed: {"name": [before, after], ...}
    survivor_changes: dict[str, list[Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    undone_at = fields.DatetimeField(null=True)
    undone_by_id = fields.IntField(null=True)

    class Meta:
        table = "customer_merge"
        indexes = (("survivor_id", "undone_at"),)


class ContactVerification(Model):
    """A customer's phone or e-mail proven to be theirs: confirmed by staff, or set by a channel that proves it.

    Only verified contacts make merge suggestions. A number the customer merely typed into a chat has no row.
    """

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="contact_checks", on_delete=fields.CASCADE
    )
    #: phone | email
    kind = fields.CharField(max_length=8)
    #: the keyed hash of the verified value (the customer's phone_hash / email_hash while it is still theirs)
    value_hash = fields.CharField(max_length=64)
    #: staff (confirmed by a staff member) | channel (a channel or directory that proves it)
    source = fields.CharField(max_length=16, default="staff")
    staff_id = fields.IntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "contact_verification"
        unique_together = (("customer", "kind", "value_hash"),)
        indexes = (("kind", "value_hash"),)
