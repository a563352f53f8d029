"""设置 · 客服成员: the member list in the viewer's scope, changing duty, capacity, skills and the admin role
through the services (one transaction), errors next to fields, audit rows, and who may do what."""

from __future__ import annotations

import re

from app.security.models import AuditLog
from app.staff.models import Staff
from app.tickets.models import StaffSkills
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/staff"


async def test_admin_sees_everyone_and_can_filter(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE)
    assert r.status_code == 200
    for name in ("管理员", "张伟", "李娜", "王芳", "刘洋", "陈静", "赵磊"):
        assert f"<strong>{name}</strong>" in r.text
    assert "共 7 条" in r.text
    r = await admin.get(BASE, params={"q": "lina"})
    assert "<strong>李娜</strong>" in r.text and "<strong>张伟</strong>" not in r.text and "共 1 条" in r.text
    r = await admin.get(BASE, params={"role": "lead"})
    assert "<strong>张伟</strong>" in r.text and "<strong>刘洋</strong>" in r.text
    assert "<strong>李娜</strong>" not in r.text


async def test_a_lead_sees_and_changes_only_their_people(console: Console) -> None:
    lead = await console.login(LEAD)
    r = await lead.get(BASE)
    assert "<strong>李娜</strong>" in r.text and "<strong>陈静</strong>" not in r.text
    chenjing = console.h5.people["chenjing"]
    assert (await lead.get(f"{BASE}/{chenjing.id}")).status_code == 404
    lina = console.h5.people[AGENT]
    form = await lead.get(f"{BASE}/{lina.id}")
    assert form.status_code == 200 and 'name="role"' not in form.text  # only admins grant admin
    r = await console.post(lead, f"{BASE}/{lina.id}", {"capacity": "12", "skills": "退款", "on_duty": "1",
                                                       "role": "1"}, page=f"{BASE}/{lina.id}")
    assert r.status_code == 303
    staff = await Staff.get(id=lina.id)
    assert (staff.capacity, staff.role) == (12, "agent")


async def test_admin_changes_duty_capacity_skills_and_role_with_audit_rows(console: Console) -> None:
    admin = await console.login(ADMIN)
    lina = console.h5.people[AGENT]
    r = await console.post(admin, f"{BASE}/{lina.id}", {"capacity": "30", "skills": "退款、发票, 退款",
                                                        "role": "1"}, page=f"{BASE}/{lina.id}")
    assert r.status_code == 303 and r.headers["location"] == BASE
    staff = await Staff.get(id=lina.id)
    assert (staff.capacity, staff.role, staff.on_duty) == (30, "admin", False)
    assert (await StaffSkills.get(staff_id=lina.id)).tags == ["退款", "发票"]
    audit = {row.action: row.reason for row in await console.audit_rows()}
    assert audit["staff_update"] == "李娜：接单上限 20→30；角色 客服→管理员"
    assert audit["staff_skills"] == "技能：退款、发票"
    assert audit["staff_duty"] == "李娜：结束值班"
    assert "已保存「李娜」的设置" in (await admin.get(BASE)).text
    # taking admin away gives back the role the directory implies
    await console.post(admin, f"{BASE}/{lina.id}", {"capacity": "30", "skills": "退款、发票", "on_duty": "1"},
                       page=f"{BASE}/{lina.id}")
    assert (await Staff.get(id=lina.id)).role == "agent"


async def test_bad_input_changes_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    lina = console.h5.people[AGENT]
    for capacity in ("很多", "999", "-1"):
        r = await console.post(admin, f"{BASE}/{lina.id}", {"capacity": capacity, "skills": "退款"},
                               page=f"{BASE}/{lina.id}")
        assert r.status_code == 422
        assert re.search(r'id="e-capacity">接单上限应为 0 到 200 之间的整数<', r.text)
        assert f'value="{capacity}"' in r.text
    r = await console.post(admin, f"{BASE}/{lina.id}", {"capacity": "20", "skills": "长" * 40, "on_duty": ""},
                           page=f"{BASE}/{lina.id}")
    assert r.status_code == 422 and re.search(r'id="e-skills">技能「长+…」太长', r.text)
    staff = await Staff.get(id=lina.id)
    assert (staff.capacity, staff.on_duty) == (20, True)  # the duty change rolled back with the bad skills
    assert not await StaffSkills.exists() and not await AuditLog.exists()


async def test_an_admin_cannot_drop_their_own_admin_role(console: Console) -> None:
    admin = await console.login(ADMIN)
    me = console.h5.people[ADMIN]
    r = await console.post(admin, f"{BASE}/{me.id}", {"capacity": "20", "on_duty": "1"}, page=f"{BASE}/{me.id}")
    assert r.status_code == 422 and re.search(r'id="e-role">不能取消自己的管理员身份<', r.text)
    assert (await Staff.get(id=me.id)).role == "admin"


async def test_duty_toggle_from_the_list(console: Console) -> None:
    lead = await console.login(LEAD)
    lina = console.h5.people[AGENT]
    r = await console.post(lead, f"{BASE}/{lina.id}/duty", {"on_duty": "0"}, page=BASE)
    assert r.status_code == 303
    assert (await Staff.get(id=lina.id)).on_duty is False
    [row] = await console.audit_rows("staff_duty")
    assert row.reason == "李娜：结束值班" and row.staff_id == console.h5.people[LEAD].id
    assert "「李娜」已结束值班" in (await lead.get(BASE)).text


async def test_agents_get_the_403_page(console: Console) -> None:
    agent = await console.login(AGENT)
    lina = console.h5.people[AGENT]
    for path in (BASE, f"{BASE}/{lina.id}"):
        r = await agent.get(path)
        assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text
