"""A member's skill tags (what assignment by skill matches against a ticket's tags and category), set from the
console; checked here once and audited. Duty is ``assignment.set_on_duty``."""

from __future__ import annotations

from app.errors import ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.tickets.models import StaffSkills
from app.uow import atomic

__all__ = ["MAX_SKILLS", "set_skills", "skills_of"]

MAX_SKILLS = 30
MAX_SKILL_LENGTH = 32


async def skills_of(*, staff_ids: list[int]) -> dict[int, list[str]]:
    """Skill tags by staff id (members without any are left out)."""
    rows = await StaffSkills.filter(staff_id__in=staff_ids)
    return {int(r.staff_id): list(r.tags or []) for r in rows}  # type: ignore[attr-defined]


async def set_skills(*, actor: Actor, staff_id: int, tags: list[str]) -> list[str]:
    """Replace a member's skill tags (trimmed, duplicates dropped, order kept); audited when they change."""
    clean: list[str] = []
    for tag in tags:
        tag = str(tag).strip()
        if not tag:
            continue
        if len(tag) > MAX_SKILL_LENGTH:
            message = f"技能「{tag[:10]}…」太长（最多 {MAX_SKILL_LENGTH} 个字）"
            raise ValidationFailed.for_field("skills", message, code="invalid_skill")
        if tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_SKILLS:
        message = f"技能最多 {MAX_SKILLS} 个"
        raise ValidationFailed.for_field("skills", message, code="too_many_skills")
    row = await StaffSkills.get_or_none(staff_id=staff_id)
    if (list(row.tags or []) if row else []) == clean:
        return clean
    async with atomic():
        await StaffSkills.update_or_create(staff_id=staff_id, defaults={"tags": clean})
        await record_audit(actor=actor, action="staff_skills", object_type="staff", object_id=str(staff_id),
                           reason="技能：" + ("、".join(clean) or "（无）"))
    return clean
