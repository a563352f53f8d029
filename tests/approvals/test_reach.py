"""Approvals in reach (issue 10, observation 11): the card opens the approval, a chain too short for the amount and an
SLA escalation with nobody above go to the fallback approvers, and the ticket says so."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.channels.testing import RecordingAdapter
from app.errors import ValidationFailed
from app.outbox.models import OutboxMessage
from app.settings import Settings, set_settings
from app.staff.models import Staff
from app.tickets import sla
from app.tickets.models import TicketEvent
from approvals import service
from approvals.models import ApprovalRequest, ApprovalStep
from tests.app.tickets.sla_helpers import Clock, cn, policy, tech_org
from tests.app.tickets.sla_helpers import ticket as sla_ticket
from tests.approvals.helpers import actor, org, ticket


async def test_the_approval_card_opens_the_approval_page(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(o["people"]["xiaoli"]), ticket_id=t.id, kind="urgent",
                                reason="客户很着急")
    assert req is not None
    card = await OutboxMessage.get(kind="staff_card", dedupe_key__startswith="card:approval:")
    assert card.recipient == "chenjing"
    action = card.payload["template_card"]["card_action"]
    assert action == {"type": 1, "url": f"http://127.0.0.1:8000/h5/auth/wecom?next=%2Fh5%2Fapprovals%2F{req.id}"}


async def test_a_refund_needing_more_levels_than_the_org_chart_has_goes_to_the_fallback(
        db: None, recording: RecordingAdapter) -> None:
    o = await org()
    p = o["people"]
    admin = await Staff.create(userid="admin", name="管理员", role="admin", department_id=1, department_ids=[1])
    t = await ticket(o["tech"])
    # liuyang's department has one leader above it (boss): 1500 needs two levels
    req = await service.request(actor=await actor(p["liuyang"]), ticket_id=t.id, kind="refund", reason="质量问题",
                                params={"amount": "1500"})
    assert req is not None and req.chain == [p["boss"].id, admin.id]
    event = await TicketEvent.get(ticket_id=t.id, kind="approval_fallback")
    assert (event.new, event.reason) == (
        "管理员", "组织架构中只找到 1 级审批人，退款 1500.00 元需要 2 级审批：第 2 级由兜底审批人管理员审批")
    await service.decide(actor=await actor(p["boss"]), approval_id=req.id, approve=True)
    step = await ApprovalStep.get(request_id=req.id, level=2)
    assert (step.approver_id, step.status) == (admin.id, "pending")  # type: ignore[attr-defined]
    assert [r.recipient for r in await OutboxMessage.filter(dedupe_key__startswith="card:approval:").order_by(
        "id")] == ["boss", "admin"]


async def test_the_fallback_setting_names_the_approvers(db: None, recording: RecordingAdapter,
                                                       settings: Settings) -> None:
    set_settings(settings.with_overrides(workflow=replace(settings.workflow, approval_fallback=("cfo", "nobody"))))
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["chenjing"]), ticket_id=t.id, kind="compensation",
                                reason="补偿", params={"amount": "6800"})
    assert req is not None and req.chain == [p["liuyang"].id, p["boss"].id, p["cfo"].id]
    event = await TicketEvent.get(ticket_id=t.id, kind="approval_fallback")
    assert event.reason == "组织架构中只找到 2 级审批人，补偿 6800.00 元需要 3 级审批：第 3 级由兜底审批人财务总监审批"


async def test_without_enough_approvers_the_request_is_refused_and_nothing_changes(
        db: None, recording: RecordingAdapter) -> None:
    o = await org()
    t = await ticket(o["tech"])  # no admin in this org, no fallback configured
    with pytest.raises(ValidationFailed) as info:
        await service.request(actor=await actor(o["people"]["chenjing"]), ticket_id=t.id, kind="refund",
                              reason="退款", params={"amount": "6800"})
    assert (info.value.code, info.value.message) == (
        "not_enough_approvers", "组织架构中只找到 2 级审批人，该金额需要 3 级，且没有可用的兜底审批人，请联系管理员")
    assert await ApprovalRequest.all().count() == 0
    assert await TicketEvent.filter(ticket_id=t.id, kind__startswith="approval").count() == 0
    assert await OutboxMessage.filter(dedupe_key__startswith="card:approval:").count() == 0


async def _escalate_to_step_3(clock: Clock, t: Any) -> None:
    clock.to(cn(2025, 10, 9, 11, 0))
    await sla.check_ticket(ticket_id=t.id)
    clock.to(cn(2025, 10, 9, 11, 30))
    await sla.check_ticket(ticket_id=t.id)
    clock.to(cn(2025, 10, 9, 13, 30))
    await sla.check_ticket(ticket_id=t.id)


async def test_an_sla_escalation_with_nobody_above_goes_to_the_fallback(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    o = await tech_org()
    await Staff.filter(userid="boss").update(status="disabled")  # nobody above the finance department
    admin = await Staff.create(userid="admin", name="管理员", role="admin", department_id=1, department_ids=[1])
    await policy(resolution_minutes=None)
    t = await sla_ticket(group=o["finance"])
    await _escalate_to_step_3(clock, t)
    cards = await OutboxMessage.filter(kind="staff_card", dedupe_key__contains="escalation_3").values_list(
        "recipient", "payload")
    assert [(r, p["textcard"]["title"]) for r, p in cards] == [("admin", "工单超时升级（第3级）：首次响应")]
    event = await TicketEvent.get(ticket_id=t.id, kind="escalation_fallback")
    assert (event.new, event.reason) == (
        "admin", "工单超时升级（第3级）：首次响应：组织架构中没有可通知的上级，已转给兜底审批人管理员")
    assert admin.id


async def test_an_sla_escalation_with_nobody_at_all_still_says_so(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    o = await tech_org()
    await Staff.filter(userid="boss").update(status="disabled")
    await policy(resolution_minutes=None)
    t = await sla_ticket(group=o["finance"])
    await _escalate_to_step_3(clock, t)
    event = await TicketEvent.get(ticket_id=t.id, kind="escalation_fallback")
    assert (event.new, event.reason) == (None, "工单超时升级（第3级）：首次响应：组织架构中没有可通知的上级，"
                                               "也没有可用的兜底审批人，请管理员在控制台「审批设置」中设置兜底审批人")
