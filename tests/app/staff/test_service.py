"""Staff and skill-group changes: scope of leads, the admin role against the directory's roles, group membership."""

from __future__ import annotations

import pytest

from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.security.models import AuditLog
from app.security.scope import actor_for
from app.seed import ensure_org
from app.staff import service
from app.staff.models import SkillGroup, Staff


async def test_leads_change_capacity_in_their_scope_only(db: None) -> None:
    people = await ensure_org()
    lead = await actor_for(people["zhangwei"])  # leads department 2 and below
    staff = await service.update_member(actor=lead, staff_id=people["lina"].id, capacity="15")
    assert staff.capacity == 15
    with pytest.raises(NotFound):
        await service.update_member(actor=lead, staff_id=people["chenjing"].id, capacity=15)
    with pytest.raises(PermissionDenied):
        await service.update_member(actor=lead, staff_id=people["lina"].id, admin=True)
    agent = await actor_for(people["lina"])
    with pytest.raises(PermissionDenied):
        await service.update_member(actor=agent, staff_id=people["lina"].id, capacity=1)
    [row] = await AuditLog.all()
    assert row.reason == "李娜：接单上限 20→15"


async def test_taking_admin_away_restores_the_directory_role(db: None) -> None:
    people = await ensure_org()
    admin = await actor_for(people["admin"])
    await service.update_member(actor=admin, staff_id=people["zhangwei"].id, admin=True)
    assert (await Staff.get(id=people["zhangwei"].id)).role == "admin"
    await service.update_member(actor=admin, staff_id=people["zhangwei"].id, admin=False)
    assert (await Staff.get(id=people["zhangwei"].id)).role == "lead"  # leads_department_ids says so
    with pytest.raises(ValidationFailed) as info:
        await service.update_member(actor=admin, staff_id=people["admin"].id, admin=False)
    assert info.value.details["fields"][0]["field"] == "role"
    for bad in (-1, 201, "x", True, 1.5):
        with pytest.raises(ValidationFailed):
            await service.update_member(actor=admin, staff_id=people["lina"].id, capacity=bad)


async def test_save_group_sets_members_and_refuses_bad_references(db: None) -> None:
    people = await ensure_org()
    admin = await actor_for(people["admin"])
    group = await service.save_group(actor=admin, group_id=None, name="夜班组", department_id=2,
                                     lead_id=people["zhangwei"].id, member_ids=[people["lina"].id])
    group = await SkillGroup.get(id=group.id).prefetch_related("members")
    assert [m.userid for m in group.members] == ["lina"]
    with pytest.raises(ValidationFailed) as info:
        await service.save_group(actor=admin, group_id=None, name="夜班组", department_id=99, lead_id=None,
                                 member_ids=[12345])
    assert [f["field"] for f in info.value.details["fields"]] == ["name", "department_id", "member_ids"]
    with pytest.raises(PermissionDenied):
        await service.save_group(actor=await actor_for(people["zhangwei"]), group_id=group.id, name="x",
                                 department_id=None, lead_id=None, member_ids=[])


async def test_active_by_userid_matches_the_case_wecom_returns_and_only_active_members(db: None) -> None:
    people = await ensure_org()
    assert await service.active_by_userid(userid="lina") == people["lina"]
    assert await service.active_by_userid(userid="LiNa") == people["lina"]  # WeCom's case, not the directory's
    assert await service.active_by_userid(userid="nobody") is None
    await Staff.filter(id=people["lina"].id).update(status="inactive")
    assert await service.active_by_userid(userid="lina") is None
    assert await service.active_by_userid(userid="LINA") is None
