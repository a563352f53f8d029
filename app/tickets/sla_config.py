"""The SLA document: business calendars, SLA policies and per-group settings, as YAML (`gongdan sla import/export`).

    calendars:
      - {name: 标准工作日, timezone: Asia/Shanghai, default: true, public_holidays: true,
         weekly: {"1": [["09:00", "12:00"], ["13:00", "18:00"]], ...}, extra_days_off: [2025-12-31]}
    policies:
      - {name: 紧急, priority: urgent, first_response_minutes: 30, resolution_minutes: 240, warn_ratio: 0.8,
         escalation_minutes: [0, 30, 60]}
    groups:
      技术支持组: {calendar: 标准工作日, assignment: least_open}

Import replaces what the document names (calendars and policies by name, settings by group) and leaves the rest.
`public_holidays: true` closes a calendar on statutory holidays and opens it on 调休 make-up working days, as
`app.tickets.calendar` knows them: imported State Council notices (`gongdan calendar import-notice`), else
chinesecalendar's official arrangements, else the law (holidays computed for any year, no 调休 days).
"""

from __future__ import annotations

from typing import Any

import yaml

from app.errors import ValidationFailed
from app.staff.models import SkillGroup
from app.tickets import assignment, sla
from app.tickets import calendar as bizcal
from app.tickets.assignment import STRATEGIES
from app.tickets.models import BusinessCalendar, GroupSettings, SlaPolicy
from app.uow import atomic

POLICY_KEYS = ("name", "priority", "vip_min", "channel", "group", "first_response_minutes", "next_response_minutes",
               "resolution_minutes", "warn_ratio", "escalation_minutes", "active")
CALENDAR_KEYS = ("name", "timezone", "weekly", "public_holidays", "extra_days_off", "extra_workdays", "default")


