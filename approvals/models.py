"""Approval requests and the steps of their approver chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.staff.models import Staff
    from app.tickets.models import Ticket


class ApprovalRequest(Model):
    id = fields.IntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="approvals", on_delete=fields.CASCADE
    )
    #: transfer | urgent | refund | compensation
    kind = fields.CharField(max_length=16)
    requester: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="approval_requests", on_delete=fields.RESTRICT
    )
    reason = fields.CharField(max_length=500)
    #: {"group_id": 3} for a transfer, {"amount": "1500.00"} for money
    params: dict[str, Any] = fields.JSONField(default=dict)
    #: pending | awaiting_customer (refund approved, the customer's code outstanding) | approved | rejected |
    #: cancelled
    status = fields.CharField(max_length=20, default="pending", db_index=True)
    #: h5 (decided in Gongdan's approvals page) | wecom_oa (WeCom's approval app)
    channel = fields.CharField(max_length=16, default="h5")
    #: the WeCom approval number (wecom_oa)
    sp_no = fields.CharField(max_length=64, null=True, unique=True)
    #: planned approver staff ids, level by level (a timeout replaces the waiting one by their superior)
    chain: list[int] = fields.JSONField(default=list)
    #: 1-based level waiting for a decision
    level = fields.IntField(default=1)
    #: when the waiting approver is passed over (h5 only) - indexed for the timeout cron
    step_due_at = fields.DatetimeField(null=True, db_index=True)
    decision_comment = fields.CharField(max_length=500, default="")
    decided_at = fields.DatetimeField(null=True)
    #: refunds: keyed hash of the one-time code sent to the customer, and its expiry
    customer_code_hash = fields.CharField(max_length=64, null=True)
    customer_code_expires_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField()

    class Meta:
        table = "approval_request"
        indexes = (("ticket_id", "status"),)


class ApprovalStep(Model):
    """One approver's turn: pending, then approved / rejected / timed_out."""

    id = fields.IntField(primary_key=True)
    request: fields.ForeignKeyRelation[ApprovalRequest] = fields.ForeignKeyField(
        "gongdan.ApprovalRequest", related_name="steps", on_delete=fields.CASCADE
    )
    level = fields.IntField()
    approver: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="approval_steps", on_delete=fields.RESTRICT
    )
    status = fields.CharField(max_length=16, default="pending")
    comment = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "approval_step"
        unique_together = (("request", "level", "approver"),)


class ApprovalPolicy(Model):
    """The money thresholds as set in the console (one row, id 1), without it the APPROVAL_* settings apply."""

    id = fields.IntField(primary_key=True, generated=False)
    #: refunds and compensation above this amount (yuan) need approval
    threshold = fields.DecimalField(max_digits=12, decimal_places=2)
    #: [[minimum amount, approver levels], ...] sorted by amount
    levels: list[list[Any]] = fields.JSONField(default=list)
    timeout_minutes = fields.IntField()
    #: [[approval kind, WeCom approval template id], ...], None: APPROVAL_OA_TEMPLATES applies
    oa_templates: list[list[str]] | None = fields.JSONField(null=True)
    #: WeCom userids of the fallback approvers (empty: every active admin), None: APPROVAL_FALLBACK applies
    fallback: list[str] | None = fields.JSONField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "approval_policy"
