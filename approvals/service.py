"""Approval requests: who must approve (the WeCom org chart), asking, deciding, timing out, refund confirmation.

Kinds: `transfer` (to a group of another department), `urgent` (raise the priority to urgent), `refund` and
`compensation` (above APPROVAL_THRESHOLD yuan; APPROVAL_LEVELS says how many levels up the chain climbs for an
amount). The chain starts at the leader of the requester's department and climbs the department tree (leaders are
`Staff.leads_department_ids`, mirrored from WeCom's is_leader_in_dept). Kinds with a WeCom approval template (the
console's 审批设置, else APPROVAL_OA_TEMPLATES) go to WeCom's approval app instead (approvals.wecom_oa); the others
are decided in the H5 approvals page or the API.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.expressions import F

from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.logs import get_logger
from app.security.crypto import keyed_hash
from app.security.scope import SYSTEM, Actor
from app.settings import get_settings
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.fallback import fallback_approvers
from app.tickets.fallback import names as fallback_names
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from app.uow import atomic
from approvals import policy as approval_policy
from approvals.models import ApprovalRequest, ApprovalStep

log = get_logger(__name__)

KINDS = ("transfer", "urgent", "refund", "compensation")
KIND_LABELS = {"transfer": "跨部门转派", "urgent": "升级为紧急", "refund": "退款", "compensation": "补偿"}
#: what a request's status reads as wherever people see it (timeline reasons, pages)
STATUS_LABELS = {"pending": "审批中", "awaiting_customer": "待客户确认", "approved": "已通过", "rejected": "已驳回",
                 "cancelled": "已撤销", "expired": "已过期"}
MONEY_KINDS = ("refund", "compensation")
CODE_TTL = timedelta(hours=48)


def amount_of(params: dict[str, Any]) -> Decimal:
    """The amount in yuan of a money request (ValidationFailed when missing or not positive)."""
    try:
        amount = Decimal(str(params.get("amount")))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationFailed("请填写金额", code="amount_required") from exc
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed("金额必须大于 0", code="invalid_amount")
    return amount.quantize(Decimal("0.01"))


def levels_for(*, kind: str, amount: Decimal | None,
               levels_table: tuple[tuple[Any, int], ...] | None = None) -> int:
    """How many approvers the chain has: one, or more for larger amounts (``levels_table``, by default
    APPROVAL_LEVELS; ``approvals.policy`` gives the one in force)."""
    if kind not in MONEY_KINDS or amount is None:
        return 1
    levels = 1
    table = levels_table if levels_table is not None else get_settings().workflow.approval_levels
    for minimum, count in table:
        if amount >= Decimal(str(minimum)):
            levels = count
    return levels


async def _leaders_above(department_id: int | None, *, exclude: set[int]) -> list[Staff]:
    """Leaders from the department up to the root, nearest first, one per department, skipping `exclude`."""
    if department_id is None:
        return []
    dept = await Department.get_or_none(id=department_id)
    if dept is None:
        return []
    path = [int(x) for x in dept.path.strip("/").split("/") if x][::-1] or [dept.id]
    people = await Staff.filter(status="active").order_by("id")
    out: list[Staff] = []
    for dept_id in path:
        for person in people:
            if dept_id in (person.leads_department_ids or []) and person.id not in exclude:
                if person.id not in {p.id for p in out}:
                    out.append(person)
                break
    return out


async def build_chain(*, requester: Staff, levels: int) -> list[Staff]:
    """The approvers from the org chart: the leader of the requester's department, then the next levels up."""
    chain = await _leaders_above(requester.department_id, exclude={requester.id})  # type: ignore[attr-defined]
    return chain[:levels]


@dataclass(frozen=True)
class ChainPlan:
    """The approvers of a request: the org chart's leaders, then fallback approvers for the levels it lacks."""

    approvers: list[Staff]
    #: how many came from the org chart (the rest are fallback approvers)
    from_org: int
    levels: int

    @property
    def fallback(self) -> list[Staff]:
        return self.approvers[self.from_org:]

    def reason(self, what: str) -> str:
        """The Chinese timeline reason for the fallback levels."""
        first, last = self.from_org + 1, self.levels
        span = f"第 {first} 级" if first == last else f"第 {first}-{last} 级"
        who = f"兜底审批人{fallback_names(self.fallback)}"
        if self.from_org == 0:
            return f"组织架构中找不到审批人：{what}由{who}审批"
        return f"组织架构中只找到 {self.from_org} 级审批人，{what}需要 {self.levels} 级审批：{span}由{who}审批"


