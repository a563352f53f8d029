"""设置 · SLA 策略 and 设置 · 工作日历 (with the State Council holiday notice import).

Policies and calendars are parts of the SLA document; a page builds the document with its one change and hands it to
``sla_config.parse_document`` + ``store`` (what ``gongdan sla import`` and ``PUT /api/v1/sla/config`` do), so the
checks and messages are theirs. Policies are kept in their order (their position decides which matches first), so a
policy change sends every policy. A name is the key the document matches on, so it cannot change after creation.
Holiday notices go through ``holiday_notice.parse`` (YAML or the pasted notice text) and ``holiday_notice.store``,
like ``POST /api/v1/calendar/notices``, with the same "check first" preview. Changes are for admins.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import NotFound, ValidationFailed
from app.labels import CHANNEL_LABELS
from app.staff.models import SkillGroup
from app.tickets import calendar as bizcal
from app.tickets import holiday_notice, sla_config
from app.tickets.models import BusinessCalendar, GroupSettings, SlaPolicy
from app.tickets.service import PRIORITY_LABELS
from h5.console.settings import audited, form_list, int_or_raw, manager, require_admin, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

SLA = "/console/settings/sla"
CAL = "/console/settings/calendars"
ADMIN_ONLY = "只有管理员可以修改路由规则和 SLA 配置"
NOTICE_ADMIN_ONLY = "只有管理员可以导入节假日通知"
POLICY_FIELDS = ("name", "priority", "vip_min", "channel", "group", "first_response_minutes",
                 "next_response_minutes", "resolution_minutes", "warn_ratio", "escalation_minutes", "active")
WEEKDAYS = bizcal.WEEKDAY_NAMES
CAL_FIELDS = ("name", "timezone", *(f"weekly_{d}" for d in range(1, 8)), "public_holidays", "extra_days_off",
              "extra_workdays", "default")


def _minutes(value: Any) -> str:
    if value is None:
        return "—"
    hours, minutes = divmod(int(value), 60)
    return f"{hours} 小时 {minutes} 分" if hours and minutes else f"{hours} 小时" if hours else f"{minutes} 分钟"


async def _store(ctx: Ctx, document: dict[str, Any], *, action: str, object_type: str, object_id: str,
                 reason: str) -> None:
    async with audited(ctx, action=action, object_type=object_type, object_id=object_id, reason=reason):
        await sla_config.store(document=sla_config.parse_document(document))


# ---- policies -------------------------------------------------------------------------------------------------


@console_page
async def policies_page(request: Request, ctx: Ctx) -> Response:
    """The SLA policies in the order they are tried."""
    document = await sla_config.export()
    rows = []
    for p in document["policies"]:
        when = [f"优先级：{PRIORITY_LABELS.get(p['priority'], p['priority'])}" if p.get("priority") else "",
                f"VIP ≥ {p['vip_min']}" if p.get("vip_min") is not None else "",
                f"渠道：{CHANNEL_LABELS.get(p['channel'], p['channel'])}" if p.get("channel") else "",
                f"技能组：{p['group']}" if p.get("group") else ""]
        rows.append({"p": p, "when": [w for w in when if w] or ["所有工单"],
                     "first": _minutes(p.get("first_response_minutes")),
                     "next": _minutes(p.get("next_response_minutes")),
                     "resolution": _minutes(p.get("resolution_minutes")),
                     "id": (await SlaPolicy.get(name=p["name"])).id})
    return render_console(request, ctx, "console/settings/sla.html", active="settings.sla", rows=rows,
                          can_edit=manager(ctx).is_admin)


def _policy_values(p: dict[str, Any]) -> dict[str, Any]:
    return {**{k: "" if p.get(k) is None else str(p[k]) for k in POLICY_FIELDS},
            "escalation_minutes": ", ".join(str(m) for m in p.get("escalation_minutes", [0, 30, 60])),
            "active": p.get("active", True)}


def _form_policy(ctx: Ctx, name: str) -> dict[str, Any]:
    """The raw policy the form describes, in the document's shape (values as typed when not whole numbers)."""
    raw: dict[str, Any] = {"name": name}
    for key in ("priority", "channel", "group"):
        if ctx.field(key):
            raw[key] = ctx.field(key)
    for key in ("vip_min", "first_response_minutes", "next_response_minutes", "resolution_minutes"):
        if int_or_raw(ctx.field(key)) is not None:
            raw[key] = int_or_raw(ctx.field(key))
    ratio = ctx.field("warn_ratio")
    if ratio:
        try:
            raw["warn_ratio"] = float(ratio)
        except ValueError:
            raw["warn_ratio"] = ratio
    steps = form_list(ctx.field("escalation_minutes"))
    raw["escalation_minutes"] = [int_or_raw(s) for s in steps]
    raw["active"] = bool(ctx.field("active"))
    return raw


