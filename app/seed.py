"""Demo data for the embedded mode: an org chart, staff, skill groups, customers and a few tickets."""

from __future__ import annotations

from typing import Any

from app import intake
from app.channels.models import ChannelAccount
from app.customers import service as customers
from app.security.scope import SYSTEM
from app.staff.models import Department, SkillGroup, Staff
from app.tickets.models import Ticket

DEPARTMENTS: list[tuple[int, str, int | None]] = [
    (1, "示例科技有限公司", None),
    (2, "客户服务部", 1),
    (3, "一线客服组", 2),
    (4, "售后服务组", 2),
    (5, "技术支持部", 1),
    (6, "财务部", 1),
]

STAFF: list[dict[str, Any]] = [
    {"userid": "admin", "name": "管理员", "role": "admin", "department_id": 1, "can_reveal": True},
    {"userid": "zhangwei", "name": "张伟", "role": "lead", "department_id": 2, "leads": [2]},
    {"userid": "lina", "name": "李娜", "role": "agent", "department_id": 3},
    {"userid": "wangfang", "name": "王芳", "role": "agent", "department_id": 4},
    {"userid": "liuyang", "name": "刘洋", "role": "lead", "department_id": 5, "leads": [5]},
    {"userid": "chenjing", "name": "陈静", "role": "agent", "department_id": 5},
    {"userid": "zhaolei", "name": "赵磊", "role": "agent", "department_id": 6},
]

#: group name -> (owning department, member userids)
GROUPS: dict[str, tuple[int, list[str]]] = {
    "一线客服组": (3, ["lina"]),
    "售后组": (4, ["wangfang"]),
    "技术支持组": (5, ["chenjing", "liuyang"]),
    "财务组": (6, ["zhaolei"]),
}


async def ensure_org() -> dict[str, Staff]:
    """Create the demo departments, staff and groups if missing (idempotent)."""
    paths: dict[int, str] = {}
    for dept_id, name, parent in DEPARTMENTS:
        paths[dept_id] = (paths[parent] if parent else "/") + f"{dept_id}/"
        await Department.update_or_create(id=dept_id, defaults={"name": name, "parent_id": parent,
                                                                 "path": paths[dept_id]})
    people: dict[str, Staff] = {}
    for spec in STAFF:
        staff, _ = await Staff.update_or_create(
            userid=spec["userid"],
            defaults={
                "name": spec["name"], "role": spec["role"], "department_id": spec["department_id"],
                "department_ids": [spec["department_id"]], "leads_department_ids": spec.get("leads", []),
                "can_reveal": spec.get("can_reveal", False), "status": "active",
            },
        )
        people[staff.userid] = staff
    for name, (dept_id, members) in GROUPS.items():
        group, _ = await SkillGroup.get_or_create(name=name, defaults={"department_id": dept_id})
        for userid in members:
            await group.members.add(people[userid])
    return people


async def seed_demo(*, month: bool = False) -> dict[str, Any]:
    """Load the demo organisation, customers and tickets; does nothing twice. ``month``: also a month of traffic
    through the real flows for the console's dashboards (app.reports.demo; `make run` asks for it)."""
    people = await ensure_org()
    from app.tickets.demo import seed_workflow

    await seed_workflow()  # routing rules, calendars, SLA policies, group assignment (issue 6)
    from app.kb.demo import seed_articles

    await seed_articles()  # knowledge-base articles the bot answers from (issue 7)
    if await Ticket.exists():
        return {"created": False, "staff": len(people)}
    groups = {g.name: g for g in await SkillGroup.all()}
    samples = [
        ("王先生", "13812345678", "订单 2026112500001 退款还没到账", "退款", "售后组", "high", "2026112500001"),
        ("李女士", "13987654321", "App 登录一直报错 500", "故障", "技术支持组", "normal", None),
        ("赵先生", None, "需要开具增值税专用发票", "发票", "财务组", "normal", None),
        ("孙女士", "15011112222", "快递三天没有更新物流信息", "物流", "一线客服组", "low", None),
    ]
    for name, phone, subject, category, group, priority, order_no in samples:
        customer = await customers.create(name=name, phone=phone)
        await intake.staff_ticket(
            actor=SYSTEM, customer=customer, subject=subject, description=subject, category=category,
            priority=priority, group_id=groups[group].id, order_no=order_no, assign_to_self=False, source="api")
    result: dict[str, Any] = {"created": True, "staff": len(people), "tickets": len(samples)}
    if month:
        result["month"] = await _seed_month()
    return result


#: the demo web chat site `gongdan run` embeds on the simulator's shop page (/_sim/shop)
DEMO_SITE_KEY = "demo-shop"
DEMO_SITE_NAME = "演示商城"
DEMO_SITE_GROUP = "一线客服组"


async def seed_webchat_site(*, origin: str) -> ChannelAccount:
    """The demo web chat site, ``origin`` (the simulator's) allowed to embed it, saved through the console's service;
    on a restart only a new origin is added (a changed simulator port), keeping what the console set."""
    from app.channels.webchat import service as webchat
    from app.channels.webchat.accounts import KIND, normalise_origin

    site = await ChannelAccount.get_or_none(key=DEMO_SITE_KEY, kind=KIND)
    if site is None:
        # the front line answers the website: its calendar (客服全周) has the chat open every day, not only Mon-Fri
        group = await SkillGroup.get_or_none(name=DEMO_SITE_GROUP)
        return await webchat.save_site(actor=SYSTEM, body=webchat.WebchatSiteIn(
            key=DEMO_SITE_KEY, name=DEMO_SITE_NAME, origins=[origin], group_id=group.id if group else None))
    config: dict[str, Any] = site.config or {}
    origins = list(config.get("origins") or [])
    if normalise_origin(origin) in origins:
        return site  # nothing to change: no audit row on every restart
    kept = {name: config[name] for name in ("bot", "group_id", "per_visitor", "per_ip", "max_chars",
                                           "verify_mailbox") if config.get(name) is not None}
    return await webchat.save_site(actor=SYSTEM, body=webchat.WebchatSiteIn(
        key=DEMO_SITE_KEY, name=site.name, origins=[*origins, origin], **kept))


async def _seed_month() -> dict[str, Any]:
    """A month of traffic, with the listeners wired (SLA clocks, assignment, rollups), then the rollups built."""
    from app.reports import jobs as report_jobs
    from app.reports.demo import seed_month
    from app.setup import setup

    setup()
    summary = await seed_month()
    await report_jobs.rebuild(since=None)
    return summary.as_dict()
