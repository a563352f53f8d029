"""The approval settings in force: the console's row (``ApprovalPolicy``) when an admin saved one, else the
APPROVAL_THRESHOLD / APPROVAL_LEVELS / APPROVAL_TIMEOUT_MINUTES settings. The WeCom approval templates and the
fallback approvers are stored apart from the thresholds (None: APPROVAL_OA_TEMPLATES / APPROVAL_FALLBACK still
apply), so a row saved before they were on the page does not silently drop the environment's values.

Values typed in the console are checked by the settings' own parser (``app.settings._workflow`` over the same
variable names), one variable at a time so each error lands on its field, plus the one thing the environment path
leaves to luck: the threshold must be a finite, non-negative amount. The templates are parsed like
APPROVAL_OA_TEMPLATES and must name known approval kinds; the fallback approvers must be active members' userids
(the environment path drops unknown ones silently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.config import Config, Environ

from app.errors import ConfigError, PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.settings import _pairs, _workflow, get_settings
from app.staff.models import Staff
from app.uow import atomic
from approvals.models import ApprovalPolicy

__all__ = ["Policy", "current", "fallback_userids", "levels_text", "oa_templates_text", "reset", "save"]

MESSAGES = {"threshold": "审批金额门槛应为不小于 0 的数字（元）",
            "levels": "审批层级应写成 金额=层数，用逗号分隔，如 0=1,1000=2,5000=3；层数至少为 1",
            "timeout_minutes": "超时时间应为不小于 1 的整数（分钟）",
            "oa_templates": "企业微信审批模板应写成 审批类型=模板 ID，用逗号分隔，"
                            "如 refund=3Tka1eD6v6JfzhDMqPd3aMkFdxqtJMc2ZRioeFXk",
            "fallback": "兜底审批人应写成企业微信成员账号（userid），用逗号分隔"}
#: WeCom's rule for a member's userid (1-64 characters, letters, digits and _-@., a letter or digit first)
_USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_TEMPLATE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
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
    #: (approval kind, WeCom approval template id): those kinds go through WeCom's approval app
    oa_templates: tuple[tuple[str, str], ...] = ()
    #: fallback approvers' userids, in order (empty: every active admin)
    fallback: tuple[str, ...] = ()


def _from_settings() -> Policy:
    w = get_settings().workflow
    return Policy(threshold=Decimal(str(w.approval_threshold)),
                  levels=tuple((Decimal(str(a)), int(n)) for a, n in w.approval_levels),
                  timeout_minutes=w.approval_timeout_minutes, source="settings",
                  oa_templates=tuple(w.approval_oa_templates), fallback=tuple(w.approval_fallback))


async def current() -> Policy:
    """The policy in force (one primary-key read: approvals are rare, and every process sees a change at once)."""
    row = await ApprovalPolicy.get_or_none(id=1)
    env = _from_settings()
    if row is None:
        return env
    return Policy(threshold=Decimal(str(row.threshold)), levels=tuple((Decimal(str(a)), int(n)) for a, n in row.levels),
                  timeout_minutes=row.timeout_minutes, source="console",
                  oa_templates=env.oa_templates if row.oa_templates is None else tuple(
                      (str(k), str(t)) for k, t in row.oa_templates),
                  fallback=env.fallback if row.fallback is None else tuple(str(u) for u in row.fallback))


async def fallback_userids() -> tuple[str, ...]:
    """The fallback approvers' userids in force (``app.tickets.fallback`` asks through the source app.setup wires)."""
    return (await current()).fallback


def levels_text(policy: Policy) -> str:
    """The levels as APPROVAL_LEVELS writes them (``0=1,1000=2``)."""
    return ",".join(f"{a.normalize():f}={n}" for a, n in policy.levels)


def oa_templates_text(policy: Policy) -> str:
    """The templates as APPROVAL_OA_TEMPLATES writes them (``refund=TPL1,compensation=TPL2``)."""
    return ",".join(f"{k}={t}" for k, t in policy.oa_templates)


def _items(raw: str) -> list[str]:
    # a Chinese keyboard types the full-width comma
    return [item.strip() for item in raw.replace("，", ",").split(",") if item.strip()]


