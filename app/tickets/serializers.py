"""JSON views of tickets, messages and events.

Personal data (phone numbers, ID-card numbers, e-mail addresses) is masked for everyone, admins and leads included:
seeing a value in clear is an explicit, audited reveal (POST /tickets/{id}/reveal), never a side effect of a read.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from app.conversations.models import Message
from app.labels import CHANNEL_LABELS
from app.security.crypto import decrypt_field
from app.security.pii import mask_data, mask_phone, mask_text
from app.security.scope import Actor
from app.tickets.models import Ticket, TicketEvent
from app.tickets.states import STATUS_LABELS, Status

#: Chinese names of every TicketEvent kind written anywhere (tickets, channels, bot, SLA, approvals, H5)
EVENT_LABELS = {
    "created": "创建工单",
    "intake": "会话转为工单",
    "status_changed": "状态变更",
    "assigned": "处理人变更",
    "priority_changed": "优先级变更",
    "group_changed": "技能组变更",
    "updated": "修改工单",
    "merged": "合并工单",
    "replied": "回复客户",
    "note": "内部备注",
    "customer_message": "客户留言",
    "rated": "客户评价",
    "survey": "客户回访",
    "bot_handoff": "机器人转人工",
    "delivery_failed": "消息发送失败",
    "delivery_unknown": "结果未知",
    "delivery_resent": "重新发送",
    "kf_session": "微信客服会话变更",
    "queue_released": "离开非工作时间队列",
    "sla_breached": "服务时限超时",
    "sla_escalated": "超时升级",
    "escalation_fallback": "超时升级转兜底审批人",
    "approval_requested": "发起审批",
    "approval_step": "审批意见",
    "approval_escalated": "审批超时上报",
    "approval_fallback": "兜底审批人接手",
    "approval_cancelled": "审批已撤销",
    "approval_approved": "审批通过",
    "approval_rejected": "审批驳回",
    "refund_code_sent": "已发送退款验证码",
}


def event_label(kind: str) -> str:
    """The Chinese name of an event kind (an unknown kind is shown as 其他变更, never as its identifier)."""
    return EVENT_LABELS.get(kind, "其他变更")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def ticket(t: Ticket, *, actor: Actor, detail: bool = False) -> dict[str, Any]:
    """A ticket as the API returns it."""
    out: dict[str, Any] = {
        "id": t.id,
        "number": t.number,
        "subject": mask_text(t.subject),
        "status": t.status,
        "status_label": STATUS_LABELS[Status(t.status)],
        "priority": t.priority,
        "category": t.category,
        "order_no": t.order_no,
        "customer_id": t.customer_id,  # type: ignore[attr-defined]
        "group_id": t.group_id,  # type: ignore[attr-defined]
        "assignee_id": t.assignee_id,  # type: ignore[attr-defined]
        "channel_account_id": t.channel_account_id,  # type: ignore[attr-defined]
        "tags": t.tags,
        "version": t.version,
        "created_at": _iso(t.created_at),
        "updated_at": _iso(t.updated_at),
        "last_activity_at": _iso(t.last_activity_at),
        "first_response_due": _iso(t.first_response_due),
        "next_response_due": _iso(t.next_response_due),
        "resolution_due": _iso(t.resolution_due),
    }
    if detail:
        out.update(
            description=mask_text(t.description),
            custom_fields=mask_data(t.custom_fields),
            phone=mask_phone(decrypt_field(t.phone_enc)) if t.phone_enc else None,
            first_responded_at=_iso(t.first_responded_at),
            resolved_at=_iso(t.resolved_at),
            closed_at=_iso(t.closed_at),
            merged_into_id=t.merged_into_id,  # type: ignore[attr-defined]
        )
    return out


#: masking a subject is a pure function of its text, and its regular expressions were the largest cost of a list
#: page after the query (issue 15); the same tickets come back on every refresh of an agent's lists
_masked_subject = functools.lru_cache(maxsize=8192)(mask_text)


def list_item(row: Any, *, actor: Actor) -> dict[str, Any]:
    """A ticket in a list, from a light row of service.list_tickets (datetimes already ISO text): the same JSON as
    `ticket` without detail, plus the current `rating`."""
    return {
        "id": row.id,
        "number": row.number,
        "subject": _masked_subject(row.subject),
        "status": row.status,
        # Status is a StrEnum: its members hash and compare as their values
        "status_label": STATUS_LABELS[row.status],
        "priority": row.priority,
        "category": row.category,
        "order_no": row.order_no,
        "customer_id": row.customer_id,
        "group_id": row.group_id,
        "assignee_id": row.assignee_id,
        "channel_account_id": row.channel_account_id,
        "tags": row.tags,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_activity_at": row.last_activity_at,
        "first_response_due": row.first_response_due,
        "next_response_due": row.next_response_due,
        "resolution_due": row.resolution_due,
        "rating": row.rating,
    }


def message(m: Message, *, actor: Actor, channel_kind: str | None = None) -> dict[str, Any]:
    """A message on a ticket's timeline; personal data inside the text is masked."""
    return {
        "id": m.id,
        "direction": m.direction,
        "author_kind": m.author_kind,
        "staff_id": m.staff_id,  # type: ignore[attr-defined]
        "msg_type": m.msg_type,
        "text": mask_text(m.text),
        "media": [{"kind": x.get("kind"), "url": f"/media/{x.get('path')}"} for x in (m.media or []) if x.get("path")],
        "channel": CHANNEL_LABELS.get(channel_kind or "", None),
        "outbox_id": m.outbox_id,
        "created_at": _iso(m.created_at),
    }


def event(e: TicketEvent, *, actor: Actor) -> dict[str, Any]:
    """An audit-trail entry."""

    def shown(value: str | None) -> str | None:
        return mask_text(value) if value else value

    out: dict[str, Any] = {
        "id": e.id,
        "kind": e.kind,
        "kind_label": event_label(e.kind),
        "actor_kind": e.actor_kind,
        "actor_id": e.actor_id,  # type: ignore[attr-defined]
        "old": shown(e.old),
        "new": shown(e.new),
        "reason": shown(e.reason),
        "created_at": _iso(e.created_at),
    }
    if e.kind == "created" and e.data:
        out["decision"] = decision(e.data)
    return out


def decision(data: dict[str, Any]) -> dict[str, Any]:
    """The intake decision kept on a ticket's `created` event: where it came from, why, which rules did what."""
    result = dict(data.get("result") or {})
    return {
        "source": data.get("source"),
        "source_label": SOURCE_LABELS.get(str(data.get("source")), "其他"),
        "reason": data.get("reason"),
        "keywords": list(data.get("keywords") or []),
        "matched": list(data.get("matched") or []),
        "steps": [{k: (mask_text(v) if isinstance(v, str) else v) for k, v in step.items()}
                  for step in data.get("steps") or []],
        "result": {k: v for k, v in result.items() if k != "auto_reply"},
    }


#: where a ticket came from, as staff read it (the intake record's `source`)
SOURCE_LABELS = {
    "wechat_mp": "公众号", "wecom_kf": "微信客服", "wecom_app": "企业微信", "email": "邮件", "webchat": "网页",
    "staff_h5": "客服新建", "sidebar": "聊天工具栏", "customer_h5": "客户自助提交", "api": "接口", "event": "业务事件",
    "webchat_offline": "网页留言",
}