async def plan_chain(*, requester: Staff, levels: int) -> ChainPlan:
    """The org chart's leaders; levels it cannot reach go to the fallback approvers (ValidationFailed when even
    they are too few)."""
    chain = await build_chain(requester=requester, levels=levels)
    found = len(chain)
    if found < levels:
        spare = await fallback_approvers(exclude={requester.id} | {s.id for s in chain})
        chain += spare[:levels - found]
    if len(chain) < levels:
        if found == 0:
            raise ValidationFailed("组织架构中找不到审批人，且没有可用的兜底审批人，请联系管理员", code="no_approver")
        raise ValidationFailed(f"组织架构中只找到 {found} 级审批人，该金额需要 {levels} 级，且没有可用的兜底审批人，"
                               "请联系管理员", code="not_enough_approvers")
    return ChainPlan(approvers=chain, from_org=found, levels=levels)


async def superior_of(*, staff: Staff, exclude: set[int]) -> Staff | None:
    """The next leader above a staff member (a timed-out approver's stand-in)."""
    led = [int(d) for d in (staff.leads_department_ids or [])]
    start = led[0] if led else staff.department_id  # type: ignore[attr-defined]
    above = await _leaders_above(start, exclude=exclude | {staff.id})
    return above[0] if above else None


def _summary(kind: str, params: dict[str, Any], *, group_name: str | None = None) -> str:
    if kind == "transfer":
        return f"转派至「{group_name or params.get('group_id')}」"
    if kind == "urgent":
        return "优先级升级为紧急"
    return f"{KIND_LABELS[kind]} {params.get('amount')} 元"


async def oa_template(kind: str) -> str | None:
    """The WeCom approval template for a kind, when that kind goes through WeCom's approval app (console first)."""
    return dict((await approval_policy.current()).oa_templates).get(kind)


async def request(*, actor: Actor, ticket_id: int, kind: str, reason: str,
                  params: dict[str, Any] | None = None) -> ApprovalRequest | None:
    """Ask for an approval; None when the change needs none and was applied at once."""
    if actor.staff_id is None:
        raise PermissionDenied("只有员工可以发起审批", code="staff_only")
    if kind not in KINDS:
        raise ValidationFailed(f"审批类型必须是 {', '.join(KINDS)} 之一", code="invalid_kind")
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("请填写申请理由", code="reason_required")
    params = dict(params or {})
    ticket = await tickets.get(actor=actor, ticket_id=ticket_id)
    requester = await Staff.get(id=actor.staff_id)
    amount: Decimal | None = None
    group_name = None
    needs = True
    if kind == "transfer":
        target = await SkillGroup.get_or_none(id=params.get("group_id"))
        if target is None:
            raise ValidationFailed("目标技能组不存在", code="unknown_group")
        if target.id == ticket.group_id:  # type: ignore[attr-defined]
            raise ValidationFailed("工单已在该技能组", code="same_group")
        current = await SkillGroup.get_or_none(id=ticket.group_id) if ticket.group_id else None  # type: ignore[attr-defined]
        params = {"group_id": target.id}
        group_name = target.name
        needs = current is None or current.department_id != target.department_id  # type: ignore[attr-defined]
    elif kind == "urgent":
        if ticket.priority == "urgent":
            raise ValidationFailed("工单已是紧急", code="already_urgent")
        params = {}
    else:
        amount = amount_of(params)
        params = {"amount": str(amount)}
        needs = amount > (await approval_policy.current()).threshold
    if await ApprovalRequest.filter(ticket_id=ticket.id, kind=kind, status="pending").exists():
        raise InvalidTransition("该工单已有同类审批在进行中", code="approval_pending")
    now = utcnow()
    async with atomic():
        table = (await approval_policy.current()).levels
        plan = await plan_chain(requester=requester, levels=levels_for(kind=kind, amount=amount,
                                                                       levels_table=table)) if needs else None
        chain = plan.approvers if plan else []
        template = await oa_template(kind) if needs else None
        req = await ApprovalRequest.create(
            ticket_id=ticket.id, kind=kind, requester=requester, reason=reason[:500], params=params,
            channel="wecom_oa" if template else "h5", chain=[s.id for s in chain], created_at=now,
            status="pending" if needs else "approved", decided_at=None if needs else now,
        )
        await _audit(req, "approval_requested", actor=actor, reason=reason,
                     new=_summary(kind, params, group_name=group_name))
        if plan is not None and plan.fallback:
            await _audit(req, "approval_fallback", actor=SYSTEM, new=fallback_names(plan.fallback),
                         reason=plan.reason(_summary(kind, params, group_name=group_name) if amount else ""),
                         data={"levels": plan.levels, "from_org": plan.from_org})
        if not needs:
            from approvals import flows

            await flows.on_approved(request=req)
            return None
        if template:
            from approvals import wecom_oa

            await wecom_oa.submit(request=req, requester=requester, chain=chain, template_id=template,
                                  ticket=ticket, summary=_summary(kind, params, group_name=group_name))
        else:
            await _open_step(req, level=1, approver=chain[0], ticket=ticket)
    log.info("approval.requested", approval_id=req.id, kind=kind, channel=req.channel, levels=len(chain))
    return req


