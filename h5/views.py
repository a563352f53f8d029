"""What the pages show, computed from the domain: SLA countdowns, labels, the merged ticket timeline, channel limits,
and the storage of uploaded photos. Pure helpers plus a few batched lookups (one query per kind, never per row)."""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile

from app.channels.base import CHANNEL_LABELS
from app.channels.models import ChannelAccount
from app.conversations.models import Conversation, Message
from app.customers.models import Customer
from app.errors import ValidationFailed
from app.outbox.models import OutboxMessage
from app.security.pii import mask_text, render_tokens
from app.security.scope import Actor
from app.staff.models import SkillGroup, Staff
from app.tickets import ratings, serializers
from app.tickets.models import Ticket, TicketEvent, TicketRating
from app.tickets.serializers import EVENT_LABELS, event_label
from app.tickets.service import PRIORITY_LABELS
from app.tickets.states import LIVE, STATUS_LABELS, Status
from app.timeutil import local, utcnow

__all__ = [
    "CUSTOMER_STEPS",
    "Row",
    "TimelineItem",
    "channel_notice",
    "customer_step",
    "rating_summary",
    "rating_view",
    "rows",
    "save_photos",
    "sla",
    "timeline",
]

#: the customer's view of progress: 受理 → 处理中 → 已解决
CUSTOMER_STEPS = ("受理", "处理中", "已解决")
PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp"}
PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF")
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MP_WINDOW = timedelta(hours=48)


def duration(delta: timedelta) -> str:
    """A short Chinese duration: 2天3小时, 5小时12分, 8分."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{mins}分"
    return f"{mins}分"


def sla(ticket: Ticket, now: datetime | None = None) -> dict[str, Any] | None:
    """The nearest running SLA clock: its name, the time left (or overdue) and whether it is overdue."""
    if Status(ticket.status) not in LIVE:
        return None
    now = now or utcnow()
    clocks: list[tuple[str, datetime | None]] = [
        ("首次响应", ticket.first_response_due if ticket.first_responded_at is None else None),
        ("下次响应", ticket.next_response_due),
        ("解决", ticket.resolution_due),
    ]
    pending = [(name, due) for name, due in clocks if due is not None]
    if not pending:
        return None
    name, due = min(pending, key=lambda c: c[1])
    assert due is not None
    left = due - now
    overdue = left.total_seconds() < 0
    text = f"{name}超时 {duration(-left)}" if overdue else f"{name}剩 {duration(left)}"
    return {"name": name, "due": due.isoformat(), "overdue": overdue, "text": text}


@dataclass
class Row:
    """One ticket in a list."""

    ticket: Ticket
    number: str
    subject: str
    status: str
    status_label: str
    priority: str
    priority_label: str
    customer: str
    channel: str
    sla: dict[str, Any] | None
    last_activity: datetime
    assignee: str = ""
    #: the customer's current rating (1-5), None when not rated
    rating: int | None = None


async def channel_kinds(account_ids: set[int]) -> dict[int, str]:
    """Channel account id -> kind (wechat_mp, wecom_kf, ...)."""
    if not account_ids:
        return {}
    pairs = await ChannelAccount.filter(id__in=list(account_ids)).values_list("id", "kind")
    return {int(i): str(k) for i, k in pairs}


async def rows(tickets: list[Ticket], *, actor: Actor | None) -> list[Row]:
    """List rows with customer names, channels and assignees looked up in one query each."""
    customer_ids = {t.customer_id for t in tickets}  # type: ignore[attr-defined]
    names = dict(await Customer.filter(id__in=list(customer_ids)).values_list("id", "name")) if tickets else {}
    kinds = await channel_kinds({t.channel_account_id for t in tickets if t.channel_account_id})  # type: ignore[attr-defined]
    staff_ids = {t.assignee_id for t in tickets if t.assignee_id}  # type: ignore[attr-defined]
    staff = dict(await Staff.filter(id__in=list(staff_ids)).values_list("id", "name")) if staff_ids else {}
    scores = await ratings.scores_for(ticket_ids=[t.id for t in tickets])
    now = utcnow()
    out = []
    for t in tickets:
        kind = kinds.get(t.channel_account_id, "api")  # type: ignore[attr-defined]
        out.append(Row(
            ticket=t, number=t.number, subject=mask_text(t.subject), status=t.status,
            status_label=STATUS_LABELS[Status(t.status)], priority=t.priority,
            priority_label=PRIORITY_LABELS.get(t.priority, t.priority),
            customer=str(names.get(t.customer_id) or "客户"), channel=CHANNEL_LABELS.get(kind, kind),  # type: ignore[attr-defined]
            sla=sla(t, now), last_activity=t.last_activity_at,
            assignee=str(staff.get(t.assignee_id, "")),  # type: ignore[attr-defined]
            rating=scores.get(t.id),
        ))
    return out


def _rating_via(source: str, channel: str) -> str:
    label = ratings.SOURCE_LABELS.get(source, "其他")
    channel_label = CHANNEL_LABELS.get(channel, "")
    return f"{label}（{channel_label}）" if channel_label and source != "h5_page" else label


def rating_view(rating: TicketRating | None) -> dict[str, Any] | None:
    """The customer's rating for the staff ticket page: score, where it came from, comment, earlier ratings."""
    if rating is None:
        return None
    shown = ratings.as_dict(rating)

    def entry(e: dict[str, Any]) -> dict[str, Any]:
        at = datetime.fromisoformat(e["at"]) if isinstance(e.get("at"), str) else None
        return {"score": e["score"], "comment": mask_text(e["comment"] or ""),
                "via": _rating_via(e["source"], e["channel"]),
                "at": at}

    return {**entry(shown), "low": shown["score"] <= 2, "history": [entry(h) for h in reversed(shown["history"])]}


