"""SLA clocks on the business calendar: due times to the minute, pause/resume, warnings, breaches, escalation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app import intake
from app.channels.testing import RecordingAdapter
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service, sla, states
from app.tickets.models import SlaEvent, Ticket, TicketEvent
from tests import factories
from tests.app.tickets.sla_helpers import Clock, cn, policy, tech_org, ticket


def card_title(payload: dict[str, Any]) -> str:
    if payload["msgtype"] == "template_card":
        return str(payload["template_card"]["main_title"]["title"])
    return str(payload["textcard"]["title"])


async def cards() -> list[tuple[str, str]]:
    """SLA cards (the assignment card of the ticket's creation left out)."""
    rows = await OutboxMessage.filter(kind="staff_card").order_by("id")
    return [(r.recipient, card_title(r.payload)) for r in rows if not (r.dedupe_key or "").startswith("card:assigned")]


async def test_due_times_across_national_day_and_a_tiaoxiu_saturday(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))  # Tuesday before 国庆 (10-01..10-08 off, Saturday 10-11 worked)
    org = await tech_org()
    p = await policy()
    t = await Ticket.get(id=(await ticket(group=org["group"])).id)
    assert t.sla_policy_id == p.id  # type: ignore[attr-defined]
    assert t.first_response_due == cn(2025, 10, 9, 11, 0)
    assert t.resolution_due == cn(2025, 10, 11, 16, 0)
    assert t.next_response_due is None
    # the warning at 80 % of 4 h = 3 h 12 min of business time: 2 h on 09-30, then 1 h 12 min on 10-09
    assert t.sla_state["first_response"]["warn_at"] == cn(2025, 10, 9, 10, 12).isoformat()
    assert t.sla_next_check_at == cn(2025, 10, 9, 10, 12)
    assert clock.now == cn(2025, 9, 30, 16, 0)


async def test_due_times_across_a_weekend(db: None) -> None:
    Clock(cn(2025, 9, 19, 17, 30))  # Friday
    org = await tech_org()
    await policy(first_response_minutes=120, resolution_minutes=None)
    t = await Ticket.get(id=(await ticket(group=org["group"])).id)
    assert t.first_response_due == cn(2025, 9, 22, 10, 30)
    assert t.resolution_due is None


async def test_most_specific_policy_wins(db: None) -> None:
    Clock(cn(2025, 9, 22, 10, 0))
    org = await tech_org()
    await policy(name="通用")
    urgent = await policy(name="紧急", priority="urgent", first_response_minutes=30)
    tech_urgent = await policy(name="技术紧急", priority="urgent", group=org["group"], first_response_minutes=15)
    plain = await ticket(priority="urgent")
    assert (await Ticket.get(id=plain.id)).sla_policy_id == urgent.id  # type: ignore[attr-defined]
    tech = await ticket(priority="urgent", group=org["group"])
    t = await Ticket.get(id=tech.id)
    assert t.sla_policy_id == tech_urgent.id  # type: ignore[attr-defined]
    assert t.first_response_due == cn(2025, 9, 22, 10, 15)