async def _audit(req: ApprovalRequest, kind: str, *, actor: Actor, reason: str = "", new: str | None = None,
                 data: dict[str, Any] | None = None) -> None:
    await TicketEvent.create(ticket_id=req.ticket_id, kind=kind, actor_kind=actor.kind,  # type: ignore[attr-defined]
                             actor_id=actor.staff_id, new=new, reason=reason[:500],
                             data={"approval_id": req.id, "approval_kind": req.kind, **(data or {})})


async def _open_step(req: ApprovalRequest, *, level: int, approver: Staff, ticket: Ticket) -> None:
    now = utcnow()
    await ApprovalStep.create(request=req, level=level, approver=approver, created_at=now)
    due = now + timedelta(minutes=(await approval_policy.current()).timeout_minutes)
    await ApprovalRequest.filter(id=req.id).update(level=level, step_due_at=due)
    req.level, req.step_due_at = level, due
    from app.notifications import staff as staff_cards

    params = req.params or {}
    group = await SkillGroup.get_or_none(id=params["group_id"]) if "group_id" in params else None
    await staff_cards.approval_waiting(
        ticket=ticket, approver=approver, approval_id=req.id, level=level,
        summary=f"{_summary(req.kind, params, group_name=group.name if group else None)}：{req.reason}"[:120])


async def get(*, actor: Actor, approval_id: int) -> ApprovalRequest:
    """An approval the actor may see: they asked, they are in the chain, or they see its ticket."""
    req = await ApprovalRequest.get_or_none(id=approval_id)
    if req is None:
        raise NotFound("审批不存在")
    if actor.is_admin or actor.staff_id == req.requester_id or actor.staff_id in (req.chain or []):  # type: ignore[attr-defined]
        return req
    if await Ticket.filter(actor.ticket_filter(), id=req.ticket_id).exists():  # type: ignore[attr-defined]
        return req
    raise NotFound("审批不存在")


async def list_waiting(*, actor: Actor) -> list[ApprovalRequest]:
    """Approvals waiting for the actor's decision (the H5 approvals inbox)."""
    ids = await ApprovalStep.filter(approver_id=actor.staff_id, status="pending").values_list("request_id", flat=True)
    return await ApprovalRequest.filter(id__in=list(ids), status="pending", channel="h5").order_by("id")


@dataclass(frozen=True)
class InboxItem:
    """One line of the H5 approvals inbox."""

    id: int
    ticket_number: str
    title: str
    summary: str


