"""设置 · 技能组: list, create and change a group (people through the staff service, calendar and assignment through
the SLA document's validator) in one transaction, errors next to fields, audit rows, roles."""

from __future__ import annotations

import re
from typing import Any

from app.security.models import AuditLog
from app.staff.models import SkillGroup
from app.tickets import sla_config
from app.tickets.models import BusinessCalendar, GroupSettings
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/groups"


async def _calendar() -> BusinessCalendar:
    document = sla_config.parse_document({"calendars": [{"name": "标准工作日", "default": True}]})
    await sla_config.store(document=document)
    return await BusinessCalendar.get(name="标准工作日")


async def test_list_shows_groups_people_and_settings(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE)
    assert r.status_code == 200
    for name in ("一线客服组", "售后组", "技术支持组", "财务组"):
        assert f"<strong>{name}</strong>" in r.text
    assert "陈静、刘洋" in r.text or "刘洋、陈静" in r.text
    lead = await console.login(LEAD)
    r = await lead.get(BASE)
    assert r.status_code == 200 and "新建技能组" not in r.text
    assert (await lead.get(BASE + "/new")).status_code == 403
    agent = await console.login(AGENT)
    assert (await agent.get(BASE)).status_code == 403


async def test_create_a_group_with_members_calendar_and_strategy(console: Console) -> None:
    await _calendar()
    admin = await console.login(ADMIN)
    p = console.h5.people
    r = await console.post(admin, BASE + "/new", {
        "name": "VIP 组", "department_id": "2", "lead_id": str(p[LEAD].id),
        "member_ids": [str(p["lina"].id), str(p["wangfang"].id)], "calendar": "标准工作日",
        "assignment": "skills"}, page=BASE + "/new")
    assert r.status_code == 303 and r.headers["location"] == BASE
    group = await SkillGroup.get(name="VIP 组").prefetch_related("members")
    assert sorted(m.userid for m in group.members) == ["lina", "wangfang"]
    assert (group.department_id, group.lead_id) == (2, p[LEAD].id)  # type: ignore[attr-defined]
    gs = await GroupSettings.get(group_id=group.id).prefetch_related("calendar")
    assert (gs.assignment, gs.calendar.name if gs.calendar else None) == ("skills", "标准工作日")
    reasons = {row.action: row.reason for row in await console.audit_rows()}
    assert reasons["group_save"] == "新建技能组「VIP 组」：2 名成员"
    assert reasons["sla_save"] == "技能组「VIP 组」：日历 标准工作日，分配方式 按技能匹配"
    page = (await admin.get(BASE)).text
    assert "技能组「VIP 组」已保存" in page and "按技能匹配" in page


async def test_change_members_and_rename(console: Console) -> None:
    admin = await console.login(ADMIN)
    group = await SkillGroup.get(name="财务组")
    r = await console.post(admin, f"{BASE}/{group.id}", {
        "name": "财务与发票组", "department_id": "6", "member_ids": [str(console.h5.people["lina"].id)],
        "assignment": "round_robin"}, page=f"{BASE}/{group.id}")
    assert r.status_code == 303
    group = await SkillGroup.get(id=group.id).prefetch_related("members")
    assert group.name == "财务与发票组" and [m.userid for m in group.members] == ["lina"]
    assert (await GroupSettings.get(group_id=group.id)).assignment == "round_robin"
    assert (await console.audit_rows("group_save"))[0].reason == "修改技能组「财务与发票组」：1 名成员（+1 −1）"


async def test_bad_input_changes_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    group = await SkillGroup.get(name="财务组")
    before = await SkillGroup.get(id=group.id).prefetch_related("members")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "售后组"}, "name", "已有名为「售后组」的技能组"),
        ({"name": ""}, "name", "请填写技能组名称（最多 64 个字）"),
        ({"lead_id": "9999"}, "lead_id", "组长不存在或已停用"),
        ({"member_ids": ["9999"]}, "member_ids", "有成员不存在或已停用"),
        ({"calendar": "没有的日历"}, "calendar", "文档中没有日历 &#39;没有的日历&#39;"),
        ({"assignment": "random"}, "assignment", "应为 round_robin, least_open, skills, manual 之一"),
    ]
    for change, field, message in cases:
        data = {"name": "财务组", "department_id": "6", "assignment": "manual", **change}
        r = await console.post(admin, f"{BASE}/{group.id}", data, page=f"{BASE}/{group.id}")
        assert r.status_code == 422, change
        assert re.search(rf'id="e-{field}">{re.escape(message)}<', r.text), (change, r.text[-3000:])
    after = await SkillGroup.get(id=group.id).prefetch_related("members")
    assert (after.name, [m.id for m in after.members]) == (before.name, [m.id for m in before.members])
    assert not await GroupSettings.filter(group_id=group.id).exists() and not await AuditLog.exists()
