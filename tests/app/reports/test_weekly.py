"""The weekly summary: one WeCom card per lead per week with last week's figures and a link to the console."""

from __future__ import annotations

from datetime import date

from app.outbox.models import OutboxMessage
from app.reports import jobs
from app.staff.models import Staff
from app.tickets.models import SlaPolicy
from tests import factories
from tests.app.reports import dataset


async def test_one_card_per_lead_per_week(db: None) -> None:
    data = await factories.org()
    people = data["people"]
    policy = await SlaPolicy.create(name="标准", first_response_minutes=30, resolution_minutes=480)
    await dataset.load(g1=data["groups"]["service"].id, g2=data["groups"]["tech"].id, a1=people["agent"].id,
                       a2=people["tech"].id, policy_id=policy.id)
    await Staff.create(userid="gone", name="离职组长", role="lead", status="disabled")
    monday = dataset.at("2026-11-16", "09:00")
    assert jobs.last_week(monday) == (date(2026, 11, 9), date(2026, 11, 15))
    assert jobs.last_week(dataset.at("2026-11-22", "23:00")) == (date(2026, 11, 9), date(2026, 11, 15))
    assert await jobs.weekly_summary(now=monday) == 1
    assert await jobs.weekly_summary(now=dataset.at("2026-11-18", "10:00")) == 0  # the same week again
    (row,) = await OutboxMessage.all()
    assert (row.channel, row.kind, row.recipient) == ("wecom_app", "staff_card", "lead")
    card = row.payload["template_card"]
    assert card["main_title"] == {"title": "上周服务数据", "desc": "11月09日 - 11月15日"}
    assert card["card_action"]["url"].endswith("/console/reports?from=2026-11-09&to=2026-11-15")
    # the lead's scope is the 客服组 (T1, T2, T5; P1, P2 the week before): 3 created (2 before), conversion 2 of 4
    # conversations, CSAT (5 + 3) / 2 = 4.00 (2.00 before), first response median of [60, 600, 1200] = 10 min
    # (before [900, 1800]: 15 min), SLA met 5 of 6 (before 2 of 3), no callbacks received
    assert card["horizontal_content_list"] == [
        {"keyname": "新建工单", "value": "3（↑1）"}, {"keyname": "转化率", "value": "50.0%（↑50.0%）"},
        {"keyname": "满意度", "value": "4.00（↑2.00）"}, {"keyname": "首响中位", "value": "10分钟（↓5分钟）"},
        {"keyname": "SLA达成", "value": "83.3%（↑16.7%）"}, {"keyname": "接收率", "value": "—"}]
    assert await jobs.weekly_summary(now=dataset.at("2026-11-23", "09:00")) == 1  # next week: a new card
