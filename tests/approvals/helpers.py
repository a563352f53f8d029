"""An org three levels deep for approval chains: 公司(boss) > 技术支持部(liuyang) > 技术一组(chenjing) > xiaoli."""

from __future__ import annotations

from typing import Any

from app.security.scope import SYSTEM, actor_for
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import service
from app.tickets.models import Ticket
from tests import factories

ORG = [  # userid, name, department, leads
    ("boss", "老板", 1, [1]),
    ("liuyang", "刘洋", 5, [5]),
    ("chenjing", "陈静", 7, [7]),
    ("xiaoli", "小李", 7, []),
    ("cfo", "财务总监", 6, [6]),
]


async def org() -> dict[str, Any]:
    for dept_id, name, parent, path in [(1, "公司", None, "/1/"), (5, "技术支持部", 1, "/1/5/"),
                                        (7, "技术一组", 5, "/1/5/7/"), (6, "财务部", 1, "/1/6/")]:
        await Department.create(id=dept_id, name=name, parent_id=parent, path=path)
    people = {u: await Staff.create(userid=u, name=n, role="lead" if leads else "agent", department_id=d,
                                    department_ids=[d], leads_department_ids=leads) for u, n, d, leads in ORG}
    tech = await SkillGroup.create(name="技术支持组", department_id=7)
    await tech.members.add(people["xiaoli"], people["chenjing"])
    finance = await SkillGroup.create(name="财务组", department_id=6)
    await finance.members.add(people["cfo"])
    return {"people": people, "tech": tech, "finance": finance}


async def actor(staff: Staff) -> Any:
    return await actor_for(staff)


async def ticket(group: SkillGroup, *, channel: bool = True) -> Ticket:
    if channel:
        account, customer = await factories.channel_customer()
        account_id: int | None = account.id
    else:
        customer, account_id = await factories.customer(), None
    return await service.create(actor=SYSTEM, customer_id=customer.id, subject="退款申请", group_id=group.id,
                                channel_account_id=account_id)


def sim_org(sim: Any) -> None:
    """The same people in the simulated WeCom directory (oa/applyevent checks them)."""
    for dept_id, name, parent in [(5, "技术支持部", 1), (7, "技术一组", 5), (6, "财务部", 1)]:
        sim.wecom.departments.pop(dept_id, None)
        sim.wecom.set_department(dept_id, name=name, parentid=parent) if hasattr(sim.wecom, "set_department") \
            else None
    for userid, name, dept, leads in ORG:
        sim.wecom.set_user(userid, name=name, department=[dept], is_leader_in_dept=[1 if leads else 0])