async def test_warning_breach_and_the_escalation_ladder_each_once(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    org = await tech_org()
    await policy(resolution_minutes=None)
    t = await ticket(group=org["group"], assignee=org["people"]["xiaoli"])

    clock.to(cn(2025, 10, 9, 10, 11))
    assert await sla.run_due() == 0
    clock.to(cn(2025, 10, 9, 10, 12))
    assert await sla.check_ticket(ticket_id=t.id) == ["first_response:warning"]
    assert await cards() == [("xiaoli", "工单即将超时")]

    clock.to(cn(2025, 10, 9, 11, 0))
    assert await sla.check_ticket(ticket_id=t.id) == ["first_response:breach", "first_response:escalation_1"]
    clock.to(cn(2025, 10, 9, 11, 29))
    assert await sla.check_ticket(ticket_id=t.id) == []
    clock.to(cn(2025, 10, 9, 11, 30))
    assert await sla.check_ticket(ticket_id=t.id) == ["first_response:escalation_2"]
    # step 3 is 60 business minutes after the breach: 11:00-12:00, exactly at the lunch break
    clock.to(cn(2025, 10, 9, 13, 30))
    assert await sla.run_due() == 1
    assert await sla.run_due() == 0

    assert await cards() == [
        ("xiaoli", "工单即将超时"),
        ("xiaoli", "工单超时升级（第1级）：首次响应"),
        ("chenjing", "工单超时升级（第2级）：首次响应"),
        ("liuyang", "工单超时升级（第3级）：首次响应"),
    ]
    fresh = await Ticket.get(id=t.id)
    assert (fresh.priority, fresh.sla_breached, fresh.sla_next_check_at) == ("high", True, None)
    kinds: list[Any] = list(await SlaEvent.filter(ticket_id=t.id).order_by("id").values_list("kind", flat=True))
    assert kinds == ["warning", "breach", "escalation_1", "escalation_2", "escalation_3"]
    audit = await TicketEvent.filter(ticket_id=t.id, kind__in=["sla_breached", "sla_escalated", "priority_changed"]
                                     ).order_by("id").values_list("kind", "old", "new")
    assert audit == [("sla_breached", None, "first_response"), ("sla_escalated", None, "1"),
                     ("sla_escalated", None, "2"), ("priority_changed", "normal", "high"),
                     ("sla_escalated", None, "3")]
    view = await sla.ticket_sla(ticket=fresh)
    assert view["breached"] and view["policy"] == "标准"
    report = await sla.breach_report(since=cn(2025, 10, 1), until=cn(2025, 10, 31))
    assert report == {"items": [{"group_id": org["group"].id, "group": "技术支持组", "clock": "first_response",
                                 "breaches": 1}]}


@pytest.mark.parametrize("anydb", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True)
async def test_two_crons_at_once_escalate_once(anydb: str) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    org = await tech_org()
    await policy(resolution_minutes=None)
    tickets = [await ticket(group=org["group"], assignee=org["people"]["xiaoli"]) for _ in range(5)]
    clock.to(cn(2025, 10, 9, 13, 30))
    await asyncio.gather(sla.run_due(), sla.run_due())
    assert await SlaEvent.filter(kind="breach").count() == 5
    assert await SlaEvent.filter(kind="escalation_3").count() == 5
    # per ticket: the breach came after the warning time, so no warning; three escalation cards
    assert await OutboxMessage.filter(kind="staff_card", dedupe_key__startswith="sla:").count() == 5 * 3
    for t in tickets:
        assert (await Ticket.get(id=t.id)).priority == "high"


async def test_reply_meets_first_response_and_a_late_reply_records_the_breach(db: None) -> None:
    clock = Clock(cn(2025, 9, 22, 10, 0))
    org = await tech_org()
    await policy(first_response_minutes=60)
    on_time = await ticket(group=org["group"])
    late = await ticket(group=org["group"])
    clock.to(cn(2025, 9, 22, 10, 59))
    await service.reply(actor=SYSTEM, ticket_id=on_time.id, text="您好，正在处理")
    clock.to(cn(2025, 9, 22, 11, 5))
    await service.reply(actor=SYSTEM, ticket_id=late.id, text="抱歉久等")
    a, b = await Ticket.get(id=on_time.id), await Ticket.get(id=late.id)
    assert (a.first_response_due, a.sla_breached) == (None, False)
    assert (b.first_response_due, b.sla_breached) == (None, True)
    assert await SlaEvent.filter(ticket_id=late.id).values_list("clock", "kind") == [("first_response", "breach")]


async def test_waiting_for_the_customer_pauses_and_their_reply_resumes(db: None) -> None:
    clock = Clock(cn(2025, 9, 22, 10, 0))  # Monday
    org = await tech_org()
    await policy(first_response_minutes=None, next_response_minutes=None, resolution_minutes=480)
    t = await ticket(group=org["group"])
    assert (await Ticket.get(id=t.id)).resolution_due == cn(2025, 9, 23, 10, 0)
    clock.to(cn(2025, 9, 22, 15, 0))  # 4 business hours used (lunch excluded), 4 left
    t = await Ticket.get(id=t.id)
    await states.transition(ticket_id=t.id, to="pending", expected_version=t.version, actor=SYSTEM)
    paused = await Ticket.get(id=t.id)
    assert (paused.resolution_due, paused.sla_next_check_at) == (None, None)
    assert paused.sla_state["resolution"]["remaining"] == 4 * 3600
    clock.to(cn(2025, 9, 26, 17, 0))  # Friday, the customer answers
    await states.transition(ticket_id=t.id, to="open", expected_version=paused.version, actor=SYSTEM)
    resumed = await Ticket.get(id=t.id)
    # 1 h on Friday, then Sunday 09-28 is a 调休 working day: 3 h that morning
    assert resumed.resolution_due == cn(2025, 9, 28, 12, 0)
    assert resumed.sla_paused_at is None


async def test_customer_message_starts_the_next_response_clock(db: None, recording: RecordingAdapter) -> None:
    from tests.app.tickets.test_closing import inbound

    clock = Clock(cn(2025, 9, 22, 10, 0))
    org = await tech_org()
    await policy(first_response_minutes=60, next_response_minutes=30, resolution_minutes=None)
    t = await ticket(group=org["group"], channel=True)
    await service.reply(actor=SYSTEM, ticket_id=t.id, text="请问是哪个版本？")
    clock.to(cn(2025, 9, 22, 11, 50))
    account, _ = await factories.channel_customer()
    await intake.receive(inbound=inbound("2.3.1 版本"), account=account)
    fresh = await Ticket.get(id=t.id)
    assert fresh.next_response_due == cn(2025, 9, 22, 13, 20)  # 10 min before lunch, 20 after
    await service.reply(actor=SYSTEM, ticket_id=t.id, text="收到")
    assert (await Ticket.get(id=t.id)).next_response_due is None
