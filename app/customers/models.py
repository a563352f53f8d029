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