def rating_summary(summary: ratings.RatingSummary) -> dict[str, Any]:
    """我的评分 as the list page shows it: average to one decimal, count, share of 4-5 in whole percent."""
    if not summary.count or summary.average is None or summary.satisfied_share is None:
        return {"count": 0}
    return {"count": summary.count, "average": f"{summary.average:.1f}",
            "satisfied": f"{round(summary.satisfied_share * 100)}%"}


@dataclass
class TimelineItem:
    """One entry of a ticket's timeline: a message (customer, staff, note) or a change."""

    kind: str  # in | out | internal | event
    at: datetime
    text: str = ""
    author: str = ""
    channel: str = ""
    media: list[dict[str, Any]] = field(default_factory=list)
    delivery: str = ""
    delivery_failed: bool = False
    message_id: int | None = None
    #: the outbox row of a reply whose outcome is unknown: staff may resend it
    resend_outbox_id: int | None = None


#: events already shown as their message
_MESSAGE_EVENTS = {"replied", "note", "customer_message"}
_DELIVERY = {"pending": "发送中", "sending": "发送中", "sent": "已送达", "failed": "发送失败", "dead": "发送失败",
             "unknown": "结果未知：平台超时未答复，客户可能已收到"}
MEDIA_LABELS = {"image": "图片", "voice": "语音", "video": "视频", "file": "文件", "location": "位置", "link": "链接"}
#: timeline wording where it differs from the event's name (app.tickets.serializers.EVENT_LABELS)
_EVENT_TEXT = {"created": "创建了工单", "updated": "修改了工单", "merged": "合并了工单", "intake": "由会话自动转为工单",
               "bot_handoff": "机器人已转人工", "queue_released": "工单离开非工作时间队列"}
_ACTOR_KINDS = {"customer": "客户", "system": "系统", "bot": "机器人"}
_CLOCKS = {"first_response": "首次响应", "next_response": "下次响应", "resolution": "解决"}
_KF_STATES = {"0": "未处理", "1": "由智能助手接待", "2": "待接入池排队", "3": "由人工接待", "4": "已结束"}


_STEP_TEXT = {"group": "技能组 {}", "priority": "优先级 {}", "category": "分类 {}", "tags": "标签 {}",
              "assignee": "指派 {}", "sla_policy": "服务时限 {}", "after_hours_until": "非工作时间排队",
              "auto_reply": "自动回复"}


def created_text(data: dict[str, object]) -> str:
    """The intake decision in a line: where the ticket came from and which rule did what."""
    decision = serializers.decision(dict(data))
    parts = []
    for step in decision["steps"]:
        done = []
        for key, value in step.items():
            if key in ("rule", "stop") or key not in _STEP_TEXT:
                continue
            shown = PRIORITY_LABELS.get(str(value), str(value)) if key == "priority" else \
                "、".join(map(str, value)) if isinstance(value, list) else str(value)
            done.append(_STEP_TEXT[key].format(shown) if "{}" in _STEP_TEXT[key] else _STEP_TEXT[key])
        parts.append(f"{step['rule']}（{'，'.join(done)}）" if done else str(step["rule"]))
    rules = "；".join(parts) if parts else "未命中路由规则"
    return f"创建了工单（来源：{decision['source_label']}）· 路由：{rules}"


