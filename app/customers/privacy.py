"""A customer's rights under PIPL (个人信息保护法 arts. 45 and 47): a copy of everything held about them, and erasure.

Both are for admins only, need a recent WeCom login in H5 (app.security.reauth; admin API tokens pass) and are
audited. What "about them" means: the customer row and the records merged into it, their identities on every
channel, their conversations and every message in them (or in their tickets), their tickets with ratings and
surveys, knowledge-base questions they asked, raw callbacks from their handles, outbox rows addressed to them or
about their tickets, WeCom external-contact data, and the media files of their messages.

Erasure anonymises: the tickets stay with their numbers, statuses, times, SLA figures and rating scores (the
reports need them), but the person is gone: name, contacts and their hashes, identity values, message texts and
media, ticket subjects, descriptions, custom fields, order numbers and phones, raw callbacks, outbox payloads,
knowledge-base query logs. Audit rows stay as they are (they are the legal record and hash-chained); they hold
ids and staff-written reasons, never contact values. Media files are deleted after the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.expressions import Q
from tortoise.models import Model

from app.channels.models import ChannelAccount, InboundEvent
from app.conversations.models import Conversation, Message
from app.customers import service as customers
from app.customers.models import ContactVerification, Customer, CustomerIdentity, CustomerMerge
from app.errors import PermissionDenied
from app.integrations.models import BusinessEvent
from app.kb.models import BotQuery, BotSession, Survey
from app.outbox.models import OutboxMessage
from app.security import tokens
from app.security.crypto import decrypt_field
from app.security.models import AuditLog, PiiToken
from app.security.reauth import require_recent_login
from app.security.scope import Actor
from app.security.service import record_audit
from app.settings import get_settings
from app.tickets.models import Ticket, TicketEvent, TicketRating
from app.tickets.states import STATUS_LABELS, Status
from app.timeutil import local, utcnow
from app.uow import atomic, on_commit
from app.webhooks.models import WebhookDelivery

__all__ = ["ERASED_NAME", "AlreadyErased", "ConfirmationRequired", "erase", "export"]

ERASED_NAME = "已删除的客户"
ERASED_SUBJECT = "（客户数据已删除）"
ERASED_PAYLOAD = ""
#: ticket events whose old/new values are figures (statuses, priorities, ids), kept after erasure
FIGURE_EVENTS = ("status_changed", "priority_changed", "assigned", "group_changed")
IDENTITY_LABELS = {"mp_openid": "公众号 openid", "unionid": "微信 unionid", "external_userid": "企业微信外部联系人",
                   "kf_external_userid": "微信客服", "email": "邮箱", "visitor": "网页访客", "phone": "手机号"}


class ConfirmationRequired(PermissionDenied):
    """409: erasure cannot be undone, so the caller must confirm it explicitly."""

    status_code = 409
    code = "confirmation_required"


class AlreadyErased(PermissionDenied):
    status_code = 409
    code = "already_erased"


def _require_admin(actor: Actor) -> None:
    if actor.kind != "staff" or actor.role != "admin":
        raise PermissionDenied("只有管理员可以导出或删除客户的个人信息", code="admin_only")
    require_recent_login(actor=actor)


@dataclass
class _Held:
    """Everything held about one customer, found once and used by export and erase."""

    customer: Customer
    records: list[Customer]
    identities: list[CustomerIdentity]
    conversations: list[Conversation]
    tickets: list[Ticket]
    messages: list[Message]
    handles: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.records]

    @property
    def ticket_ids(self) -> list[int]:
        return [t.id for t in self.tickets]


async def _held(customer: Customer) -> _Held:
    records, frontier = [customer], [customer.id]
    while frontier:  # the records merged into this one (and into those), which hold the same person's data
        found = await Customer.filter(merged_into_id__in=frontier).exclude(id__in=[c.id for c in records])
        records.extend(found)
        frontier = [c.id for c in found]
    ids = [c.id for c in records]
    identities = await CustomerIdentity.filter(customer_id__in=ids).order_by("id")
    conversations = await Conversation.filter(customer_id__in=ids).order_by("id")
    tickets = await Ticket.filter(customer_id__in=ids).order_by("id")
    messages = await Message.filter(Q(customer_id__in=ids) | Q(conversation_id__in=[c.id for c in conversations])
                                    | Q(ticket_id__in=[t.id for t in tickets])).order_by("id")
    handles = sorted({i.value for i in identities if len(i.value) >= 6})
    return _Held(customer=customer, records=records, identities=list(identities), conversations=list(conversations),
                 tickets=list(tickets), messages=list(messages), handles=handles)


async def _target(*, actor: Actor, customer_id: int) -> Customer:
    _require_admin(actor)
    return await customers.get(customer_id=customer_id, actor=actor)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _media_files(messages: list[Message]) -> list[dict[str, Any]]:
    root = get_settings().media_dir.resolve()
    files = []
    for message in messages:
        for item in message.media or []:
            rel = str(item.get("path") or "")
            if not rel:
                continue
            path = (root / rel).resolve()
            inside = root in path.parents
            files.append({"message_id": message.id, "path": rel, "content_type": item.get("content_type", ""),
                          "size": path.stat().st_size if inside and path.is_file() else None,
                          "exists": inside and path.is_file()})
    return files


async def _export_data(held: _Held) -> dict[str, Any]:
    c = held.customer
    numbers = {t.id: t.number for t in held.tickets}
    accounts = dict(await ChannelAccount.all().values_list("id", "kind"))
    ratings = await TicketRating.filter(ticket_id__in=held.ticket_ids).order_by("id")
    surveys = await Survey.filter(ticket_id__in=held.ticket_ids).order_by("id")
    queries = await BotQuery.filter(customer_id__in=held.ids).order_by("id")
    audit = await AuditLog.filter(Q(object_type="customer", object_id__in=[str(i) for i in held.ids])
                                  | Q(object_type="ticket", object_id__in=[str(i) for i in held.ticket_ids])
                                  ).order_by("id")
    data: dict[str, Any] = {
        "customer": {
            "id": c.id, "name": c.name, "phone": customers.phone_of(c), "email": customers.email_of(c),
            "vip_level": c.vip_level, "tags": c.tags, "created_at": _iso(c.created_at),
            "merged_records": [{"id": r.id, "name": r.name, "phone": customers.phone_of(r),
                                "email": customers.email_of(r)} for r in held.records[1:]],
        },
        "identities": [{"kind": i.kind, "scope": i.scope, "value": i.value, "data": i.data,
                        "created_at": _iso(i.created_at)} for i in held.identities],
        "conversations": [{"id": v.id, "channel": accounts.get(v.channel_account_id, ""),  # type: ignore[attr-defined]
                           "status": v.status, "message_count": v.message_count, "started_at": _iso(v.started_at),
                           "last_message_at": _iso(v.last_message_at)} for v in held.conversations],
        "messages": [{"id": m.id, "conversation_id": m.conversation_id,  # type: ignore[attr-defined]
                      "ticket": numbers.get(m.ticket_id),  # type: ignore[attr-defined]
                      "direction": m.direction, "author_kind": m.author_kind, "msg_type": m.msg_type,
                      "text": await tokens.detokenise(m.text), "media": m.media, "created_at": _iso(m.created_at)}
                     for m in held.messages],
        "tickets": [{"number": t.number, "subject": await tokens.detokenise(t.subject),
                     "description": await tokens.detokenise(t.description), "status": t.status,
                     "status_label": STATUS_LABELS.get(Status(t.status), t.status), "priority": t.priority,
                     "category": t.category, "custom_fields": await tokens.detokenise_data(t.custom_fields),
                     "order_no": t.order_no, "phone": decrypt_field(t.phone_enc) if t.phone_enc else None,
                     "created_at": _iso(t.created_at), "resolved_at": _iso(t.resolved_at),
                     "closed_at": _iso(t.closed_at)} for t in held.tickets],
        "ratings": [{"ticket": numbers.get(r.ticket_id), "score": r.score,  # type: ignore[attr-defined]
                     "comment": r.comment, "channel": r.channel, "at": _iso(r.at), "history": r.history}
                    for r in ratings],
        "surveys": [{"ticket": numbers.get(s.ticket_id), "solved": s.solved,  # type: ignore[attr-defined]
                     "rating": s.rating, "comment": s.comment, "answered_at": _iso(s.answered_at)} for s in surveys],
        "bot_questions": [{"text": q.text, "outcome": q.outcome, "created_at": _iso(q.created_at)} for q in queries],
        "audit": [{"id": a.id, "created_at": _iso(a.created_at), "action": a.action, "object_type": a.object_type,
                   "object_id": a.object_id, "field": a.field, "reason": a.reason,
                   "actor_id": a.staff_id} for a in audit],  # type: ignore[attr-defined]
        "media_files": _media_files(held.messages),
    }
    return data


def summary(data: dict[str, Any]) -> str:
    """A readable Chinese summary of an export, for the customer."""
    c = data["customer"]
    lines = [f"客户个人信息副本（生成于 {local(utcnow()):%Y年%m月%d日 %H:%M}）", "",
             f"客户编号：{c['id']}", f"姓名：{c['name'] or '未填写'}", f"手机号：{c['phone'] or '未填写'}",
             f"邮箱：{c['email'] or '未填写'}", "", f"渠道身份（{len(data['identities'])} 个）："]
    lines += [f"  - {IDENTITY_LABELS.get(i['kind'], i['kind'])}：{i['value']}" for i in data["identities"]]
    lines += ["", f"会话：{len(data['conversations'])} 个；消息：{len(data['messages'])} 条"]
    lines += [f"  - {m['created_at'][:16].replace('T', ' ')} {'客户' if m['direction'] == 'in' else '客服'}："
              f"{m['text'] or '［' + m['msg_type'] + '］'}" for m in data["messages"] if m["direction"] != "internal"]
    lines += ["", f"工单（{len(data['tickets'])} 个）："]
    lines += [f"  - {t['number']}「{t['subject']}」{t['status_label']}，创建于 {t['created_at'][:10]}"
              + (f"，订单号 {t['order_no']}" if t["order_no"] else "") for t in data["tickets"]]
    lines += ["", f"评价（{len(data['ratings'])} 条）："]
    lines += [f"  - {r['ticket']}：{r['score']} 分" + (f"，{r['comment']}" if r["comment"] else "")
              for r in data["ratings"]]
    lines += ["", f"与你有关的审计记录：{len(data['audit'])} 条", f"图片与文件：{len(data['media_files'])} 个"]
    return "\n".join(lines)


async def export(*, actor: Actor, customer_id: int, reason: str = "") -> dict[str, Any]:
    """Everything held about one customer, as JSON with a Chinese summary (admins only; audited)."""
    customer = await _target(actor=actor, customer_id=customer_id)
    held = await _held(customer)
    data = await _export_data(held)
    entry = await record_audit(actor=actor, action="export", object_type="customer", object_id=str(customer.id),
                               reason=reason or "客户申请查阅、复制个人信息")
    return {"customer_id": customer.id, "generated_at": _iso(entry.created_at), "data": data,
            "summary": summary(data)}


def _model(name: str) -> type[Model] | None:
    """A model of another package by name (wecom_sync, approvals: app code never imports them)."""
    models = Tortoise.apps["gongdan"] if "gongdan" in Tortoise.apps else {}
    return models.get(name)


async def _erase_customers(held: _Held, now: Any) -> None:
    await Customer.filter(id__in=held.ids).update(name=ERASED_NAME, phone_enc=None, phone_hash=None, email_enc=None,
                                                  email_hash=None, tags=[], erased_at=now)
    for identity in held.identities:
        await CustomerIdentity.filter(id=identity.id).update(value=f"erased:{identity.id}", data={})
    await ContactVerification.filter(customer_id__in=held.ids).delete()
    await CustomerMerge.filter(Q(survivor_id__in=held.ids) | Q(merged_id__in=held.ids)).update(
        survivor_changes={}, comment="")
    await PiiToken.filter(customer_id__in=held.ids).delete()
    await BotQuery.filter(customer_id__in=held.ids).delete()
    await BotSession.filter(customer_id__in=held.ids).delete()
    # what other systems sent about the customer, and the events sent out about their tickets
    await BusinessEvent.filter(customer_id__in=held.ids).update(data={})
    if held.ticket_ids:
        await WebhookDelivery.filter(ticket_id__in=held.ticket_ids).update(payload={})


async def _erase_tickets(held: _Held) -> None:
    ids = held.ticket_ids
    if not ids:
        return
    await tokens.drop_tokens(set().union(*(tokens.token_ids_in([t.subject, t.description, t.custom_fields])
                                            for t in held.tickets)))
    await Ticket.filter(id__in=ids).update(subject=ERASED_SUBJECT, description="", custom_fields={}, order_no=None,
                                           phone_enc=None, phone_hash=None)
    await TicketEvent.filter(ticket_id__in=ids).update(data={}, reason="")
    await TicketEvent.filter(ticket_id__in=ids).exclude(kind__in=FIGURE_EVENTS).update(old=None, new=None)
    for rating in await TicketRating.filter(ticket_id__in=ids):
        await TicketRating.filter(id=rating.id).update(
            comment="", history=[{**h, "comment": ""} for h in rating.history or []])
    await Survey.filter(ticket_id__in=ids).update(comment="")
    approval = _model("ApprovalRequest")
    if approval is not None:
        await approval.filter(ticket_id__in=ids).update(reason=ERASED_SUBJECT, decision_comment="")


async def _erase_messages(held: _Held) -> list[dict[str, Any]]:
    media = [item for m in held.messages for item in (m.media or [])]
    ids = [m.id for m in held.messages]
    if ids:
        await tokens.drop_tokens(tokens.token_ids_in([m.text for m in held.messages]))
        await Message.filter(id__in=ids).update(text="", media=[], data={})
    return media


#: raw callbacks read at a time while erasing
RAW_BATCH = 2000


async def _erase_channels(held: _Held) -> None:
    # raw callbacks carry the sender's handle (FromUserName, ExternalUserID); kf callbacks carry none (pulled).
    # They are encrypted at rest, so the database cannot search them: read them in batches (retention keeps the
    # table to its last 30 days) and blank those that name the customer.
    if held.handles:
        last = 0
        while True:
            batch = await InboundEvent.filter(id__gt=last).order_by("id").limit(RAW_BATCH).only("id", "payload")
            if not batch:
                break
            last = batch[-1].id
            hits = [row.id for row in batch if any(handle in (row.payload or "") for handle in held.handles)]
            if hits:
                await InboundEvent.filter(id__in=hits).update(payload=ERASED_PAYLOAD, error=None)
    addressed = Q(recipient__in=held.handles) if held.handles else Q(id=-1)
    await OutboxMessage.filter(addressed, status__in=("pending", "sending")).update(
        status="failed", last_error="客户数据已删除，未发送")
    await OutboxMessage.filter(addressed).update(recipient="erased")
    await OutboxMessage.filter(addressed | Q(ticket_id__in=held.ticket_ids)).update(payload={})
    kf = _model("KfSession")
    if kf is not None and held.handles:
        for row_id in await kf.filter(external_userid__in=held.handles).values_list("id", flat=True):
            await kf.filter(id=row_id).update(external_userid=f"erased:{row_id}")
    await _erase_wecom_contacts(held)


async def _erase_wecom_contacts(held: _Held) -> None:
    contact, follow = _model("ExternalContact"), _model("ExternalFollow")
    if contact is None:
        return
    contact_ids = list(await contact.filter(customer_id__in=held.ids).values_list("id", flat=True))
    for contact_id in contact_ids:
        await contact.filter(id=contact_id).update(external_userid=f"erased:{contact_id}", name="", avatar="",
                                                   corp_name="", unionid=None, tag_names=[])
    if follow is not None and contact_ids:
        await follow.filter(contact_id__in=contact_ids).update(
            remark="", description="", remark_corp_name="", remark_mobiles_enc=None, remark_mobile_hashes=[],
            state="")


def _delete_files(items: list[dict[str, Any]], media_dir: Path) -> int:
    root, count = media_dir.resolve(), 0
    for item in items:
        path = (root / str(item.get("path") or "")).resolve()
        if item.get("path") and root in path.parents and path.is_file():
            path.unlink(missing_ok=True)
            count += 1
    return count


async def erase(*, actor: Actor, customer_id: int, confirm: bool, reason: str = "") -> dict[str, Any]:
    """Anonymise everything held about one customer, keeping the tickets' figures (admins only; audited)."""
    customer = await _target(actor=actor, customer_id=customer_id)
    if customer.erased_at is not None:
        raise AlreadyErased("该客户的个人信息已删除", code="already_erased")
    if not confirm:
        raise ConfirmationRequired("删除客户的个人信息后无法恢复，请确认后再提交（confirm: true）")
    media_dir = get_settings().media_dir
    deleted: list[int] = []
    async with atomic():
        held = await _held(await Customer.select_for_update().get(id=customer.id))
        now = utcnow()
        media = await _erase_messages(held)
        await _erase_tickets(held)
        await _erase_channels(held)
        await _erase_customers(held, now)
        await record_audit(actor=actor, action="erase", object_type="customer", object_id=str(customer.id),
                           reason=reason or "客户申请删除个人信息")

        async def remove_files() -> None:
            deleted.append(_delete_files(media, media_dir))

        await on_commit(remove_files)
    counts = {"records": len(held.records), "identities": len(held.identities), "tickets": len(held.tickets),
              "messages": len(held.messages), "media_files": sum(deleted)}
    return {"customer_id": customer.id, "erased_at": _iso(now), "counts": counts}

