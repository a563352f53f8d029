"""客户合并 on the phone: a lead or admin reviews the pairs ``app.customers.merging`` suggests (two customers sharing a
verified phone or e-mail), chooses which record to keep, confirms the merge, and can undo it from the result page.

Everything goes through ``app.customers.merging`` (rights: admins and leads; scope: the customers the actor may see;
every merge and undo is audited there). Contacts are shown masked, as everywhere else in H5. A second tap on 合并 for
a pair already merged meets the service's 「这是同一位客户，无需合并」 (merges are followed to the survivor).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from tortoise.functions import Count

from app.customers import merging
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity, CustomerMerge
from app.errors import NotFound, PermissionDenied
from app.security.pii import mask_email, mask_phone
from app.staff.models import Staff
from app.tickets.models import Ticket
from h5.web import Ctx, error_page, redirect, render, staff_page

__all__ = ["merge", "merge_page", "suggestions", "undo"]

NOTICES = {"merged": "已合并。如果合并错了，可以在下面撤销。",
           "unmerged": "已撤销合并，两位客户已恢复为各自独立的记录。"}
#: where a customer has reached us, as a lead recognises it
CHANNELS = {"mp_openid": "公众号", "unionid": "微信", "external_userid": "企业微信", "kf_external_userid": "微信客服",
            "email": "邮箱", "visitor": "网页聊天", "phone": "手机号"}
MOVED_LABELS = (("tickets", "工单"), ("conversations", "会话"), ("messages", "消息"), ("identities", "身份"))
REASONS = {"phone": "手机号相同（已验证）", "email": "邮箱相同（已验证）", "manual": "人工判断",
           "unionid": "微信 unionid 相同（自动合并）"}
NAV = [("/h5/tickets", "我的工单"), ("/h5/queue", "队列"), ("/h5/merges", "客户合并")]


def _page(request: Request, ctx: Ctx, template: str, *, status: int = 200, **context: Any) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, ctx, template, status=status, nav=NAV, path="/h5/merges", notice=notice, **context)


def _actor(ctx: Ctx) -> Any:
    assert ctx.actor is not None and ctx.staff is not None
    return ctx.actor


async def _views(people: list[Customer]) -> dict[int, dict[str, Any]]:
    """What a lead needs to recognise each customer: name, masked contacts, channels, tickets, first seen."""
    ids = [c.id for c in people]
    tickets = dict(await Ticket.filter(customer_id__in=ids).group_by("customer_id").annotate(
        n=Count("id")).values_list("customer_id", "n"))
    channels: dict[int, set[str]] = {}
    for customer_id, kind in await CustomerIdentity.filter(customer_id__in=ids).values_list("customer_id", "kind"):
        channels.setdefault(int(customer_id), set()).add(CHANNELS.get(kind, kind))
    out = {}
    for c in people:
        phone, email = customers.phone_of(c), customers.email_of(c)
        out[c.id] = {"id": c.id, "name": c.name or "未填写姓名", "vip": c.vip_level,
                     "phone": mask_phone(phone) if phone else "", "email": mask_email(email) if email else "",
                     "channels": "、".join(sorted(channels.get(c.id, ()))) or "无", "tickets": tickets.get(c.id, 0),
                     "since": c.created_at}
    return out


@staff_page
async def suggestions(request: Request, ctx: Ctx) -> Response:
    """建议合并的客户: each suggested pair side by side, the older record kept by default, and my recent merges."""
    actor = _actor(ctx)
    found = await merging.merge_suggestions(actor=actor, limit=50)  # admins and leads only (403 otherwise)
    views = await _views([c for s in found for c in s.customers])
    pairs = [{"label": s.label, "a": views[s.customers[0].id], "b": views[s.customers[1].id]} for s in found]
    recent = await CustomerMerge.filter(staff_id=actor.staff_id).order_by("-id").limit(5)
    return _page(request, ctx, "staff/merges.html", title="客户合并", pairs=pairs, recent=recent)


def _int(ctx: Ctx, name: str) -> int | None:
    raw = ctx.field(name)
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


@staff_page
async def merge(request: Request, ctx: Ctx) -> Response:
    """Merge the pair (``a``, ``b``) as chosen: the kept one (``survivor_id``) takes the other's tickets and chats."""
    actor = _actor(ctx)
    pair = {_int(ctx, "a"), _int(ctx, "b")}
    survivor_id = _int(ctx, "survivor_id")
    merged_id = next(iter(pair - {survivor_id}), None) if len(pair) == 2 else None
    if survivor_id is None or survivor_id not in pair or merged_id is None:
        return error_page(request, ctx, status=400, title="提交失败", message="请选择要保留的客户。",
                          link=("/h5/merges", "返回客户合并"))
    try:
        record = await merging.merge_customers(actor=actor, survivor_id=survivor_id, merged_id=merged_id,
                                               comment=ctx.field("comment")[:500])
    except NotFound:
        return _missing(request, ctx, "客户不存在，或你无权查看。")
    return redirect(f"/h5/merges/{record.id}?notice=merged")


def _missing(request: Request, ctx: Ctx, message: str = "合并记录不存在，或你无权查看。") -> Response:
    return error_page(request, ctx, status=404, title="找不到", message=message, link=("/h5/merges", "返回客户合并"))


async def _record(ctx: Ctx, merge_id: int) -> CustomerMerge | None:
    """A merge the actor may see (its kept customer is in their scope), else None."""
    actor = _actor(ctx)
    if actor.role not in merging.MERGE_ROLES:
        raise PermissionDenied("只有管理员和组长可以合并客户", code="merge_forbidden")
    record = await CustomerMerge.get_or_none(id=merge_id)
    if record is None:
        return None
    try:
        await customers.get(customer_id=record.survivor_id, actor=actor)  # type: ignore[attr-defined]
    except NotFound:
        return None
    return record


@staff_page
async def merge_page(request: Request, ctx: Ctx) -> Response:
    """One merge: who was kept, who was merged in, what moved, who did it; 撤销合并 while it stands."""
    record = await _record(ctx, request.path_params["merge_id"])
    if record is None:
        return _missing(request, ctx)
    people = {c.id: c for c in await Customer.filter(id__in=[record.survivor_id, record.merged_id])}  # type: ignore[attr-defined]
    views = await _views(list(people.values()))
    staff = dict(await Staff.filter(id__in=[i for i in (record.staff_id, record.undone_by_id) if i]).values_list(
        "id", "name"))
    moved = [(label, len((record.moved or {}).get(key) or [])) for key, label in MOVED_LABELS]
    return _page(request, ctx, "staff/merge.html", title="合并记录", record=record,
                 kept=views[record.survivor_id], merged=views[record.merged_id],  # type: ignore[attr-defined]
                 moved=moved, by=staff.get(record.staff_id) or "系统（自动合并）",
                 undone_by=staff.get(record.undone_by_id or 0, ""), reason=REASONS.get(record.reason, record.reason))


@staff_page
async def undo(request: Request, ctx: Ctx) -> Response:
    """撤销合并: everything that moved goes back, the kept record's filled-in fields are restored."""
    record = await _record(ctx, request.path_params["merge_id"])
    if record is None:
        return _missing(request, ctx)
    await merging.unmerge(actor=_actor(ctx), merge_id=record.id, comment=ctx.field("comment")[:500])
    return redirect(f"/h5/merges/{record.id}?notice=unmerged")
