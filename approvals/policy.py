"""The approval thresholds in force: the console's row (``ApprovalPolicy``) when an admin saved one, else the
APPROVAL_THRESHOLD / APPROVAL_LEVELS / APPROVAL_TIMEOUT_MINUTES settings.

Values typed in the console are checked by the settings' own parser (``app.settings._workflow`` over the same
variable names), one variable at a time so each error lands on its field, plus the one thing the environment path
leaves to luck: the threshold must be a finite, non-negative amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.config import Config, Environ

from app.errors import PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.settings import _workflow, get_settings
from app.uow import atomic
from approvals.models import ApprovalPolicy

__all__ = ["Policy", "current", "levels_text", "reset", "save"]

MESSAGES = {"threshold": "审批金额门槛应为不小于 0 的数字（元）",
            "levels": "审批层级应写成 金额=层数，用逗号分隔，如 0=1,1000=2,5000=3；层数至少为 1",
            "timeout_minutes": "超时时间应为不小于 1 的整数（分钟）"}
VARIABLES = {"threshold": "APPROVAL_THRESHOLD", "levels": "APPROVAL_LEVELS",
             "timeout_minutes": "APPROVAL_TIMEOUT_MINUTES"}


@dataclass(frozen=True)
class Policy:
    threshold: Decimal
    #: (minimum amount, approver levels), by amount
    levels: tuple[tuple[Decimal, int], ...]
    timeout_minutes: int
    #: "settings" (environment) or "console"
    source: str


def _from_settings() -> Policy:
    w = get_settings().workflow
    return Policy(threshold=Decimal(str(w.approval_threshold)),
                  levels=tuple((Decimal(str(a)), int(n)) for a, n in w.approval_levels),
                  timeout_minutes=w.approval_timeout_minutes, source="settings")


async def current() -> Policy:
    """The policy in force (one primary-key read: approvals are rare, and every process sees a change at once)."""
    row = await ApprovalPolicy.get_or_none(id=1)
    if row is None:
        return _from_settings()
    return Policy(threshold=Decimal(str(row.threshold)), levels=tuple((Decimal(str(a)), int(n)) for a, n in row.levels),
                  timeout_minutes=row.timeout_minutes, source="console")


def levels_text(policy: Policy) -> str:
    """The levels as APPROVAL_LEVELS writes them (``0=1,1000=2``)."""
    return ",".join(f"{a.normalize():f}={n}" for a, n in policy.levels)


def _parse(*, threshold: str, levels: str, timeout_minutes: str) -> Policy:
    errors = []
    values = {"threshold": threshold, "levels": levels, "timeout_minutes": timeout_minutes}
    for field, value in values.items():
        try:
            _workflow(Config(environ=Environ({VARIABLES[field]: str(value).strip()})))
        except Exception:  # ConfigError, or a parse error the settings do not wrap
            errors.append({"field": field, "message": MESSAGES[field]})
    if not any(e["field"] == "threshold" for e in errors):
        try:
            amount = Decimal(str(threshold).strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0:
            errors.append({"field": "threshold", "message": MESSAGES["threshold"]})
    if errors:
        raise ValidationFailed(errors[0]["message"], code="invalid_approval_policy", details={"fields": errors})
    workflow = _workflow(Config(environ=Environ({"APPROVAL_THRESHOLD": threshold.strip(),
                                                "APPROVAL_LEVELS": levels.strip(),
                                                "APPROVAL_TIMEOUT_MINUTES": timeout_minutes.strip()})))
    return Policy(threshold=Decimal(threshold.strip()).quantize(Decimal("0.01")),
                  levels=tuple((Decimal(str(a)), int(n)) for a, n in workflow.approval_levels),
                  timeout_minutes=workflow.approval_timeout_minutes, source="console")


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以修改审批设置", code="admin_only")


async def save(*, actor: Actor, threshold: str, levels: str, timeout_minutes: str) -> Policy:
    """Store the console's thresholds (checked like the APPROVAL_* settings); audited."""
    _require_admin(actor)
    policy = _parse(threshold=threshold, levels=levels, timeout_minutes=timeout_minutes)
    stored: list[list[Any]] = [[f"{a.normalize():f}", n] for a, n in policy.levels]
    async with atomic():
        await ApprovalPolicy.update_or_create(id=1, defaults={
            "threshold": policy.threshold, "levels": stored, "timeout_minutes": policy.timeout_minutes})
        await record_audit(actor=actor, action="approval_policy", object_type="approval_policy", object_id="1",
                           reason=f"门槛 {policy.threshold} 元；层级 {levels_text(policy)}；"
                                  f"超时 {policy.timeout_minutes} 分钟")
    return policy


async def reset(*, actor: Actor) -> Policy:
    """Drop the console's thresholds: the APPROVAL_* settings apply again; audited."""
    _require_admin(actor)
    async with atomic():
        await ApprovalPolicy.filter(id=1).delete()
        await record_audit(actor=actor, action="approval_policy", object_type="approval_policy", object_id="1",
                           reason="恢复为环境变量中的审批设置")
    return await current()
