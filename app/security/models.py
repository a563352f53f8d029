"""API tokens (stored only as their SHA-256), the hash-chained audit log of sensitive operations, revoked sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.customers.models import Customer
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
    #: what the token may do, comma-separated: read, write, events, admin (tokens made before scopes hold all four)
    scopes = fields.CharField(max_length=64, default="read,write,events,admin")
    revoked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


class AuditLog(Model):
    """Reveals of masked fields and other sensitive operations: who, when, what and why.

    Rows are written only by ``app.security.chain.append``: each carries its place in the chain (``seq``) and
    ``row_hash`` = SHA-256 of the previous row's hash and the row's canonical JSON, so an edit, a deletion or an
    insertion in the middle breaks the chain at that row (``gongdan audit verify``).
    """

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
    #: 1, 2, 3... in chain order (null for rows written before the chain existed)
    seq = fields.BigIntField(null=True, unique=True)
    #: the previous chained row's row_hash ("" for the first)
    prev_hash = fields.CharField(max_length=64, default="")
    #: SHA-256 hex of prev_hash + the canonical JSON of this row
    row_hash = fields.CharField(max_length=64, default="")

    class Meta:
        table = "audit_log"
        indexes = (("object_type", "object_id"),)


class AuditChainHead(Model):
    """The single row (id 1) naming the end of the audit chain: appends lock it, so concurrent writers never fork."""

    id = fields.IntField(primary_key=True, generated=False)
    seq = fields.BigIntField(default=0)
    last_hash = fields.CharField(max_length=64, default="")
    last_id = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "audit_chain_head"


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


class PiiToken(Model):
    """A phone number, ID-card number or e-mail address found in a free text, kept encrypted.

    The stored text holds ``⟦pii:<id>:<masked>⟧`` in its place (app.security.tokens): views show the masked form,
    an audited reveal or a delivery to the customer reads the value. Deleting the row forgets the value.
    """

    #: random lowercase letters (no digits, so a token never looks like a number)
    id = fields.CharField(max_length=16, primary_key=True)
    #: phone | id_card | email
    kind = fields.CharField(max_length=16)
    #: Fernet ciphertext of the value as written
    value_enc = fields.TextField()
    #: keyed hash of the normalised value (E.164 for phones), for exact-match search
    value_hash = fields.CharField(max_length=64, db_index=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="pii_tokens", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "pii_token"


class ConsentRecord(Model):
    """A customer's consent to collecting one kind of personal data: what, when, and which wording they agreed to."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="consents", on_delete=fields.CASCADE
    )
    #: phone | photos
    purpose = fields.CharField(max_length=32)
    #: the version of the consent text shown (app.security.consent.CONSENT_VERSION)
    text_version = fields.CharField(max_length=32)
    #: where it was given: customer_h5, ...
    source = fields.CharField(max_length=32, default="customer_h5")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "consent_record"
        indexes = (("customer_id", "purpose"),)