def _event_text(e: TicketEvent, staff: dict[int, str], groups: dict[int, str]) -> str:
    """What a change says on the staff timeline, in Chinese, with personal data masked (never an identifier)."""
    def show(value: str | None) -> str:
        return "" if value is None else mask_text(value)

    def name(names: dict[int, str], value: str | None) -> str:
        return names.get(int(value), "无") if value and value.isdigit() else "无"

    data = e.data or {}
    kind = e.kind
    if kind == "status_changed":
        old = STATUS_LABELS[Status(e.old)] if e.old and e.old in Status._value2member_map_ else "无"
        new = STATUS_LABELS[Status(e.new)] if e.new and e.new in Status._value2member_map_ else "无"
        text = f"状态：{old} → {new}"
    elif kind == "assigned":
        text = f"处理人：{name(staff, e.old)} → {name(staff, e.new)}"
    elif kind == "group_changed":
        text = f"技能组：{name(groups, e.old)} → {name(groups, e.new)}"
    elif kind == "priority_changed":
        text = f"优先级：{PRIORITY_LABELS.get(e.old or '', '无')} → {PRIORITY_LABELS.get(e.new or '', '无')}"
    elif kind == "rated":
        text = f"客户评价：{show(e.new)} 分"
    elif kind == "survey":
        solved = data.get("solved")
        text = "回访：" + ("问题已解决" if solved else "问题未解决" if solved is not None else "已回复")
        if data.get("rating"):
            text += f"，评分 {data['rating']} 分"
        if data.get("comment"):
            text += f"，留言：{show(str(data['comment']))}"
    elif kind == "sla_breached":
        text = f"{_CLOCKS.get(e.new or '', '服务时限')}超时"
    elif kind == "sla_escalated":
        text = f"超时升级至第 {show(e.new)} 级" if (e.new or "").isdigit() else "超时升级"
    elif kind == "kf_session":
        text = f"微信客服会话：{_KF_STATES.get(e.new or '', '状态变更')}"
    elif kind.startswith("approval_"):
        label = EVENT_LABELS.get(kind, "审批")
        text = f"{label}：{show(e.new)}" if e.new else label
    elif kind == "created" and data.get("source"):
        text = created_text(data)
    else:
        text = _EVENT_TEXT.get(kind) or event_label(kind)
    if e.reason and not (kind == "sla_breached" and e.reason == text):
        text += f"（{show(e.reason)}）"
    return text


async def timeline(ticket: Ticket, messages: list[Message], events: list[TicketEvent], *, actor: Actor,
                   media_prefix: str, customer_view: bool = False) -> list[TimelineItem]:
    """Messages and changes in time order; customers see only the conversation, never notes or internal changes."""
    staff_ids = {m.staff_id for m in messages if m.staff_id} | {  # type: ignore[attr-defined]
        e.actor_id for e in events if e.actor_id}  # type: ignore[attr-defined]
    for e in events:
        if e.kind == "assigned":
            staff_ids.update(int(v) for v in (e.old, e.new) if v and v.isdigit())
    staff = dict(await Staff.filter(id__in=list(staff_ids)).values_list("id", "name")) if staff_ids else {}
    group_ids = {int(v) for e in events if e.kind == "group_changed" for v in (e.old, e.new) if v and v.isdigit()}
    groups = dict(await SkillGroup.filter(id__in=list(group_ids)).values_list("id", "name")) if group_ids else {}
    kinds = await channel_kinds({m.channel_account_id for m in messages if m.channel_account_id})  # type: ignore[attr-defined]
    outbox_ids = [m.outbox_id for m in messages if m.outbox_id]
    outbox = {r.id: r for r in await OutboxMessage.filter(id__in=outbox_ids)} if outbox_ids else {}
    items: list[TimelineItem] = []
    for m in messages:
        if customer_view and m.direction == "internal":
            continue
        # the customer sees their own tokenised data masked too (no query), staff see everything masked
        text = render_tokens(m.text) if customer_view else mask_text(m.text)
        media = [{"kind": x.get("kind", "file"), "label": MEDIA_LABELS.get(str(x.get("kind")), "文件"),
                  "url": f"{media_prefix}/{m.id}/{i}"} for i, x in enumerate(m.media or []) if x.get("path")]
        author = ("客户" if m.direction == "in" else
                  (staff.get(m.staff_id, "客服") if m.staff_id else "系统"))  # type: ignore[attr-defined]
        row = outbox.get(m.outbox_id) if m.outbox_id else None
        delivery = _DELIVERY.get(row.status, "") if row is not None and not customer_view else ""
        items.append(TimelineItem(
            kind=m.direction, at=m.created_at, text=text, author=author, media=media, message_id=m.id,
            channel=CHANNEL_LABELS.get(kinds.get(m.channel_account_id, ""), "") if m.direction == "in" else "",  # type: ignore[attr-defined]
            delivery=delivery, delivery_failed=row is not None and row.status in ("failed", "dead", "unknown"),
            resend_outbox_id=row.id if row is not None and row.status == "unknown" and not customer_view else None,
        ))
    if not customer_view:
        for e in events:
            if e.kind in _MESSAGE_EVENTS:
                continue
            who = staff.get(e.actor_id, "") if e.actor_id else _ACTOR_KINDS.get(e.actor_kind, "")  # type: ignore[attr-defined]
            items.append(TimelineItem(kind="event", at=e.created_at, text=_event_text(e, staff, groups), author=who))
    items.sort(key=lambda i: (i.at, 0 if i.kind == "event" else 1))
    return items


