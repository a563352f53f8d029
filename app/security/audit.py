"""Reading the audit log (admins only): who revealed what, newest first, filtered by ticket, actor or action."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.errors import PermissionDenied, ValidationFailed
from app.security import chain
from app.security.chain import ChainReport
from app.security.models import AuditLog
from app.security.scope import Actor
from app.staff.models import Staff

__all__ = ["ACTION_LABELS", "AuditPage", "list_entries", "serialize", "verify_chain"]

ACTION_LABELS = {"reveal": "查看完整信息", "export": "导出客户数据", "erase": "删除客户数据", "merge": "合并客户",
                 "unmerge": "撤销合并", "verify": "确认联系方式",
                 # the console's repair tools and channel settings
                 "replay_outbox": "重放消息", "replay_inbound": "重放回调", "sync_now": "立即同步",
                 "kf_recover": "补偿拉取客服消息", "mailbox_save": "保存邮箱", "webhook_create": "新建事件推送",
                 "webhook_enable": "启用事件推送", "webhook_disable": "停用事件推送", "webhook_delete": "删除事件推送",
                 "webhook_replay": "重发事件推送",
                 "event_rule_create": "新建业务事件规则", "event_rule_update": "修改业务事件规则",
                 "event_rule_delete": "删除业务事件规则", "webchat_save": "保存网页聊天设置",
                 "token_create": "创建 API 令牌", "token_revoke": "吊销 API 令牌",
                 # the console's settings pages
                 "rules_save": "修改路由规则", "channel_save": "保存渠道账号", "staff_update": "修改成员设置",
                 "staff_skills": "修改成员技能", "staff_duty": "修改值班状态", "group_save": "保存技能组",
                 "sla_save": "修改 SLA 配置", "calendar_save": "保存工作日历", "notice_import": "导入节假日通知",
                 "kb_save": "保存知识库文章", "kb_status": "发布/下线知识库文章", "canned_save": "保存快捷回复",
                 "canned_delete": "删除快捷回复", "approval_policy": "修改审批设置"}
FIELD_LABELS = {"phone": "电话", "email": "邮箱"}
OBJECT_LABELS = {"ticket": "工单", "customer": "客户", "outbox": "发出的消息", "inbound_event": "收到的回调",
                 "sync_run": "企业微信同步", "channel_account": "渠道账号", "webhook": "事件推送订阅",
                 "event_rule": "业务事件规则", "api_token": "API 令牌",
                 "routing_rules": "路由规则", "staff": "成员", "skill_group": "技能组", "sla_policy": "SLA 策略",
                 "business_calendar": "工作日历", "holiday_notice": "节假日通知", "kb_article": "知识库文章",
                 "canned_reply": "快捷回复", "approval_policy": "审批设置"}


@dataclass
class AuditPage:
    items: list[AuditLog]
    next_cursor: str | None


def _encode_cursor(entry: AuditLog) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": entry.id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("cursor 无效", code="invalid_cursor") from exc


def _require_admin(actor: Actor) -> None:
    if actor.kind != "staff" or actor.role != "admin":
        raise PermissionDenied("只有管理员可以查看审计日志", code="admin_only")


async def list_entries(*, actor: Actor, ticket_id: int | None = None, staff_id: int | None = None,
                       action: str | None = None, cursor: str | None = None, limit: int = 50,
                       object_type: str | None = None, since: datetime | None = None,
                       until: datetime | None = None) -> AuditPage:
    """List audit rows, newest first, with cursor pagination (admins only)."""
    _require_admin(actor)
    if since is not None and until is not None and since > until:
        raise ValidationFailed.for_field("since", "开始时间不能晚于结束时间", code="invalid_period")
    query = AuditLog.all()
    if ticket_id is not None:
        query = query.filter(object_type="ticket", object_id=str(ticket_id))
    if staff_id is not None:
        query = query.filter(staff_id=staff_id)
    if action:
        query = query.filter(action=action)
    if object_type:
        query = query.filter(object_type=object_type)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lte=until)
    if cursor:
        query = query.filter(id__lt=_decode_cursor(cursor))
    limit = max(1, min(limit, 200))
    items = await query.order_by("-id").limit(limit + 1)
    next_cursor = _encode_cursor(items[limit - 1]) if len(items) > limit else None
    return AuditPage(items=list(items[:limit]), next_cursor=next_cursor)


async def verify_chain(*, actor: Actor) -> ChainReport:
    """Check the audit log's hash chain (admins only): intact, or the first broken row."""
    _require_admin(actor)
    return await chain.verify()


async def serialize(entries: list[AuditLog]) -> list[dict[str, Any]]:
    """Audit rows as the API returns them, with the actor's name (one query for all rows)."""
    staff_ids = {e.staff_id for e in entries if e.staff_id}  # type: ignore[attr-defined]
    names = dict(await Staff.filter(id__in=list(staff_ids)).values_list("id", "name")) if staff_ids else {}
    return [{
        "id": e.id,
        "created_at": e.created_at.isoformat(),
        "action": e.action,
        "action_label": ACTION_LABELS.get(e.action, "其他操作"),
        "actor_id": e.staff_id,  # type: ignore[attr-defined]
        "actor_name": names.get(e.staff_id, ""),  # type: ignore[attr-defined]
        "object_type": e.object_type,
        "object_label": OBJECT_LABELS.get(e.object_type, "其他"),
        "object_id": e.object_id,
        "field": e.field,
        "field_label": FIELD_LABELS.get(e.field, ""),
        "reason": e.reason,
    } for e in entries]
