"""API tokens (stored only as their SHA-256) and the audit log of sensitive reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.staff.models import Staff


class ApiToken(Model):
    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="api_tokens", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=64, default="")
    #: SHA-256 hex of the random token - the token itself is shown once and never stored
    token_hash = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=12)
    revoked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


class AuditLog(Model):
    """Reveals of masked fields and other sensitive reads: who, when, what and why."""

    id = fields.BigIntField(primary_key=True)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="audit_entries", null=True, on_delete=fields.SET_NULL
    )
    action = fields.CharField(max_length=32)
    object_type = fields.CharField(max_length=32)
    object_id = fields.CharField(max_length=64)
    field = fields.CharField(max_length=32, default="")
    reason = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = (("object_type", "object_id"),)


class RevokedSession(Model):
    """H5 sessions ended by logout: a cookie carrying one of these ids is treated as anonymous.

    Only the SHA-256 of the session id is kept. A row is useless once its cookie would have expired anyway
    (``expires_at``), and a cron may delete it then.
    """

    id = fields.BigIntField(primary_key=True)
    sid_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "revoked_session"
