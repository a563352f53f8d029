"""Canned replies: list what a member may use, create, change and delete them (managers), each change audited.

Admins manage shared replies and every group's; a lead manages the replies of the groups in their scope.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field
from tortoise.expressions import Q

from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.replies.models import CannedReply
from app.security.scope import Actor
from app.security.service import record_audit
from app.staff.models import SkillGroup
from app.uow import atomic

__all__ = ["PLACEHOLDERS", "CannedReplyIn", "delete_reply", "fill_placeholders", "get_reply", "list_for_reply_box",
           "list_replies", "save_reply"]

#: what a reply's text may hold, filled for the ticket at hand when it is offered in the reply box
PLACEHOLDERS = {"客户称呼": "客户的名字（不知道时为“客户”）", "工单号": "工单号", "客服姓名": "回复人的名字"}
#: older English spellings, kept working
_ALIASES = {"customer": "客户称呼", "number": "工单号"}
_PLACEHOLDER = re.compile(r"\{(" + "|".join(map(re.escape, [*PLACEHOLDERS, *_ALIASES])) + r")\}")


class CannedReplyIn(BaseModel):
    """A canned reply as a form or the API describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=2000)
    category: str = Field(default="", max_length=32)
    shortcut: str = Field(default="", pattern=r"^([/#]?[A-Za-z0-9_-]{1,15})?$")
    group_id: int | None = None
    active: bool = True


def _visible(actor: Actor) -> Q:
    if actor.is_admin:
        return Q()
    return Q(group_id=None) | Q(group_id__in=sorted(actor.group_ids or ()))


async def list_replies(*, actor: Actor, q: str | None = None, group_id: int | None = None,
                       include_inactive: bool = False) -> list[CannedReply]:
    """The replies ``actor`` may use (shared ones and their groups'), by category and title."""
    query = CannedReply.filter(_visible(actor))
    if not include_inactive:
        query = query.filter(active=True)
    if q:
        query = query.filter(Q(title__icontains=q) | Q(body__icontains=q) | Q(shortcut__icontains=q))
    if group_id is not None:
        query = query.filter(group_id=group_id)
    return list(await query.order_by("category", "title", "id").prefetch_related("group"))


async def list_for_reply_box(*, actor: Actor, ticket_group_id: int | None) -> list[CannedReply]:
    """Active replies offered when replying: shared ones and the actor's groups' (an admin: the ticket's group's)."""
    if actor.is_admin:
        scope = Q(group_id=None) | Q(group_id=ticket_group_id) if ticket_group_id is not None else Q(group_id=None)
    else:
        scope = _visible(actor)
    return list(await CannedReply.filter(scope, active=True).order_by("category", "title", "id"))


def fill_placeholders(*, body: str, values: Mapping[str, str]) -> str:
    """``body`` with {客户称呼} {工单号} {客服姓名} (and {customer} {number}) replaced; other braces left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(_ALIASES.get(m.group(1), m.group(1)), m.group(0)), body)


async def get_reply(*, actor: Actor, reply_id: int) -> CannedReply:
    """One reply ``actor`` may see (404 otherwise)."""
    row = await CannedReply.filter(_visible(actor), id=reply_id).first()
    if row is None:
        raise NotFound("快捷回复不存在。")
    return row


def _may_manage(actor: Actor, group_id: int | None) -> None:
    if actor.role not in ("admin", "lead"):
        raise PermissionDenied("只有管理员和组长可以管理快捷回复", code="managers_only")
    if actor.is_admin:
        return
    if group_id is None or group_id not in (actor.group_ids or ()):
        raise PermissionDenied("组长只能管理自己技能组的快捷回复", code="group_out_of_scope")


async def save_reply(*, actor: Actor, reply_id: int | None, body: CannedReplyIn) -> CannedReply:
    """Create (``reply_id`` None) or change a reply; audited."""
    row = None
    if reply_id is not None:
        row = await get_reply(actor=actor, reply_id=reply_id)
        _may_manage(actor, row.group_id)  # type: ignore[attr-defined]
    _may_manage(actor, body.group_id)
    if body.group_id is not None and not await SkillGroup.filter(id=body.group_id).exists():
        raise ValidationFailed.for_field("group_id", "技能组不存在", code="unknown_group")
    if body.shortcut and await CannedReply.filter(shortcut=body.shortcut, active=True).exclude(
            id=reply_id or 0).exists():
        raise ValidationFailed.for_field("shortcut", f"快捷键 {body.shortcut} 已被其他快捷回复使用",
                                         code="shortcut_taken")
    values = body.model_dump()
    async with atomic():
        if row is None:
            row = await CannedReply.create(**values, created_by_id=actor.staff_id)
        else:
            await CannedReply.filter(id=row.id).update(**values)
        await record_audit(actor=actor, action="canned_save", object_type="canned_reply", object_id=str(row.id),
                           reason=f"{'修改' if reply_id else '新建'}快捷回复「{body.title}」")
    await row.refresh_from_db()
    return row


async def delete_reply(*, actor: Actor, reply_id: int) -> None:
    """Delete a reply; audited."""
    row = await get_reply(actor=actor, reply_id=reply_id)
    _may_manage(actor, row.group_id)  # type: ignore[attr-defined]
    async with atomic():
        await CannedReply.filter(id=row.id).delete()
        await record_audit(actor=actor, action="canned_delete", object_type="canned_reply", object_id=str(row.id),
                           reason=f"删除快捷回复「{row.title}」")
