"""Small builders for test data (an org with two sibling departments and a child department)."""

from __future__ import annotations

from typing import Any

from app.customers import service as customers
from app.security.scope import Actor, actor_for
from app.security.service import create_token
from app.staff.models import Department, SkillGroup, Staff


async def org() -> dict[str, Any]:
    """Departments: 1 root; 2 客服部 (child 3 售后组); 4 技术部 (sibling). A group in each of 2, 3, 4."""
    for dept_id, name, parent, path in [
        (1, "公司", None, "/1/"), (2, "客服部", 1, "/1/2/"), (3, "售后", 2, "/1/2/3/"), (4, "技术部", 1, "/1/4/"),
    ]:
        await Department.create(id=dept_id, name=name, parent_id=parent, path=path)
    groups = {
        "service": await SkillGroup.create(name="客服组", department_id=2),
        "aftersales": await SkillGroup.create(name="售后组", department_id=3),
        "tech": await SkillGroup.create(name="技术组", department_id=4),
    }
    people = {
        "admin": await Staff.create(userid="admin", name="管理员", role="admin", department_id=1, department_ids=[1]),
        "lead": await Staff.create(userid="lead", name="组长", role="lead", department_id=2, department_ids=[2],
                                   leads_department_ids=[2]),
        "agent": await Staff.create(userid="agent", name="客服", role="agent", department_id=2, department_ids=[2]),
        "tech": await Staff.create(userid="tech", name="技术", role="agent", department_id=4, department_ids=[4]),
    }
    return {"groups": groups, "people": people}


async def actor(staff: Staff) -> Actor:
    return await actor_for(staff)


async def token(staff: Staff) -> str:
    return await create_token(staff=staff, name="test")


async def customer(name: str = "测试客户", phone: str | None = None) -> Any:
    return await customers.create(name=name, phone=phone)


async def channel_customer(name: str = "渠道客户", handle: str = "u-1") -> tuple[Any, Any]:
    """A 'test' channel account and a customer reachable on it (pairs with the `recording` fixture)."""
    from app.channels.models import ChannelAccount

    account, _ = await ChannelAccount.get_or_create(key="test", defaults={"kind": "test", "name": "测试渠道"})
    cust = await customers.resolve_identity(kind="test_id", value=handle, scope="test", name=name)
    return account, cust