async def list_pending(*, actor: Actor) -> list[InboxItem]:
    """The H5 approvals inbox: what waits for the actor, with the ticket number and a one-line summary."""
    out: list[InboxItem] = []
    for req in await list_waiting(actor=actor):
        ticket = await Ticket.get(id=req.ticket_id)  # type: ignore[attr-defined]
        group = await SkillGroup.get_or_none(id=req.params["group_id"]) if "group_id" in req.params else None
        summary = _summary(req.kind, req.params, group_name=group.name if group else None)
        out.append(InboxItem(id=req.id, ticket_number=ticket.number,
                             title=f"{KIND_LABELS[req.kind]}（第{req.level}/{len(req.chain)}级）：{summary}",
                             summary=req.reason))
    return out


@dataclass(frozen=True)
class ApprovalView:
    """One approval as its H5 page shows it (the page a waiting approver's card opens)."""

    id: int
    ticket_number: str
    title: str
    summary: str
    reason: str
    status: str
    status_label: str
    level: int
    levels: int
    requester: str
    #: (level, approver name, status label, comment) per step, in order
    steps: list[tuple[int, str, str, str]]
    #: the approver whose turn it is ("" once decided)
    waiting_for: str
    #: the actor is that approver and decides here (not in WeCom's approval app)
    can_decide: bool


STEP_LABELS = {"pending": "待审批", "approved": "同意", "rejected": "驳回", "timed_out": "超时转交"}


async def view(*, actor: Actor, approval_id: int) -> ApprovalView:
    """An approval for its H5 page: what is asked, by whom, the steps so far and whether the actor decides now."""
    req = await get(actor=actor, approval_id=approval_id)
    ticket = await Ticket.get(id=req.ticket_id)  # type: ignore[attr-defined]
    steps = await ApprovalStep.filter(request_id=req.id).order_by("id").prefetch_related("approver")
    group = await SkillGroup.get_or_none(id=req.params["group_id"]) if "group_id" in req.params else None
    requester = await Staff.get(id=req.requester_id)  # type: ignore[attr-defined]
    waiting = next((s for s in steps if s.status == "pending" and s.level == req.level), None)
    pending = req.status == "pending" and waiting is not None
    return ApprovalView(
        id=req.id, ticket_number=ticket.number, title=f"{KIND_LABELS[req.kind]}（第{req.level}/{len(req.chain)}级）",
        summary=_summary(req.kind, req.params, group_name=group.name if group else None), reason=req.reason,
        status=req.status, status_label=STATUS_LABELS.get(req.status, req.status), level=req.level,
        levels=len(req.chain), requester=requester.name,
        steps=[(s.level, s.approver.name, STEP_LABELS.get(s.status, s.status), s.comment) for s in steps],
        waiting_for=waiting.approver.name if pending and waiting else "",
        can_decide=pending and req.channel == "h5" and waiting is not None
        and waiting.approver_id == actor.staff_id,  # type: ignore[attr-defined]
    )


async def list_for_ticket(*, actor: Actor, ticket_id: int) -> list[ApprovalRequest]:
    """A ticket's approvals, newest first."""
    ticket = await tickets.get(actor=actor, ticket_id=ticket_id)
    return await ApprovalRequest.filter(ticket_id=ticket.id).order_by("-id")


async def decide(*, actor: Actor, approval_id: int, approve: bool, comment: str = "") -> ApprovalRequest:
    """The waiting approver approves or rejects (in-app path); approval of the last level applies the change."""
    async with atomic():
        req = await ApprovalRequest.filter(id=approval_id).select_for_update().first()
        if req is None:
            raise NotFound("审批不存在")
        if req.channel != "h5":
            raise InvalidTransition("该审批在企业微信审批应用中处理", code="decided_in_wecom")
        if req.status != "pending":
            raise InvalidTransition("审批已结束", code="approval_closed", details={"status": req.status})
        step = await ApprovalStep.filter(request_id=req.id, level=req.level, status="pending").first()
        if step is None or step.approver_id != actor.staff_id:  # type: ignore[attr-defined]
            raise PermissionDenied("这一级审批不由你处理", code="not_your_turn")
        now = utcnow()
        await ApprovalStep.filter(id=step.id).update(status="approved" if approve else "rejected",
                                                    comment=comment[:500], decided_at=now)
        await _audit(req, "approval_step", actor=actor, reason=comment,
                     new=f"第{req.level}级{'同意' if approve else '驳回'}")
        from approvals import flows

        if not approve:
            await _finish(req, status="rejected", comment=comment)
            await flows.on_rejected(request=req, comment=comment, actor=actor)
        elif req.level < len(req.chain):
            approver = await Staff.get(id=req.chain[req.level])
            await _open_step(req, level=req.level + 1, approver=approver, ticket=await Ticket.get(id=req.ticket_id))  # type: ignore[attr-defined]
        else:
            await _finish(req, status="approved", comment=comment)
            await flows.on_approved(request=req)
    return await ApprovalRequest.get(id=approval_id)


