"""Skill tags set from the console: cleaned, limited, audited only when they change."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.security.models import AuditLog
from app.security.scope import actor_for
from app.seed import ensure_org
from app.tickets import staffing


async def test_skills_are_cleaned_limited_and_audited_once(db: None) -> None:
    people = await ensure_org()
    admin = await actor_for(people["admin"])
    lina = people["lina"].id
    assert await staffing.set_skills(actor=admin, staff_id=lina, tags=[" 退款", "发票", "退款", ""]) == ["退款", "发票"]
    assert await staffing.set_skills(actor=admin, staff_id=lina, tags=["退款", "发票"]) == ["退款", "发票"]
    assert await AuditLog.all().count() == 1
    assert await staffing.skills_of(staff_ids=[lina, people["admin"].id]) == {lina: ["退款", "发票"]}
    with pytest.raises(ValidationFailed):
        await staffing.set_skills(actor=admin, staff_id=lina, tags=["x" * 33])
    with pytest.raises(ValidationFailed):
        await staffing.set_skills(actor=admin, staff_id=lina, tags=[f"s{i}" for i in range(31)])
