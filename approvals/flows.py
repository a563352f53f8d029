"""What a decision does to the ticket: a transfer moves it, urgent raises it, a refund waits for the customer's code.

Every change goes through the ticket service (so the optimistic lock, the audit trail and the ticket flows apply)
as the system actor, in the transaction of the decision; the requester is told by a WeCom card.
"""

from __future__ import annotations

from app import events
from app.conversations.models import Message
from app.errors import DomainError
from app.logs import get_logger
from app.security.crypto import keyed_hash
from app.security.scope import SYSTEM, Actor
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from approvals.models import ApprovalRequest
from approvals.service import CODE_TTL, KIND_LABELS, STATUS_LABELS, new_code

log = get_logger(__name__)


async def _tell_requester(request: ApprovalRequest, *, title: str, text: str) -> None:
    from app.notifications import staff as staff_cards

    requester = await Staff.get(id=request.requester_id)  # type: ignore[attr-defined]
    ticket = await Ticket.get(id=request.ticket_id)  # type: ignore[attr-defined]
    await staff_cards.ticket_card(staff=requester, ticket=ticket, title=title, description=text,
                                  dedupe_key=f"approval:{request.id}:{request.status}")


async def _update(ticket_id: int, changes: dict[str, object], reason: str) -> None:
    ticket = await Ticket.get(id=ticket_id)
    await tickets.update(actor=SYSTEM, ticket_id=ticket_id, expected_version=ticket.version,
                         changes={**changes, "reason": reason})


async def on_approved(*, request: ApprovalRequest) -> None:
    """Apply an approved request to its ticket."""
    label = KIND_LABELS[request.kind]
    ticket_id: int = request.ticket_id  # type: ignore[attr-defined]
    if request.kind == "transfer":
        group = await SkillGroup.get(id=request.params["group_id"])
        await _update(ticket_id, {"group_id": group.id, "assignee_id": None}, f"审批通过：转派至{group.name}")
        from app.tickets import assignment

        await assignment.assign(ticket=await Ticket.get(id=ticket_id))
    elif request.kind == "urgent":
        await _update(ticket_id, {"priority": "urgent"}, "审批通过：升级为紧急")
    elif request.kind == "refund":
        await _ask_customer(request)
        await events.emit(events.APPROVAL_DECIDED, ticket_id=ticket_id, approval=request, decision="approved",
                          comment="", actor=SYSTEM)
        return
    else:
        await _mark_money(request, status="approved")
    await TicketEvent.create(ticket_id=ticket_id, kind="approval_approved", actor_kind="system", new=label,
                             data={"approval_id": request.id})
    await _tell_requester(request, title=f"审批已通过：{label}", text=f"您申请的{label}已通过审批。")
    await events.emit(events.APPROVAL_DECIDED, ticket_id=ticket_id, approval=request, decision="approved", comment="",
                      actor=SYSTEM)


async def on_rejected(*, request: ApprovalRequest, comment: str, actor: Actor) -> None:
    """Return the ticket to the requester with the approver's reason."""
    label = KIND_LABELS[request.kind]
    ticket_id: int = request.ticket_id  # type: ignore[attr-defined]
    reason = comment.strip() or "未说明理由"
    await TicketEvent.create(ticket_id=ticket_id, kind="approval_rejected", actor_kind=actor.kind,
                             actor_id=actor.staff_id, new=label, reason=reason[:500], data={"approval_id": request.id})
    await Message.create(ticket_id=ticket_id, direction="internal", author_kind="system", msg_type="text",
                         text=f"{label}申请被驳回：{reason}", customer_id=(await Ticket.get(id=ticket_id)).customer_id)  # type: ignore[attr-defined]
    if request.kind in ("refund", "compensation"):
        await _mark_money(request, status="rejected")
    await _tell_requester(request, title=f"审批被驳回：{label}", text=f"驳回理由：{reason}")
    await events.emit(events.APPROVAL_DECIDED, ticket_id=ticket_id, approval=request, decision="rejected",
                      comment=reason, actor=actor)


async def _mark_money(request: ApprovalRequest, *, status: str) -> None:
    ticket = await Ticket.get(id=request.ticket_id)  # type: ignore[attr-defined]
    fields = dict(ticket.custom_fields or {})
    fields[request.kind] = {"amount": request.params.get("amount"), "status": status, "approval_id": request.id}
    await _update(ticket.id, {"custom_fields": fields},
                  f"{KIND_LABELS[request.kind]}{STATUS_LABELS.get(status, '状态变更')}")


async def _ask_customer(request: ApprovalRequest) -> None:
    """Send the customer a one-time code; the refund is approved when they reply with it."""
    from app.notifications import service as notify
    from app.outbox import service as outbox

    code = new_code()
    await ApprovalRequest.filter(id=request.id).update(
        status="awaiting_customer", customer_code_hash=keyed_hash(f"refund:{request.id}:{code}"),
        customer_code_expires_at=utcnow() + CODE_TTL)
    request.status = "awaiting_customer"
    await _mark_money(request, status="awaiting_customer")
    ticket = await Ticket.get(id=request.ticket_id)  # type: ignore[attr-defined]
    channel, account_id, recipient = await notify.customer_target(ticket)
    text = (f"您的工单 {ticket.number} 申请退款 {request.params.get('amount')} 元。"
            f"如确认退款，请在 48 小时内回复验证码：{code}")
    # the code is in the outbox payload only (delivered, then kept for the audit of what was sent); never logged
    await outbox.create(channel=channel, kind="customer_message", recipient=recipient,
                        payload={"type": "text", "text": text}, channel_account_id=account_id, ticket_id=ticket.id,
                        dedupe_key=f"refund-code:{request.id}")
    await TicketEvent.create(ticket_id=ticket.id, kind="refund_code_sent", actor_kind="system",
                             data={"approval_id": request.id})


async def on_customer_confirmed(*, request: ApprovalRequest) -> None:
    """The customer replied with the code: the refund is approved."""
    await _mark_money(request, status="approved")
    await TicketEvent.create(ticket_id=request.ticket_id, kind="approval_approved", actor_kind="customer",  # type: ignore[attr-defined]
                             new=KIND_LABELS["refund"], reason="客户已回复验证码确认退款",
                             data={"approval_id": request.id})
    await _tell_requester(request, title="退款已确认", text="审批已通过，客户已确认退款。")


async def customer_reply_hook(ticket: Ticket, message: Message) -> bool:
    """Registered with app.tickets.closing: a refund code from the customer is consumed here."""
    from approvals import service

    try:
        return await service.confirm_code(ticket=ticket, text=message.text or "")
    except DomainError:
        log.info("approval.code_refused", ticket_id=ticket.id)
        return False
