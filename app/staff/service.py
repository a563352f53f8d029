"""Changing staff and skill groups from the console: a member's role (admin or as the directory says) and capacity,
and skill groups (name, department, lead, members). Each change is checked here, once, and audited.

Roles: ``lead`` and ``agent`` come from the WeCom directory (a department leader is a lead; ``wecom_sync`` rewrites
them on every sync); only ``admin`` is granted in Gongdan, so that is the one role a page can change: taking it away
gives back the role the directory implies.
"""

from __future__ import annotations

from typing import Any

from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.staff.models import Department, SkillGroup, Staff
from app.uow import atomic

__all__ = ["MAX_CAPACITY", "ROLE_LABELS", "active_by_userid", "in_scope", "save_group", "update_member"]

MAX_CAPACITY = 200
ROLE_LABELS = {"admin": "管理员", "lead": "组长", "agent": "客服"}


async def _ids(query: Any) -> set[int]:
    values: list[Any] = list(await query.values_list("id", flat=True))
    return {int(v) for v in values}


async def active_by_userid(*, userid: str) -> Staff | None:
    """The active staff member a WeCom login names (None: not one of ours, or not active)."""
    staff = await Staff.get_or_none(userid=userid, status="active")
    if staff is None:  # WeCom may return the userid in another case than the directory sync stored
        staff = await Staff.filter(userid__iexact=userid, status="active").first()
    return staff


async def in_scope(*, actor: Actor, staff: Staff) -> bool:
    """Whether ``actor`` manages ``staff``: admins everyone, leads the members of their departments and groups."""
    if actor.is_admin:
        return True
    if actor.department_ids and staff.department_id in actor.department_ids:  # type: ignore[attr-defined]
        return True
    groups = await _ids(SkillGroup.filter(members__id=staff.id))
    return bool(actor.group_ids and groups & set(actor.group_ids))


async def update_member(*, actor: Actor, staff_id: int, capacity: Any = None, admin: bool | None = None) -> Staff:
    """Change a member's capacity (admins and their leads) and admin role (admins); audited. ``capacity`` may be
    anything a form sent: it is checked here."""
    if actor.role not in ("admin", "lead"):
        raise PermissionDenied("只有管理员和组长可以修改成员设置", code="managers_only")
    staff = await Staff.get_or_none(id=staff_id, status="active")
    if staff is None or not await in_scope(actor=actor, staff=staff):
        raise NotFound("成员不存在，或不在你管理的范围内。")
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if capacity is not None:
        value = capacity
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
            raise ValidationFailed.for_field("capacity", f"接单上限应为 0 到 {MAX_CAPACITY} 之间的整数",
                                             code="invalid_capacity")
        if value != staff.capacity:
            changes["capacity"] = value
            notes.append(f"接单上限 {staff.capacity}→{value}")
    if admin is not None:
        role = "admin" if admin else ("lead" if staff.leads_department_ids else "agent")
        if role != staff.role:
            if not actor.is_admin:
                raise PermissionDenied("只有管理员可以设置管理员", code="admin_only")
            if staff.id == actor.staff_id and not admin:
                raise ValidationFailed.for_field("role", "不能取消自己的管理员身份", code="own_admin")
            changes["role"] = role
            notes.append(f"角色 {ROLE_LABELS.get(staff.role, staff.role)}→{ROLE_LABELS[role]}")
    if not changes:
        return staff
    async with atomic():
        await Staff.filter(id=staff.id).update(**changes)
        await record_audit(actor=actor, action="staff_update", object_type="staff", object_id=str(staff.id),
                           reason=f"{staff.name}：{'；'.join(notes)}")
    await staff.refresh_from_db()
    return staff


async def save_group(*, actor: Actor, group_id: int | None, name: str, department_id: int | None,
                     lead_id: int | None, member_ids: list[int]) -> SkillGroup:
    """Create a skill group (``group_id`` None) or change one: name, owning department, lead, members (admins)."""
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理技能组", code="admin_only")
    group = None
    if group_id is not None:
        group = await SkillGroup.get_or_none(id=group_id)
        if group is None:
            raise NotFound("技能组不存在。")
    name = (name or "").strip()
    errors: list[dict[str, str]] = []
    if not 1 <= len(name) <= 64:
        errors.append({"field": "name", "message": "请填写技能组名称（最多 64 个字）"})
    elif await SkillGroup.filter(name=name).exclude(id=group_id or 0).exists():
        errors.append({"field": "name", "message": f"已有名为「{name}」的技能组"})
    if department_id is not None and not await Department.filter(id=department_id).exists():
        errors.append({"field": "department_id", "message": "部门不存在"})
    if lead_id is not None and not await Staff.filter(id=lead_id, status="active").exists():
        errors.append({"field": "lead_id", "message": "组长不存在或已停用"})
    wanted = sorted(set(member_ids))
    found = await _ids(Staff.filter(id__in=wanted, status="active"))
    if len(found) != len(wanted):
        errors.append({"field": "member_ids", "message": "有成员不存在或已停用"})
    if errors:
        raise ValidationFailed(errors[0]["message"], code="invalid_group", details={"fields": errors})
    async with atomic():
        if group is None:
            group = await SkillGroup.create(name=name, department_id=department_id, lead_id=lead_id)
            before: set[int] = set()
        else:
            await SkillGroup.filter(id=group.id).update(name=name, department_id=department_id, lead_id=lead_id)
            before = await _ids(Staff.filter(groups__id=group.id))
        gone, new = before - found, found - before
        if gone:
            await group.members.remove(*await Staff.filter(id__in=sorted(gone)))
        if new:
            await group.members.add(*await Staff.filter(id__in=sorted(new)))
        await record_audit(actor=actor, action="group_save", object_type="skill_group", object_id=str(group.id),
                           reason=f"{'修改' if group_id else '新建'}技能组「{name}」：{len(found)} 名成员"
                                  + (f"（+{len(new)} −{len(gone)}）" if group_id else ""))
    await group.refresh_from_db()
    return group
