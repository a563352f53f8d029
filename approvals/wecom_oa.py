"""The WeCom approval-app path: oa/applyevent, the sys_approval_change callback, oa/getapprovaldetail.

提交审批申请 https://developer.work.weixin.qq.com/document/path/91853 (the current `process.node_list` shape, one
node per level with `apv_rel` 1 = 或签), 审批状态通知事件 https://developer.work.weixin.qq.com/document/path/91815
(sys_approval_change: WeCom sends it more than once, and SpRecord/Details repeat), 获取审批申请详情
https://developer.work.weixin.qq.com/document/path/91983 (sp_status 1 审批中, 2 已通过, 3 已驳回, 4 已撤销,
6 通过后撤销, 7 已删除, 10 已支付).

Submitting is an outbox row (channel `wecom_oa`, kind `oa_apply`) delivered by `WeComOAAdapter`, which stores the
returned sp_no. A callback is never trusted for its content: the handler reads the approval back with
oa/getapprovaldetail and applies what it says under a row lock, once (a finished request ignores later pushes).
"""

from __future__ import annotations

from typing import Any

import xmltodict

from app.channels.base import DeliveryResult
from app.errors import PermanentChannelError
from app.logs import get_logger
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM, Actor
from app.staff.models import Staff
from app.tickets.models import Ticket
from app.timeutil import utcnow
from app.uow import atomic
from approvals.models import ApprovalRequest, ApprovalStep

log = get_logger(__name__)

APPLY_EVENT = "oa/applyevent"
GET_DETAIL = "oa/getapprovaldetail"
SP_APPROVED, SP_REJECTED = 2, 3
SP_CANCELLED = frozenset({4, 6, 7})


def apply_payload(*, request: ApprovalRequest, requester: Staff, chain: list[Staff], template_id: str,
                  ticket: Ticket, summary: str) -> dict[str, Any]:
    """The oa/applyevent body: our chain as approval nodes, the ticket and reason as form controls."""
    return {
        "creator_userid": requester.userid,
        "template_id": template_id,
        "use_template_approver": 0,
        "choose_department": requester.department_id,  # type: ignore[attr-defined]
        "process": {"node_list": [{"type": 1, "apv_rel": 1, "userid": [s.userid]} for s in chain]},
        "apply_data": {"contents": [
            {"control": "Text", "id": "Text-ticket", "value": {"text": ticket.number}},
            {"control": "Text", "id": "Text-summary", "value": {"text": summary}},
            {"control": "Textarea", "id": "Textarea-reason", "value": {"text": request.reason}},
        ]},
        "summary_list": [
            {"summary_info": [{"text": f"工单 {ticket.number}", "lang": "zh_CN"}]},
            {"summary_info": [{"text": summary[:30], "lang": "zh_CN"}]},
        ],
    }


async def submit(*, request: ApprovalRequest, requester: Staff, chain: list[Staff], template_id: str, ticket: Ticket,
                 summary: str) -> None:
    """Queue the WeCom approval application (delivered after commit by the wecom_oa adapter)."""
    payload = apply_payload(request=request, requester=requester, chain=chain, template_id=template_id,
                            ticket=ticket, summary=summary)
    await outbox.create(channel="wecom_oa", kind="oa_apply", recipient=requester.userid,
                        payload={"approval_id": request.id, "body": payload}, ticket_id=ticket.id,
                        dedupe_key=f"oa_apply:{request.id}")


