"""A small org, a calendar-aware policy and a movable clock for the SLA, assignment and approval tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.security.scope import SYSTEM
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import service
from app.tickets.models import SlaPolicy, Ticket
from app.timeutil import CHINA, set_clock
from tests import factories


def cn(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A China-time instant as aware UTC."""
    return datetime(y, mo, d, h, mi, tzinfo=CHINA).astimezone(UTC)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: cn(2025, 9, 30, 16, 0))

    def __post_init__(self) -> None:
        set_clock(lambda: self.now)

    def to(self, when: datetime) -> None:
        self.now = when


async def tech_org() -> dict[str, Any]:
    """公司(1, 老板 boss) > 技术支持部(5, 负责人 liuyang) > 技术支持组 (lead chenjing; members chenjing, xiaoli)."""
    await Department.create(id=1, name="公司", path="/1/")
    await Department.create(id=5, name="技术支持部", parent_id=1, path="/1/5/")
    await Department.create(id=6, name="财务部", parent_id=1, path="/1/6/")
    people = {
        "boss": await Staff.create(userid="boss", name="老板", role="lead", department_id=1, department_ids=[1],
                                   leads_department_ids=[1]),
        "liuyang": await Staff.create(userid="liuyang", name="刘洋", role="lead", department_id=5, department_ids=[5],
                                      leads_department_ids=[5]),
        "chenjing": await Staff.create(userid="chenjing", name="陈静", department_id=5, department_ids=[5]),
        "xiaoli": await Staff.create(userid="xiaoli", name="小李", department_id=5, department_ids=[5]),
        "cfo": await Staff.create(userid="cfo", name="财务总监", role="lead", department_id=6, department_ids=[6],
                                  leads_department_ids=[6]),
    }
    group = await SkillGroup.create(name="技术支持组", department_id=5, lead=people["chenjing"])
    await group.members.add(people["chenjing"], people["xiaoli"])
    finance = await SkillGroup.create(name="财务组", department_id=6)
    await finance.members.add(people["cfo"])
    return {"people": people, "group": group, "finance": finance}


async def policy(**overrides: Any) -> SlaPolicy:
    values: dict[str, Any] = {"name": "标准", "first_response_minutes": 240, "next_response_minutes": 120,
                              "resolution_minutes": 1440, "warn_ratio": 0.8, "escalation_minutes": [0, 30, 60]}
    values.update(overrides)
    return await SlaPolicy.create(**values)


async def ticket(*, group: SkillGroup | None = None, assignee: Staff | None = None, priority: str = "normal",
                 channel: bool = False) -> Ticket:
    if channel:
        account, customer = await factories.channel_customer()
        account_id: int | None = account.id
    else:
        customer, account_id = await factories.customer(), None
    return await service.create(actor=SYSTEM, customer_id=customer.id, subject="App 登录报错", priority=priority,
                                group_id=group.id if group else None, assignee_id=assignee.id if assignee else None,
                                channel_account_id=account_id)