async def _finish(req: ApprovalRequest, *, status: str, comment: str = "") -> None:
    await ApprovalRequest.filter(id=req.id).update(status=status, decided_at=utcnow(), decision_comment=comment[:500],
                                                   step_due_at=None, version=F("version") + 1)
    req.status = status
    req.decision_comment = comment[:500]
    req.step_due_at = None


async def escalate_overdue(*, limit: int = 200) -> int:
    """Pass approvals whose approver waited too long to that approver's superior; returns how many moved."""
    now = utcnow()
    moved = 0
    for req_id in await ApprovalRequest.filter(status="pending", channel="h5", step_due_at__lte=now).limit(
            limit).values_list("id", flat=True):
        async with atomic():
            req = await ApprovalRequest.filter(id=req_id).select_for_update().first()
            if req is None or req.status != "pending" or req.step_due_at is None or req.step_due_at > now:
                continue  # another worker moved it, or it was decided meanwhile
            step = await ApprovalStep.filter(request_id=req.id, level=req.level, status="pending").first()
            if step is None:
                continue
            waiting = await Staff.get(id=step.approver_id)  # type: ignore[attr-defined]
            stand_in = await superior_of(staff=waiting, exclude=set(req.chain or []) | {req.requester_id})  # type: ignore[attr-defined]
            await ApprovalStep.filter(id=step.id).update(status="timed_out", decided_at=now)
            if stand_in is None:
                # nobody above: keep waiting on the same person, and stop the timer
                await ApprovalStep.filter(id=step.id).update(status="pending", decided_at=None)
                await ApprovalRequest.filter(id=req.id).update(step_due_at=None)
                continue
            chain = list(req.chain)
            chain[req.level - 1] = stand_in.id
            await ApprovalRequest.filter(id=req.id).update(chain=chain)
            req.chain = chain
            await _audit(req, "approval_escalated", actor=SYSTEM, reason=f"{waiting.name} 超时未审批",
                         new=stand_in.name)
            await _open_step(req, level=req.level, approver=stand_in, ticket=await Ticket.get(id=req.ticket_id))  # type: ignore[attr-defined]
            moved += 1
    return moved


# ---- refund confirmation by the customer ------------------------------------------------------------------------


def new_code() -> str:
    """A six-digit one-time code."""
    return f"{secrets.randbelow(10**6):06d}"


async def confirm_code(*, ticket: Ticket, text: str) -> bool:
    """The customer replied: if it is the outstanding refund code, mark the refund approved. True when it was."""
    code = "".join(ch for ch in text if ch.isdigit())
    if len(code) != 6 or len(text.strip()) > 20:
        return False
    req = await ApprovalRequest.filter(ticket_id=ticket.id, status="awaiting_customer").order_by("-id").first()
    if req is None or req.customer_code_hash is None:
        return False
    if req.customer_code_expires_at is not None and req.customer_code_expires_at < utcnow():
        return False
    if not hmac.compare_digest(req.customer_code_hash, keyed_hash(f"refund:{req.id}:{code}")):
        return False
    from approvals import flows

    async with atomic():
        claimed = await ApprovalRequest.filter(id=req.id, status="awaiting_customer").update(
            status="approved", customer_code_hash=None, version=F("version") + 1)
        if not claimed:
            return False
        req.status = "approved"
        await flows.on_customer_confirmed(request=req)
    return True
