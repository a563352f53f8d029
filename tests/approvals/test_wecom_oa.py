"""The WeCom approval-app path against the simulator: oa/applyevent, sys_approval_change (duplicated), detail."""

from __future__ import annotations

from app.channels.testing import RecordingAdapter
from app.settings import WorkflowSettings, set_settings
from app.tickets.models import Ticket, TicketEvent
from approvals import service, wecom_oa
from approvals.models import ApprovalRequest, ApprovalStep
from simulator.wecom import oa
from tests.approvals.helpers import actor, org, sim_org, ticket
from tests.wecomenv import WeComEnv, wecom, wecom_server  # noqa: F401


async def test_three_levels_through_wecom_approval_and_a_duplicate_callback_changes_nothing(
        wecom: WeComEnv, recording: RecordingAdapter) -> None:  # noqa: F811
    settings = wecom.settings.with_overrides(
        workflow=WorkflowSettings(approval_oa_templates=(("refund", "TPL-refund-001"),)))
    set_settings(settings)
    sim_org(wecom.sim)
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="refund",
                                reason="质量问题", params={"amount": "6800"})
    assert req is not None and req.channel == "wecom_oa"
    await wecom.settle()
    req = await ApprovalRequest.get(id=req.id)
    assert req.sp_no is not None
    store = oa.oa_store(wecom.sim)
    assert store.applications == [{
        "creator_userid": "xiaoli", "template_id": "TPL-refund-001", "use_template_approver": 0,
        "choose_department": 7,
        "process": {"node_list": [{"type": 1, "apv_rel": 1, "userid": ["chenjing"]},
                                  {"type": 1, "apv_rel": 1, "userid": ["liuyang"]},
                                  {"type": 1, "apv_rel": 1, "userid": ["boss"]}]},
        "apply_data": {"contents": [
            {"control": "Text", "id": "Text-ticket", "value": {"text": t.number}},
            {"control": "Text", "id": "Text-summary", "value": {"text": "退款 6800.00 元"}},
            {"control": "Textarea", "id": "Textarea-reason", "value": {"text": "质量问题"}}]},
        "summary_list": [{"summary_info": [{"text": f"工单 {t.number}", "lang": "zh_CN"}]},
                         {"summary_info": [{"text": "退款 6800.00 元", "lang": "zh_CN"}]}],
    }]

    async def push(create_time: int | None = None) -> None:
        await wecom.app_driver.send_event("sys_approval_change", oa.approval_change_fields(wecom.sim, req.sp_no or ""),
                                          create_time=create_time)
        await wecom.settle()

    oa.decide(wecom.sim, req.sp_no, "chenjing", approve=True, speech="同意")
    await push()
    assert (await ApprovalRequest.get(id=req.id)).status == "pending"
    oa.decide(wecom.sim, req.sp_no, "liuyang", approve=True)
    oa.decide(wecom.sim, req.sp_no, "boss", approve=True, speech="批准")
    await push()
    done = await ApprovalRequest.get(id=req.id)
    assert (done.status, done.decision_comment) == ("awaiting_customer", "批准")
    steps = await ApprovalStep.filter(request_id=req.id).order_by("level").values_list("level", "approver__userid",
                                                                                       "status")
    assert steps == [(1, "chenjing", "approved"), (2, "liuyang", "approved"), (3, "boss", "approved")]
    events_before = await TicketEvent.filter(ticket_id=t.id).count()
    version_before = (await Ticket.get(id=t.id)).version

    # WeCom sends the same change again (an identical body, and one with another CreateTime)
    await push()
    await push(create_time=1_900_000_000)
    assert await wecom_oa.apply_detail(sp_no=req.sp_no, info={"sp_status": 2}) == "duplicate"
    assert await TicketEvent.filter(ticket_id=t.id).count() == events_before
    assert (await Ticket.get(id=t.id)).version == version_before
    assert await ApprovalStep.filter(request_id=req.id).count() == 3


async def test_rejected_in_wecom_returns_the_ticket(wecom: WeComEnv, recording: RecordingAdapter) -> None:  # noqa: F811
    set_settings(wecom.settings.with_overrides(
        workflow=WorkflowSettings(approval_oa_templates=(("urgent", "TPL-urgent"),))))
    sim_org(wecom.sim)
    o = await org()
    p = o["people"]
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=t.id, kind="urgent", reason="着急")
    assert req is not None
    await wecom.settle()
    req = await ApprovalRequest.get(id=req.id)
    oa.decide(wecom.sim, req.sp_no or "", "chenjing", approve=False, speech="先按普通处理")
    await wecom.app_driver.send_event("sys_approval_change", oa.approval_change_fields(wecom.sim, req.sp_no or ""))
    await wecom.settle()
    done = await ApprovalRequest.get(id=req.id)
    assert (done.status, done.decision_comment) == ("rejected", "先按普通处理")
    assert (await Ticket.get(id=t.id)).priority == "normal"
    rejected = await TicketEvent.get(ticket_id=t.id, kind="approval_rejected")
    assert (rejected.reason, rejected.actor_id) == ("先按普通处理", p["chenjing"].id)  # type: ignore[attr-defined]