class WeComOAAdapter:
    """Delivers `oa_apply` rows with oa/applyevent and records the sp_no on the request."""

    kind = "wecom_oa"

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        """Submit one approval application."""
        from app.wecom.work import wecom_api

        if message.kind != "oa_apply":
            raise PermanentChannelError("wecom_oa only submits approvals", code="bad_kind")
        approval_id = int(message.payload["approval_id"])
        request = await ApprovalRequest.get_or_none(id=approval_id)
        if request is None or request.sp_no:
            # already submitted (a retried job after a crash between the call and mark_sent is the risk here;
            # the sp_no check makes the common replay harmless)
            return DeliveryResult(provider_msg_id=request.sp_no if request else None, detail={"skipped": True})
        result = await wecom_api("app").post(APPLY_EVENT, message.payload["body"])
        sp_no = str(result.get("sp_no") or "")
        if not sp_no:
            raise PermanentChannelError("oa/applyevent returned no sp_no", code="no_sp_no")
        await ApprovalRequest.filter(id=approval_id).update(sp_no=sp_no)
        log.info("approval.submitted_to_wecom", approval_id=approval_id, sp_no=sp_no)
        return DeliveryResult(provider_msg_id=sp_no, detail={"sp_no": sp_no})


def sp_no_of(xml: str) -> str | None:
    """The SpNo of a sys_approval_change push."""
    try:
        info = (xmltodict.parse(xml, disable_entities=True).get("xml") or {}).get("ApprovalInfo") or {}
    except Exception:  # malformed XML: nothing to do, and nothing to retry
        return None
    value = info.get("SpNo") or info.get("SpNoStr")
    return str(value) if value else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


async def on_sys_approval_change(push: Any) -> str:
    """The wecom_app handler for sys_approval_change: read the approval back and apply it (idempotent)."""
    sp_no = sp_no_of(push.xml)
    if sp_no is None:
        return "ignored"
    if not await ApprovalRequest.filter(sp_no=sp_no).exists():
        log.info("approval.unknown_sp_no")
        return "ignored"
    from app.wecom.work import wecom_api

    detail = await wecom_api("app").post(GET_DETAIL, {"sp_no": sp_no})
    return await apply_detail(sp_no=sp_no, info=detail.get("info") or {})


async def apply_detail(*, sp_no: str, info: dict[str, Any]) -> str:
    """Bring a request in line with WeCom's approval detail; a finished request changes no more."""
    from approvals import flows
    from approvals.service import _audit, _finish

    status = int(info.get("sp_status") or 0)
    async with atomic():
        req = await ApprovalRequest.filter(sp_no=sp_no).select_for_update().first()
        if req is None:
            return "ignored"
        if req.status != "pending":
            return "duplicate"
        now = utcnow()
        last_actor: Actor = SYSTEM
        last_speech = ""
        for level, node in enumerate(_as_list(info.get("sp_record")), 1):
            for d in _as_list(node.get("details")):
                userid = (d.get("approver") or {}).get("userid")
                node_status = int(d.get("sp_status") or 0)
                if not userid or node_status not in (SP_APPROVED, SP_REJECTED):
                    continue
                staff = await Staff.get_or_none(userid=userid)
                if staff is None:
                    continue
                if not await ApprovalStep.filter(request_id=req.id, level=level, approver_id=staff.id).exists():
                    await ApprovalStep.create(request=req, level=level, approver=staff, created_at=now,
                                              status="approved" if node_status == SP_APPROVED else "rejected",
                                              comment=str(d.get("speech") or "")[:500], decided_at=now)
                    actor = Actor(kind="staff", staff_id=staff.id, name=staff.name)
                    await _audit(req, "approval_step", actor=actor, reason=str(d.get("speech") or ""),
                                 new=f"第{level}级{'同意' if node_status == SP_APPROVED else '驳回'}（企业微信审批）")
                    last_actor, last_speech = actor, str(d.get("speech") or "")
                await ApprovalRequest.filter(id=req.id).update(level=level)
        if status == SP_APPROVED:
            await _finish(req, status="approved", comment=last_speech)
            await flows.on_approved(request=req)
            return "approved"
        if status == SP_REJECTED:
            await _finish(req, status="rejected", comment=last_speech)
            await flows.on_rejected(request=req, comment=last_speech, actor=last_actor)
            return "rejected"
        if status in SP_CANCELLED:
            await _finish(req, status="cancelled")
            await _audit(req, "approval_cancelled", actor=SYSTEM, reason="企业微信审批已撤销")
            return "cancelled"
    return "pending"
