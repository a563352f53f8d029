"""设置 · 客服成员: members with duty, capacity, skills, role and groups; changing them.

Duty goes through ``assignment.set_on_duty`` (as ``POST /api/v1/staff/{id}/duty``: admins and leads, for anyone;
coming on duty takes waiting tickets), capacity and the admin role through ``app.staff.service.update_member``,
skills through ``app.tickets.staffing.set_skills``; one form's changes are one transaction. Leads see and change the
members of their departments and groups (not the admin role); admins everyone.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from tortoise.expressions import Q

from app.errors import NotFound, ValidationFailed
from app.security.service import record_audit
from app.staff import service as staff_service
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import assignment, staffing
from app.uow import atomic
from h5.console.settings import form_list, manager, split_errors
from h5.console.web import ROLE_LABELS, console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/staff"
PER_PAGE = 50
FIELDS = ("on_duty", "capacity", "skills", "role")


def _scope(ctx: Ctx) -> Q:
    actor = manager(ctx)
    if actor.is_admin:
        return Q()
    q = Q(department_id__in=sorted(actor.department_ids or ())) | Q(groups__id__in=sorted(actor.group_ids or ()))
    return q


async def _member(ctx: Ctx, staff_id: int) -> Staff:
    staff = await Staff.get_or_none(id=staff_id, status="active")
    if staff is None or not await staff_service.in_scope(actor=manager(ctx), staff=staff):
        raise NotFound("成员不存在，或不在你管理的范围内。")
    return staff


@console_page
async def staff_page(request: Request, ctx: Ctx) -> Response:
    """The members (in scope), filtered by name/userid, role and duty, 50 a page."""
    q = request.query_params
    query = Staff.filter(_scope(ctx), status="active").distinct()
    if q.get("q"):
        query = query.filter(Q(name__icontains=q["q"]) | Q(userid__icontains=q["q"]))
    if q.get("role") in ROLE_LABELS:
        query = query.filter(role=q["role"])
    if q.get("duty") in ("1", "0"):
        query = query.filter(on_duty=q["duty"] == "1")
    total = await query.count()
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, int(q["page"]) if q.get("page", "").isdigit() else 1), pages)
    members = await query.order_by("id").offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ids = [m.id for m in members]
    skills = await staffing.skills_of(staff_ids=ids)
    counts = await assignment.open_counts(staff_ids=ids)
    departments = {d.id: d.name for d in await Department.filter(id__in=[m.department_id for m in members  # type: ignore[attr-defined]
                                                                         if m.department_id is not None])}  # type: ignore[attr-defined]
    groups: dict[int, list[str]] = {}
    for group in await SkillGroup.filter(members__id__in=ids).prefetch_related("members"):
        for member in group.members:
            if member.id in ids:
                groups.setdefault(member.id, []).append(group.name)
    rows = [{"m": m, "role": ROLE_LABELS.get(m.role, m.role), "skills": skills.get(m.id, []),
             "open": counts.get(m.id, 0), "department": departments.get(m.department_id, ""),  # type: ignore[attr-defined]
             "groups": sorted(set(groups.get(m.id, [])))} for m in members]
    filters = [
        {"name": "q", "label": "姓名/账号", "value": q.get("q", "")},
        {"name": "role", "label": "角色", "type": "select", "value": q.get("role", ""),
         "options": [("", "全部"), *ROLE_LABELS.items()]},
        {"name": "duty", "label": "值班", "type": "select", "value": q.get("duty", ""),
         "options": [("", "全部"), ("1", "值班中"), ("0", "休息")]},
    ]
    return render_console(request, ctx, "console/settings/staff.html", active="settings.staff", rows=rows,
                          filters=filters, page=page, pages=pages, total=total)


async def _form(request: Request, ctx: Ctx, staff: Staff, *, values: dict[str, Any] | None = None,
                errors: dict[str, str] | None = None, general: list[str] | None = None,
                status: int = 200) -> Response:
    if values is None:
        skills = (await staffing.skills_of(staff_ids=[staff.id])).get(staff.id, [])
        values = {"on_duty": staff.on_duty, "capacity": str(staff.capacity), "skills": "、".join(skills),
                  "role": "1" if staff.role == "admin" else ""}
    title = f"成员设置 · {staff.name}"
    return render_console(request, ctx, "console/settings/staff_edit.html", active="settings.staff", title=title,
                          breadcrumb=[("设置", None), ("客服成员", BASE), (staff.name, None)], staff=staff,
                          values=values, errors=errors or {}, general=general or [], status=status,
                          can_grant=manager(ctx).is_admin, staff_role=ROLE_LABELS.get(staff.role, staff.role))


@console_page
async def staff_edit(request: Request, ctx: Ctx) -> Response:
    """One member's duty, capacity, skills and (admins) the admin role."""
    staff = await _member(ctx, int(request.path_params["staff_id"]))
    if request.method == "GET":
        return await _form(request, ctx, staff)
    actor = manager(ctx)
    on_duty, skills, role = bool(ctx.field("on_duty")), ctx.field("skills"), ctx.field("role")
    values: dict[str, Any] = {"on_duty": on_duty, "capacity": ctx.field("capacity"), "skills": skills, "role": role}
    try:
        async with atomic():
            await staff_service.update_member(actor=actor, staff_id=staff.id, capacity=values["capacity"],
                                              admin=bool(role) if actor.is_admin else None)
            await staffing.set_skills(actor=actor, staff_id=staff.id, tags=form_list(skills))
            await _set_duty(ctx, staff, on_duty)
    except ValidationFailed as exc:
        errors, general = split_errors(exc, lambda f: f if f in FIELDS else None)
        return await _form(request, ctx, staff, values=values, errors=errors, general=general, status=422)
    flash(ctx, f"已保存「{staff.name}」的设置")
    return redirect(BASE)


async def _set_duty(ctx: Ctx, staff: Staff, on_duty: bool) -> int:
    if staff.on_duty == on_duty:
        return 0
    assigned = await assignment.set_on_duty(staff_id=staff.id, on_duty=on_duty)
    await record_audit(actor=manager(ctx), action="staff_duty", object_type="staff", object_id=str(staff.id),
                       reason=f"{staff.name}：{'开始值班' if on_duty else '结束值班'}")
    return assigned


@console_page
async def duty(request: Request, ctx: Ctx) -> Response:
    """Put a member on or off duty from the list (coming on duty takes waiting tickets)."""
    staff = await Staff.get_or_none(id=int(request.path_params["staff_id"]), status="active")
    if staff is None:
        raise NotFound("成员不存在。")
    on_duty = ctx.field("on_duty") == "1"
    async with atomic():
        assigned = await _set_duty(ctx, staff, on_duty)
    taken = f"，分到 {assigned} 张等待中的工单" if assigned else ""
    flash(ctx, f"「{staff.name}」已{'开始值班' if on_duty else '结束值班'}{taken}")
    return redirect(BASE)


routes: list[BaseRoute] = [
    Route("/settings/staff", staff_page, methods=["GET"]),
    Route("/settings/staff/{staff_id:int}", staff_edit, methods=["GET", "POST"]),
    Route("/settings/staff/{staff_id:int}/duty", duty, methods=["POST"]),
]
