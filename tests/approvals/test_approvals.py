"""Escalation approvals: chains from the org chart, the in-app (H5/API) path, timeouts, refunds with the customer's
code, and rejections returning the ticket with the reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app import intake
from app.channels.testing import RecordingAdapter
from app.conversations.models import Message
from app.errors import PermissionDenied
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.settings import Settings
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import set_clock, utcnow
from approvals import service
from approvals.models import ApprovalRequest, ApprovalStep
from tests import factories
from tests.app.tickets.test_closing import inbound
from tests.approvals.helpers import actor, org, ticket


async def approval_cards() -> list[str]:
    rows = await OutboxMessage.filter(kind="staff_card", dedupe_key__startswith="card:approval:").order_by("id")
    return [r.recipient for r in rows]


async def test_chain_climbs_the_org_chart_by_amount(db: None) -> None:
    o = await org()
    xiaoli = o["people"]["xiaoli"]
    assert [s.userid for s in await service.build_chain(requester=xiaoli, levels=3)] == ["chenjing", "liuyang", "boss"]
    assert [s.userid for s in await service.build_chain(requester=o["people"]["chenjing"], levels=3)] == [
        "liuyang", "boss"]
    from decimal import Decimal

    assert [service.levels_for(kind="refund", amount=Decimal(a)) for a in ("300", "1000", "4999.99", "5000")] == [
        1, 2, 2, 3]
    assert service.levels_for(kind="urgent", amount=None) == 1


async def test_three_level_refund_through_the_api_then_the_customers_code(
        db: None, recording: RecordingAdapter, api: object) -> None:
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    tokens = {u: await factories.token(p[u]) for u in ("xiaoli", "chenjing", "liuyang", "boss")}
    client = api  # type: ignore[assignment]
    r = await client.post(f"/api/v1/tickets/{t.id}/approvals", json={  # type: ignore[attr-defined]
        "kind": "refund", "reason": "商品质量问题，全额退款", "params": {"amount": "6800"}},
        headers={"Authorization": f"Bearer {tokens['xiaoli']}"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["status"], body["channel"], body["level"], body["levels"], body["params"]) == (
        "pending", "h5", 1, 3, {"amount": "6800.00"})
    approval_id = body["id"]
    # not your turn
    r = await client.post(f"/api/v1/approvals/{approval_id}/decision", json={"approve": True},  # type: ignore[attr-defined]
                          headers={"Authorization": f"Bearer {tokens['boss']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_turn"
    for who in ("chenjing", "liuyang", "boss"):
        waiting = await client.get("/api/v1/approvals", headers={"Authorization": f"Bearer {tokens[who]}"})  # type: ignore[attr-defined]
        assert [a["id"] for a in waiting.json()["items"]] == [approval_id]
        r = await client.post(f"/api/v1/approvals/{approval_id}/decision", json={"approve": True, "comment": "同意"},  # type: ignore[attr-defined]
                              headers={"Authorization": f"Bearer {tokens[who]}"})
        assert r.status_code == 200, r.text
    final = r.json()
    assert final["status"] == "awaiting_customer"
    assert [(s["level"], s["approver"], s["status"]) for s in final["steps"]] == [
        (1, "chenjing", "approved"), (2, "liuyang", "approved"), (3, "boss", "approved")]
    assert await approval_cards() == ["chenjing", "liuyang", "boss"]
    fresh = await Ticket.get(id=t.id)
    assert fresh.custom_fields["refund"] == {"amount": "6800.00", "status": "awaiting_customer",
                                             "approval_id": approval_id}

    # the customer got a one-time code; a wrong code is just a message, the right one approves the refund
    sent = await OutboxMessage.get(dedupe_key=f"refund-code:{approval_id}")
    code = sent.payload["text"].rsplit("：", 1)[1]
    assert sent.payload["text"] == (f"您的工单 {t.number} 申请退款 6800.00 元。"
                                    f"如确认退款，请在 48 小时内回复验证码：{code}")
    account, _ = await factories.channel_customer()
    await intake.receive(inbound=inbound("000000" if code != "000000" else "111111"), account=account)
    assert (await ApprovalRequest.get(id=approval_id)).status == "awaiting_customer"
    await intake.receive(inbound=inbound(code), account=account)
    assert (await ApprovalRequest.get(id=approval_id)).status == "approved"
    fresh = await Ticket.get(id=t.id)
    assert fresh.custom_fields["refund"]["status"] == "approved"
    kinds: list[Any] = list(await TicketEvent.filter(ticket_id=t.id, kind__startswith="approval").order_by(
        "id").values_list("kind", flat=True))
    assert kinds == ["approval_requested", "approval_step", "approval_step", "approval_step", "approval_approved"]
    # the code is used up
    await intake.receive(inbound=inbound(code), account=account)
    assert await TicketEvent.filter(ticket_id=t.id, kind="approval_approved").count() == 1


async def test_small_refund_needs_no_approval_but_still_the_customer(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    t = await ticket(o["tech"])
    assert await service.request(actor=await actor(o["people"]["xiaoli"]), ticket_id=t.id, kind="refund",
                                 reason="运费", params={"amount": 20}) is None
    req = await ApprovalRequest.get(ticket_id=t.id)
    assert (req.status, req.chain) == ("awaiting_customer", [])


async def test_transfer_to_another_department_is_applied_on_approval(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="transfer",
                                reason="是发票问题", params={"group_id": o["finance"].id})
    assert req is not None and req.chain == [p["chenjing"].id]
    await service.decide(actor=await actor(p["chenjing"]), approval_id=req.id, approve=True)
    fresh = await Ticket.get(id=t.id)
    assert fresh.group_id == o["finance"].id  # type: ignore[attr-defined]
    group_event = await TicketEvent.get(ticket_id=t.id, kind="group_changed")
    assert group_event.reason == "审批通过：转派至财务组"


async def test_rejection_returns_the_ticket_with_the_reason(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="urgent", reason="客户很着急")
    assert req is not None
    done = await service.decide(actor=await actor(p["chenjing"]), approval_id=req.id, approve=False,
                                comment="不符合紧急标准")
    assert (done.status, done.decision_comment) == ("rejected", "不符合紧急标准")
    assert (await Ticket.get(id=t.id)).priority == "normal"
    note = await Message.get(ticket_id=t.id, direction="internal")
    assert note.text == "升级为紧急申请被驳回：不符合紧急标准"
    card = await OutboxMessage.get(dedupe_key=f"approval:{req.id}:rejected")
    assert card.recipient == "xiaoli"
    assert card.payload == {"msgtype": "textcard", "textcard": {
        "title": "审批被驳回：升级为紧急", "description": "驳回理由：不符合紧急标准",
        "url": f"http://127.0.0.1:8000/h5/auth/wecom?next=%2Fh5%2Ftickets%2F{t.number}", "btntxt": "查看"}}
    with pytest.raises(Exception, match="审批已结束"):
        await service.decide(actor=await actor(p["chenjing"]), approval_id=req.id, approve=True)


async def test_a_waiting_approver_is_passed_to_their_superior(db: None, recording: RecordingAdapter,
                                                              settings: Settings) -> None:
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    start = utcnow()
    set_clock(lambda: start)
    try:
        req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="urgent", reason="着急")
        assert req is not None
        set_clock(lambda: start + timedelta(minutes=239))
        assert await service.escalate_overdue() == 0
        set_clock(lambda: start + timedelta(minutes=240))
        assert await service.escalate_overdue() == 1
        fresh = await ApprovalRequest.get(id=req.id)
        assert fresh.chain == [p["liuyang"].id]
        steps = await ApprovalStep.filter(request_id=req.id).order_by("id").values_list("approver__userid", "status")
        assert steps == [("chenjing", "timed_out"), ("liuyang", "pending")]
        with pytest.raises(PermissionDenied):
            await service.decide(actor=await actor(p["chenjing"]), approval_id=req.id, approve=True)
        await service.decide(actor=await actor(p["liuyang"]), approval_id=req.id, approve=True)
        assert (await Ticket.get(id=t.id)).priority == "urgent"
        escalated = await TicketEvent.get(ticket_id=t.id, kind="approval_escalated")
        assert (escalated.new, escalated.reason) == ("刘洋", "陈静 超时未审批")
    finally:
        set_clock(None)
    assert SYSTEM.is_admin


async def test_h5_inbox_lists_what_waits(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="compensation",
                                reason="补偿优惠券", params={"amount": "1200"})
    assert req is not None
    items = await service.list_pending(actor=await actor(p["chenjing"]))
    assert [(i.id, i.ticket_number, i.title, i.summary) for i in items] == [
        (req.id, t.number, "补偿（第1/2级）：补偿 1200.00 元", "补偿优惠券")]