async def channel_notice(ticket: Ticket) -> tuple[str, bool]:
    """What a reply will do on the customer's channel now: (explanation, whether it goes out as a normal message)."""
    account_id = ticket.channel_account_id  # type: ignore[attr-defined]
    if account_id is None:
        return "此工单没有客户渠道（后台录入），回复只记录在工单中，请通过电话等方式联系客户。", False
    account = await ChannelAccount.get_or_none(id=account_id)
    kind = account.kind if account else ""
    last_in: datetime | None = None
    if ticket.conversation_id is not None:  # type: ignore[attr-defined]
        conv = await Conversation.get_or_none(id=ticket.conversation_id)  # type: ignore[attr-defined]
        last_in = conv.last_inbound_at if conv else None
    left = (last_in + MP_WINDOW - utcnow()) if last_in else None
    if kind == "wechat_mp":
        if left is None or left.total_seconds() <= 0:
            return ("客户超过 48 小时没有给公众号发消息，微信不允许发送客服消息：回复将以模板消息提醒客户查看，"
                    "客户点开后可看到完整回复。"), False
        return f"回复将通过公众号客服消息发给客户（48 小时窗口剩余 {duration(left)}，每次客户来信后最多 5 条）。", True
    if kind == "wecom_kf":
        if left is None or left.total_seconds() <= 0:
            return "客户超过 48 小时未发消息，微信客服无法再发消息，请等待客户再次来信或改用电话联系。", False
        return f"回复将通过微信客服发给客户（48 小时内最多 5 条，剩余 {duration(left)}）。", True
    label = CHANNEL_LABELS.get(kind, kind)
    return f"回复将通过「{label}」发给客户。", True


def customer_step(status: str) -> int:
    """Index in CUSTOMER_STEPS (0 受理, 1 处理中, 2 已解决)."""
    return {"new": 0, "open": 1, "pending": 1}.get(status, 2)


async def save_photos(files: list[UploadFile], media_dir: Path) -> list[dict[str, Any]]:
    """Store uploaded photos (JPEG/PNG/GIF/WebP up to 5 MB each, checked by content) and return media entries."""
    stored: list[dict[str, Any]] = []
    for upload in files:
        if not upload.filename:
            continue  # an empty file input
        content = await upload.read(MAX_PHOTO_BYTES + 1)
        if len(content) > MAX_PHOTO_BYTES:
            raise ValidationFailed("图片不能超过 5 MB", code="photo_too_large")
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if content_type not in PHOTO_TYPES or not content.startswith(PHOTO_MAGIC):
            raise ValidationFailed("只能上传 JPG、PNG、GIF 或 WebP 图片", code="photo_type")
        rel = f"{local(utcnow()):%Y/%m}/{uuid.uuid4().hex}{PHOTO_TYPES[content_type]}"
        path = media_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        stored.append({"kind": "image", "path": rel, "content_type": content_type, "size": len(content)})
    return stored


def media_file(media_dir: Path, item: dict[str, Any]) -> tuple[Path, str] | None:
    """The stored file of a media entry (never outside the media folder) and its content type."""
    rel = str(item.get("path") or "")
    if not rel:
        return None
    root = media_dir.resolve()
    path = (root / rel).resolve()
    if root not in path.parents or not path.is_file():
        return None
    content_type = str(item.get("content_type") or mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    return path, content_type