async def _policy_choices() -> dict[str, list[tuple[str, str]]]:
    groups = [(str(n), str(n)) for n in await SkillGroup.all().order_by("id").values_list("name", flat=True)]
    return {"priorities": [("", "不限"), *PRIORITY_LABELS.items()], "groups": [("", "不限"), *groups],
            "channels": [("", "不限"), *((k, v) for k, v in CHANNEL_LABELS.items() if k != "null")]}


@console_page
async def policy_edit(request: Request, ctx: Ctx) -> Response:
    """Create (``/new``, added last) or change a policy."""
    actor = require_admin(ctx, ADMIN_ONLY)
    row = None
    if "policy_id" in request.path_params:
        row = await SlaPolicy.get_or_none(id=int(request.path_params["policy_id"]))
        if row is None:
            raise NotFound("SLA 策略不存在。")
    document = await sla_config.export()
    current = next((p for p in document["policies"] if row is not None and p["name"] == row.name), None)
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "GET":
        values = _policy_values(current or {"active": True})
    else:
        name = row.name if row is not None else ctx.field("name")
        raw = _form_policy(ctx, name)
        values = {**{k: ctx.field(k) for k in POLICY_FIELDS}, "name": name, "active": raw["active"]}
        policies = [raw if current is not None and p["name"] == current["name"] else p
                    for p in document["policies"]]
        if current is None:
            if any(p["name"] == name for p in policies):
                errors["name"] = f"已有名为「{name}」的 SLA 策略"
            policies.append(raw)
        if not errors:
            try:
                await _store(ctx, {"calendars": [], "policies": policies, "groups": {}}, action="sla_save",
                             object_type="sla_policy", object_id=str(row.id if row else name),
                             reason=f"{'修改' if row else '新建'} SLA 策略「{name}」")
            except ValidationFailed as exc:
                prefix = f"SLA 策略 {name!r}."

                def field_of(where: str) -> str | None:
                    if where.startswith(prefix) and where[len(prefix):] in POLICY_FIELDS:
                        return where[len(prefix):]
                    return "name" if re.fullmatch(r"policies\[\d+\]", where) else None

                errors, general = split_errors(exc, field_of)
            else:
                flash(ctx, f"SLA 策略「{name}」已保存")
                return redirect(SLA)
    assert actor is not None
    title = "新建 SLA 策略" if row is None else f"SLA 策略 · {row.name}"
    return render_console(request, ctx, "console/settings/sla_edit.html", active="settings.sla", title=title,
                          breadcrumb=[("设置", None), ("SLA 策略", SLA), (title, None)], row=row, values=values,
                          errors=errors, general=general, choices=await _policy_choices(),
                          status=422 if errors or general else 200)


# ---- calendars ------------------------------------------------------------------------------------------------