def _policy(raw: Any, where: str, errors: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        errors.append(f"{where}: 需要 name")
        return None
    where = f"SLA 策略 {raw['name']!r}"
    for key in raw:
        if key not in POLICY_KEYS:
            errors.append(f"{where}.{key}: 未知的键")
    out: dict[str, Any] = {"name": str(raw["name"])}
    if raw.get("priority") is not None and raw["priority"] not in sla.PRIORITIES:
        errors.append(f"{where}.priority: 应为 {', '.join(sla.PRIORITIES)} 之一")
    for key in ("priority", "channel", "group"):
        if raw.get(key) is not None:
            out[key] = str(raw[key])
    for key in ("vip_min", "first_response_minutes", "next_response_minutes", "resolution_minutes"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            errors.append(f"{where}.{key}: 应为非负整数")
        elif value is not None:
            out[key] = value
    ratio = raw.get("warn_ratio", 0.8)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        errors.append(f"{where}.warn_ratio: 应为 0 到 1 之间的小数")
    else:
        out["warn_ratio"] = float(ratio)
    steps = raw.get("escalation_minutes", [0, 30, 60])
    if (not isinstance(steps, list) or len(steps) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)
            or steps != sorted(steps)):
        errors.append(f"{where}.escalation_minutes: 应为三个递增的非负整数（分钟）")
    else:
        out["escalation_minutes"] = steps
    out["active"] = raw.get("active", True) is not False
    return out


def parse_document(data: Any) -> dict[str, Any]:
    """Validate an SLA document into its canonical form (every problem reported at once)."""
    errors: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("SLA 文档应为映射（calendars / policies / groups）", code="invalid_sla",
                               details={"errors": ["文档: 应为映射"]})
    for key in data:
        if key not in ("calendars", "policies", "groups"):
            errors.append(f"{key}: 未知的键，可用: calendars, policies, groups")
    calendars: list[dict[str, Any]] = []
    for i, raw in enumerate(data.get("calendars") or []):
        if not isinstance(raw, dict) or not raw.get("name"):
            errors.append(f"calendars[{i + 1}]: 需要 name")
            continue
        unknown = [k for k in raw if k not in CALENDAR_KEYS]
        errors.extend(f"日历 {raw['name']!r}.{k}: 未知的键" for k in unknown)
        try:
            cal = bizcal.Calendar.build(
                name=str(raw["name"]), timezone=str(raw.get("timezone", "Asia/Shanghai")),
                weekly=raw.get("weekly"), public_holidays=raw.get("public_holidays", True) is not False,
                extra_days_off=raw.get("extra_days_off") or [], extra_workdays=raw.get("extra_workdays") or [])
        except ValidationFailed as exc:
            errors.append(f"日历 {raw['name']!r}: {exc.message}")
            continue
        calendars.append({**cal.to_document(), "default": bool(raw.get("default", False))})
    if sum(1 for c in calendars if c["default"]) > 1:
        errors.append("calendars: 最多一个 default: true")
    policies = [p for i, raw in enumerate(data.get("policies") or [])
                if (p := _policy(raw, f"policies[{i + 1}]", errors)) is not None]
    names = {c["name"] for c in calendars}
    groups: dict[str, dict[str, Any]] = {}
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        errors.append("groups: 应为 技能组名: 设置 的映射")
        raw_groups = {}
    for name, raw in raw_groups.items():
        raw = raw or {}
        entry: dict[str, Any] = {}
        if raw.get("calendar") is not None:
            if raw["calendar"] not in names:
                errors.append(f"技能组 {name!r}.calendar: 文档中没有日历 {raw['calendar']!r}")
            entry["calendar"] = raw["calendar"]
        strategy = raw.get("assignment", "manual")
        if strategy not in STRATEGIES:
            errors.append(f"技能组 {name!r}.assignment: 应为 {', '.join(STRATEGIES)} 之一")
        entry["assignment"] = strategy
        groups[str(name)] = entry
    if errors:
        raise ValidationFailed(f"SLA 配置有 {len(errors)} 处错误：{errors[0]}", code="invalid_sla",
                               details={"errors": errors})
    return {"calendars": calendars, "policies": policies, "groups": groups}


def parse_yaml(text: str) -> dict[str, Any]:
    """Parse and validate a YAML SLA document."""
    try:
        return parse_document(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"YAML 格式错误: {exc}", code="invalid_yaml", details={"errors": [str(exc)]}) from exc


async def store(*, document: dict[str, Any]) -> dict[str, int]:
    """Write a validated SLA document; returns how many calendars, policies and groups it set."""
    groups = {str(n): int(i) for i, n in await SkillGroup.all().values_list("id", "name")}
    missing = [n for n in document["groups"] if n not in groups]
    missing += [p["group"] for p in document["policies"] if p.get("group") and p["group"] not in groups]
    if missing:
        raise ValidationFailed(f"技能组不存在: {', '.join(sorted(set(missing)))}", code="invalid_sla",
                               details={"errors": [f"技能组 {n!r} 不存在" for n in sorted(set(missing))]})
    async with atomic():
        cal_ids: dict[str, int] = {}
        if any(c["default"] for c in document["calendars"]):
            await BusinessCalendar.filter(is_default=True).update(is_default=False)
        for c in document["calendars"]:
            row, _ = await BusinessCalendar.update_or_create(name=c["name"], defaults={
                "timezone": c["timezone"], "weekly": c["weekly"], "public_holidays": c["public_holidays"],
                "extra_days_off": c["extra_days_off"], "extra_workdays": c["extra_workdays"],
                "is_default": c["default"]})
            cal_ids[c["name"]] = row.id
        for position, p in enumerate(document["policies"]):
            await SlaPolicy.update_or_create(name=p["name"], defaults={
                "priority": p.get("priority"), "vip_min": p.get("vip_min"), "channel": p.get("channel"),
                "group_id": groups[p["group"]] if p.get("group") else None,
                "first_response_minutes": p.get("first_response_minutes"),
                "next_response_minutes": p.get("next_response_minutes"),
                "resolution_minutes": p.get("resolution_minutes"), "warn_ratio": p["warn_ratio"],
                "escalation_minutes": p["escalation_minutes"], "active": p["active"], "position": position})
        for name, g in document["groups"].items():
            await GroupSettings.update_or_create(group_id=groups[name], defaults={
                "calendar_id": cal_ids.get(g["calendar"]) if g.get("calendar") else None,
                "assignment": g["assignment"]})
    bizcal.invalidate()
    sla.invalidate()
    assignment.invalidate()
    return {"calendars": len(document["calendars"]), "policies": len(document["policies"]),
            "groups": len(document["groups"])}


async def export() -> dict[str, Any]:
    """The SLA document of what is stored (canonical: import(export()) changes nothing)."""
    calendars = [{**bizcal.from_row(c).to_document(), "default": c.is_default}
                 for c in await BusinessCalendar.all().order_by("id")]
    group_names = {int(i): str(n) for i, n in await SkillGroup.all().values_list("id", "name")}
    policies = []
    for p in await SlaPolicy.all().order_by("position", "id"):
        out: dict[str, Any] = {"name": p.name}
        for key in ("priority", "vip_min", "channel"):
            if getattr(p, key) is not None:
                out[key] = getattr(p, key)
        if p.group_id is not None:  # type: ignore[attr-defined]
            out["group"] = group_names.get(p.group_id)  # type: ignore[attr-defined]
        for key in ("first_response_minutes", "next_response_minutes", "resolution_minutes"):
            if getattr(p, key) is not None:
                out[key] = getattr(p, key)
        out.update(warn_ratio=p.warn_ratio, escalation_minutes=list(p.escalation_minutes), active=p.active)
        policies.append(out)
    cal_names = {c.id: c.name for c in await BusinessCalendar.all()}
    groups: dict[str, dict[str, Any]] = {}
    for gs in await GroupSettings.all().order_by("group_id"):
        entry: dict[str, Any] = {}
        if gs.calendar_id is not None:  # type: ignore[attr-defined]
            entry["calendar"] = cal_names[gs.calendar_id]  # type: ignore[attr-defined]
        entry["assignment"] = gs.assignment
        groups[group_names[gs.group_id]] = entry  # type: ignore[attr-defined]
    return {"calendars": calendars, "policies": policies, "groups": groups}


def to_yaml(document: dict[str, Any]) -> str:
    """The canonical YAML of an SLA document."""
    header = "# Gongdan calendars, SLA policies and group settings (gongdan sla export)\n"
    return header + str(yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=120))