def _parse_templates(raw: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    from approvals.service import KINDS  # the service reads this module: import late

    try:
        pairs = _pairs(raw.replace("，", ","), "APPROVAL_OA_TEMPLATES")
    except ConfigError:
        return (), MESSAGES["oa_templates"]
    unknown = [k for k, _ in pairs if k not in KINDS]
    if unknown:
        return (), f"审批类型只能是 {'、'.join(KINDS)}：{'、'.join(unknown)}"
    bad = [t for _, t in pairs if not _TEMPLATE_ID.fullmatch(t)]
    if bad:
        return (), f"模板 ID 只能包含字母、数字、下划线和短横线：{'、'.join(bad)}"
    kinds = [k for k, _ in pairs]
    twice = sorted({k for k in kinds if kinds.count(k) > 1}, key=kinds.index)
    if twice:
        return (), f"审批类型重复：{'、'.join(twice)}"
    return tuple(pairs), None


async def _parse_fallback(raw: str) -> tuple[tuple[str, ...], str | None]:
    userids = _items(raw)
    bad = [u for u in userids if not _USERID.fullmatch(u)]
    if bad:
        return (), f"{MESSAGES['fallback']}：{'、'.join(bad)}"
    twice = sorted({u for u in userids if userids.count(u) > 1}, key=userids.index)
    if twice:
        return (), f"兜底审批人重复：{'、'.join(twice)}"
    found = {str(u) for u in await Staff.filter(userid__in=userids, status="active").values_list("userid", flat=True)}
    missing = [u for u in userids if u not in found]
    if missing:
        return (), f"找不到在职成员：{'、'.join(missing)}"
    return tuple(userids), None


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


async def save(*, actor: Actor, threshold: str, levels: str, timeout_minutes: str, oa_templates: str | None = None,
               fallback: str | None = None) -> Policy:
    """Store the console's settings (checked like the APPROVAL_* settings; None keeps the environment's); audited."""
    _require_admin(actor)
    errors: list[dict[str, str]] = []
    try:
        policy = _parse(threshold=threshold, levels=levels, timeout_minutes=timeout_minutes)
    except ValidationFailed as exc:
        errors.extend((exc.details or {}).get("fields") or [])
    templates, template_error = _parse_templates(oa_templates) if oa_templates is not None else ((), None)
    userids, fallback_error = await _parse_fallback(fallback) if fallback is not None else ((), None)
    errors += [{"field": f, "message": m} for f, m in (("oa_templates", template_error), ("fallback", fallback_error))
               if m is not None]
    if errors:
        raise ValidationFailed(errors[0]["message"], code="invalid_approval_policy", details={"fields": errors})
    stored: list[list[Any]] = [[f"{a.normalize():f}", n] for a, n in policy.levels]
    values: dict[str, Any] = {
        "threshold": policy.threshold, "levels": stored, "timeout_minutes": policy.timeout_minutes,
        "oa_templates": None if oa_templates is None else [list(p) for p in templates],
        "fallback": None if fallback is None else list(userids)}
    reason = f"门槛 {policy.threshold} 元；层级 {levels_text(policy)}；超时 {policy.timeout_minutes} 分钟"
    if oa_templates is not None:
        reason += f"；企业微信审批模板 {','.join(f'{k}={t}' for k, t in templates) or '无'}"
    if fallback is not None:
        reason += f"；兜底审批人 {','.join(userids) or '全部管理员'}"
    async with atomic():
        await ApprovalPolicy.update_or_create(id=1, defaults=values)
        await record_audit(actor=actor, action="approval_policy", object_type="approval_policy", object_id="1",
                           reason=reason)
    return await current()


async def reset(*, actor: Actor) -> Policy:
    """Drop the console's thresholds: the APPROVAL_* settings apply again; audited."""
    _require_admin(actor)
    async with atomic():
        await ApprovalPolicy.filter(id=1).delete()
        await record_audit(actor=actor, action="approval_policy", object_type="approval_policy", object_id="1",
                           reason="恢复为环境变量中的审批设置")
    return await current()
