"""微信客服 accounts as the console manages them: register one by its open_kfid (the account itself is created in
WeCom's admin or by kf/account/add, 添加客服账号 https://kf.weixin.qq.com/api/doc/path/94662), rename it; audited.
Its messages arrive through the self-built app's callback (kf_msg_or_event) and ``sync.pull``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.channels.models import ChannelAccount
from app.channels.wecom_kf.sync import KIND, ensure_account
from app.errors import PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.uow import atomic

__all__ = ["KfAccountIn", "save_account"]


class KfAccountIn(BaseModel):
    """A kf account as the console's form describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    open_kfid: str = Field(pattern=r"^wk[0-9A-Za-z_-]{6,62}$")
    name: str = Field(default="", max_length=128)


async def save_account(*, actor: Actor, body: KfAccountIn) -> ChannelAccount:
    """Register a kf account (or rename it); audited."""
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理渠道账号", code="admin_only")
    existing = await ChannelAccount.get_or_none(key=body.open_kfid)
    if existing is not None and existing.kind != KIND:
        message = "这个 open_kfid 已被其他渠道使用"
        raise ValidationFailed.for_field("open_kfid", message, code="key_taken")
    async with atomic():
        account = await ensure_account(open_kfid=body.open_kfid, name=body.name)
        await record_audit(actor=actor, action="channel_save", object_type="channel_account",
                           object_id=str(account.id),
                           reason=f"{'修改' if existing else '新增'}微信客服账号 {body.name or body.open_kfid}")
    return account
