"""设置 · 技能组: the skill groups with department, lead, members, business calendar and assignment strategy.

Name, department, lead and members go through ``app.staff.service.save_group``; the calendar and the assignment
strategy are the group's entry of the SLA document and go through ``sla_config.parse_document`` + ``store`` (what
``gongdan sla import`` and ``PUT /api/v1/sla/config`` do), in the same transaction. Changes are for admins; leads see
the groups.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import NotFound, ValidationFailed
from app.security.service import record_audit
from app.staff import service as staff_service
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import sla_config
from app.tickets.assignment import STRATEGIES
from app.tickets.models import BusinessCalendar, GroupSettings
from app.uow import atomic
from h5.console.settings import manager, require_admin, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["STRATEGY_LABELS", "routes"]

BASE = "/console/settings/groups"
ADMIN_ONLY = "只有管理员可以管理技能组"
STRATEGY_LABELS = {"round_robin": "轮流分配", "least_open": "最少处理中优先", "skills": "按技能匹配",
                   "manual": "手动领取"}
FIELDS = ("name", "department_id", "lead_id", "member_ids", "calendar", "assignment")


async def _choices() -> dict[str, list[tuple[str, str]]]:
    departments = [(str(d.id), d.name) for d in await Department.all().order_by("path", "id")]
    staff = [(str(s.id), f"{s.name}（{s.userid}）") for s in await Staff.filter(status="active").order_by("id")]
    calendars = [(c.name, c.name + ("（默认）" if c.is_default else "")) for c in
                 await BusinessCalendar.all().order_by("id")]
    return {"departments": [("", "（无）"), *departments], "leads": [("", "（无）"), *staff], "staff": staff,
            "calendars": [("", "（使用默认日历）"), *calendars],
            "strategies": [(s, STRATEGY_LABELS[s]) for s in STRATEGIES]}


@console_page
async def groups_page(request: Request, ctx: Ctx) -> Response:
    """Every skill group with its people and settings."""
    groups = await SkillGroup.all().order_by("id").prefetch_related("members", "department", "lead")
    settings = {int(gs.group_id): gs for gs in  # type: ignore[attr-defined]
                await GroupSettings.all().prefetch_related("calendar")}
    rows = []
    for g in groups:
        gs = settings.get(g.id)
        rows.append({"g": g, "members": [m.name for m in g.members if m.status == "active"],
                     "calendar": gs.calendar.name if gs and gs.calendar else "默认日历",
                     "assignment": STRATEGY_LABELS.get(gs.assignment, gs.assignment) if gs else "手动领取（未设置）"})
    return render_console(request, ctx, "console/settings/groups.html", active="settings.groups", rows=rows,
                          can_edit=manager(ctx).is_admin)


async def _form(request: Request, ctx: Ctx, *, group: SkillGroup | None, values: dict[str, Any],
                errors: dict[str, str] | None = None, general: list[str] | None = None,
                status: int = 200) -> Response:
    title = "新建技能组" if group is None else f"技能组 · {group.name}"
    return render_console(request, ctx, "console/settings/group_edit.html", active="settings.groups", title=title,
                          breadcrumb=[("设置", None), ("技能组", BASE), (title, None)], group=group, values=values,
                          errors=errors or {}, general=general or [], choices=await _choices(), status=status)


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@console_page
async def group_edit(request: Request, ctx: Ctx) -> Response:
    """Create a group (``/new``) or change one, with its calendar and assignment strategy."""
    actor = require_admin(ctx, ADMIN_ONLY)
    group = None
    if "group_id" in request.path_params:
        group = await SkillGroup.get_or_none(id=int(request.path_params["group_id"])).prefetch_related("members")
        if group is None:
            raise NotFound("技能组不存在。")
    if request.method == "GET":
        values: dict[str, Any] = {"assignment": "least_open", "member_ids": []}
        if group is not None:
            gs = await GroupSettings.get_or_none(group_id=group.id).prefetch_related("calendar")
            values = {"name": group.name, "department_id": str(group.department_id or ""),  # type: ignore[attr-defined]
                      "lead_id": str(group.lead_id or ""),  # type: ignore[attr-defined]
                      "member_ids": [str(m.id) for m in group.members if m.status == "active"],
                      "calendar": gs.calendar.name if gs and gs.calendar else "",
                      "assignment": gs.assignment if gs else "manual"}
        return await _form(request, ctx, group=group, values=values)
    assert ctx.form is not None
    member_ids = [str(v) for v in ctx.form.getlist("member_ids")]
    values = {name: ctx.field(name) for name in FIELDS if name != "member_ids"}
    values["member_ids"] = member_ids
    try:
        async with atomic():
            saved = await staff_service.save_group(
                actor=actor, group_id=group.id if group else None, name=values["name"],
                department_id=_int(values["department_id"]), lead_id=_int(values["lead_id"]),
                member_ids=[int(v) for v in member_ids if v.isdigit()])
            document = await sla_config.export()
            entry: dict[str, Any] = {"assignment": values["assignment"]}
            if values["calendar"]:
                entry["calendar"] = values["calendar"]
            document["groups"] = {saved.name: entry}  # import leaves the other groups as they are
            await sla_config.store(document=sla_config.parse_document(document))
            await record_audit(actor=actor, action="sla_save", object_type="skill_group", object_id=str(saved.id),
                               reason=f"技能组「{saved.name}」：日历 {values['calendar'] or '默认'}，"
                                      f"分配方式 {STRATEGY_LABELS.get(values['assignment'], values['assignment'])}")
    except ValidationFailed as exc:
        name = values["name"]

        def field_of(where: str) -> str | None:
            if where in FIELDS:
                return where
            for key in ("calendar", "assignment"):
                if where == f"技能组 {name!r}.{key}":
                    return key
            return None

        errors, general = split_errors(exc, field_of)
        return await _form(request, ctx, group=group, values=values, errors=errors, general=general, status=422)
    flash(ctx, f"技能组「{saved.name}」已保存")
    return redirect(BASE)


routes: list[BaseRoute] = [
    Route("/settings/groups", groups_page, methods=["GET"]),
    Route("/settings/groups/new", group_edit, methods=["GET", "POST"]),
    Route("/settings/groups/{group_id:int}", group_edit, methods=["GET", "POST"]),
]