def _weekly_text(spans: list[list[str]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in spans)


def _weekly_from_text(text: str) -> list[Any]:
    out: list[Any] = []
    for piece in form_list(text):
        parts = [p.strip() for p in re.split(r"[-–~～至]", piece) if p.strip()]
        out.append(parts)  # a malformed span goes on as typed: the calendar's own check names it
    return out


@console_page
async def calendars_page(request: Request, ctx: Ctx) -> Response:
    """The business calendars, the groups using them, and the holiday notices."""
    rows = []
    used: dict[int, list[str]] = {}
    for gs in await GroupSettings.filter(calendar_id__not_isnull=True).prefetch_related("group"):
        used.setdefault(int(gs.calendar_id), []).append(gs.group.name)  # type: ignore[attr-defined]
    for row in await BusinessCalendar.all().order_by("id"):
        cal = bizcal.from_row(row).to_document()
        rows.append({"row": row, "weekly": [(WEEKDAYS[d - 1], _weekly_text(cal["weekly"].get(str(d), [])) or "休息")
                                            for d in range(1, 8)], "groups": used.get(row.id, [])})
    missing = await holiday_notice.missing_notice()
    return render_console(request, ctx, "console/settings/calendars.html", active="settings.calendars", rows=rows,
                          notices=await holiday_notice.list_notices(), missing=missing,
                          can_edit=manager(ctx).is_admin)


def _calendar_values(cal: dict[str, Any]) -> dict[str, Any]:
    weekly = cal.get("weekly") or bizcal.DEFAULT_WEEKLY
    return {"name": cal.get("name", ""), "timezone": cal.get("timezone", "Asia/Shanghai"),
            **{f"weekly_{d}": _weekly_text(weekly.get(str(d), [])) for d in range(1, 8)},
            "public_holidays": cal.get("public_holidays", True),
            "extra_days_off": "\n".join(str(d) for d in cal.get("extra_days_off", [])),
            "extra_workdays": "\n".join(str(d) for d in cal.get("extra_workdays", [])),
            "default": cal.get("default", False)}


@console_page
async def calendar_edit(request: Request, ctx: Ctx) -> Response:
    """Create (``/new``) or change a business calendar."""
    require_admin(ctx, ADMIN_ONLY)
    row = None
    if "calendar_id" in request.path_params:
        row = await BusinessCalendar.get_or_none(id=int(request.path_params["calendar_id"]))
        if row is None:
            raise NotFound("工作日历不存在。")
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "GET":
        values = _calendar_values({**bizcal.from_row(row).to_document(), "default": row.is_default} if row else {})
    else:
        name = row.name if row is not None else ctx.field("name")
        values = {**{k: ctx.field(k) for k in CAL_FIELDS}, "name": name,
                  "public_holidays": bool(ctx.field("public_holidays")), "default": bool(ctx.field("default"))}
        raw = {"name": name, "timezone": ctx.field("timezone") or "Asia/Shanghai",
               "weekly": {str(d): _weekly_from_text(ctx.field(f"weekly_{d}")) for d in range(1, 8)},
               "public_holidays": values["public_holidays"], "extra_days_off": form_list(ctx.field("extra_days_off")),
               "extra_workdays": form_list(ctx.field("extra_workdays")), "default": values["default"]}
        if row is None and await BusinessCalendar.filter(name=name).exists():
            errors["name"] = f"已有名为「{name}」的工作日历"
        elif not name:
            errors["name"] = "请填写日历名称"
        else:
            try:
                await _store(ctx, {"calendars": [raw], "policies": [], "groups": {}}, action="calendar_save",
                             object_type="business_calendar", object_id=str(row.id if row else name),
                             reason=f"{'修改' if row else '新建'}工作日历「{name}」")
            except ValidationFailed as exc:
                errors, general = split_errors(exc, lambda where: None)
                for i, message in enumerate(list(general)):  # "日历 'x': 星期3: …" belongs to that day's box
                    detail = message.split(": ", 1)[-1]
                    day = re.search(r"星期([1-7])", detail)
                    key = (f"weekly_{day.group(1)}" if day else "extra_days_off" if "公司休息日" in detail
                           else "extra_workdays" if "公司加班日" in detail else "timezone" if "时区" in detail
                           else None)
                    if key and key not in errors:
                        errors[key] = detail
                        general[i] = ""
                general = [g for g in general if g]
            else:
                flash(ctx, f"工作日历「{name}」已保存")
                return redirect(CAL)
    title = "新建工作日历" if row is None else f"工作日历 · {row.name}"
    return render_console(request, ctx, "console/settings/calendar_edit.html", active="settings.calendars",
                          title=title, breadcrumb=[("设置", None), ("工作日历", CAL), (title, None)], row=row,
                          values=values, errors=errors, general=general, weekdays=WEEKDAYS,
                          status=422 if errors or general else 200)


@console_page
async def notice_import(request: Request, ctx: Ctx) -> Response:
    """Paste a State Council notice (or its YAML): 检查 shows what it says, 导入 stores it (admins)."""
    actor = require_admin(ctx, NOTICE_ADMIN_ONLY)
    text, year_text = ctx.field("text"), ctx.field("year")
    errors: dict[str, str] = {}
    general: list[str] = []
    preview = None
    status = 200
    if request.method == "POST":
        year = int_or_raw(year_text)
        if isinstance(year, str):
            errors["year"] = "年份应为整数"
        else:
            try:
                document = holiday_notice.parse(text, year=year)
                if ctx.field("check"):
                    preview = {"document": document, "warnings": holiday_notice.law_mismatches(document)}
                else:
                    async with audited(ctx, action="notice_import", object_type="holiday_notice",
                                       object_id=str(document["year"]), reason=document["title"]):
                        result = await holiday_notice.store(document=document, imported_by=f"staff:{actor.staff_id}")
                    warnings = result["warnings"]
                    hint = f"（{len(warnings)} 条提示：{warnings[0]}）" if warnings else ""
                    flash(ctx, f"{document['year']} 年节假日通知已导入{hint}")
                    return redirect(CAL)
            except ValidationFailed as exc:
                general = [str(e) for e in (exc.details or {}).get("errors") or [exc.message]]
        status = 422 if errors or general else 200
    return render_console(request, ctx, "console/settings/notice_import.html", active="settings.calendars",
                          title="导入节假日通知",
                          breadcrumb=[("设置", None), ("工作日历", CAL), ("导入节假日通知", None)],
                          text=text, year=year_text, errors=errors, general=general, preview=preview, status=status)


routes: list[BaseRoute] = [
    Route("/settings/sla", policies_page, methods=["GET"]),
    Route("/settings/sla/new", policy_edit, methods=["GET", "POST"]),
    Route("/settings/sla/{policy_id:int}", policy_edit, methods=["GET", "POST"]),
    Route("/settings/calendars", calendars_page, methods=["GET"]),
    Route("/settings/calendars/new", calendar_edit, methods=["GET", "POST"]),
    Route("/settings/calendars/notice", notice_import, methods=["GET", "POST"]),
    Route("/settings/calendars/{calendar_id:int}", calendar_edit, methods=["GET", "POST"]),
]
