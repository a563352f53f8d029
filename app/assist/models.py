"""Ticket vectors (written by a job), the suggestions shown to staff with their accept/dismiss outcome, and the
classifiers learned from the desk's closed tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.staff.models import Staff
    from app.tickets.models import Ticket


class TicketVector(Model):
    """The sentence vector of one ticket's text (subject and description), re-embedded only when that text or the
    model changes (``digest`` covers both)."""

    id = fields.IntField(primary_key=True)
    ticket: fields.OneToOneRelation[Ticket] = fields.OneToOneField(
        "gongdan.Ticket", related_name="assist_vector", on_delete=fields.CASCADE
    )
    model = fields.CharField(max_length=64)
    #: SHA-256 of the model name and the embedded text, hex
    digest = fields.CharField(max_length=64)
    dim = fields.IntField()
    #: base64 of one float32 little-endian row (a text column: aiomysql cannot bind bytes)
    vector = fields.TextField()
    #: the ticket's updated_at when it was read: the embedding job continues from the newest one
    ticket_updated_at = fields.DatetimeField(db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "assist_ticket_vector"


class Suggestion(Model):
    """One suggestion shown on a ticket, and what staff did with it (the accuracy report counts these)."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="suggestions", on_delete=fields.CASCADE
    )
    #: category | priority | similar | summary | emotion
    kind = fields.CharField(max_length=16, db_index=True)
    #: the suggested value (a category, a priority, a ticket id, "anger" ...)
    value = fields.CharField(max_length=64)
    confidence = fields.FloatField(default=0.0)
    #: why, in Chinese: matched phrases, similar tickets
    reasons: list[str] = fields.JSONField(default=list)
    #: what produced it, e.g. "category-3" (the AssistModel) or "lexicon"
    source = fields.CharField(max_length=64, default="")
    #: shown | accepted | dismissed
    status = fields.CharField(max_length=16, default="shown", db_index=True)
    decided_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="assist_decisions", null=True, on_delete=fields.SET_NULL
    )
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "assist_suggestion"
        # one row per suggestion however often (and however concurrently) the page shows it
        unique_together = (("ticket", "kind", "value"),)


class AssistModel(Model):
    """A classifier (category or priority) trained on closed tickets: hashed character n-grams plus the sentence
    vector, multinomial logistic regression; weights stored as numbers, never pickled."""

    id = fields.IntField(primary_key=True)
    #: category | priority
    kind = fields.CharField(max_length=16, db_index=True)
    classes: list[str] = fields.JSONField(default=list)
    #: {"hash_features": n, "dense_dim": d, "embedder": name or ""}
    params: dict[str, Any] = fields.JSONField(default=dict)
    #: base64 float32 (classes x features) then (classes) intercepts
    weights = fields.TextField()
    trained_on = fields.IntField(default=0)
    held_out = fields.IntField(default=0)
    #: accuracy on the held-out newest tickets, and the keyword/majority baseline's on the same tickets
    accuracy = fields.FloatField(default=0.0)
    baseline_accuracy = fields.FloatField(default=0.0)
    #: the model in force for its kind (the newest one that beat the baseline)
    active = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "assist_model"
