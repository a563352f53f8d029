"""Official Accounts as the console manages them: add one or change it (the same ``upsert_account`` as
``gongdan channel add wechat-mp``), with the shape of each credential checked first and an audit row per change.

Credentials follow 接入指南 https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
(Token: 3-32 letters or digits; EncodingAESKey: 43 letters or digits). Secrets left empty when changing an account
keep the stored ones; they are never shown again.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from app.channels.models import ChannelAccount
from app.channels.wechat_mp import accounts
from app.errors import ConfigError, PermissionDenied, ValidationFailed
from app.security.crypto import decrypt_field
from app.security.scope import Actor
from app.security.service import record_audit
from app.uow import atomic

__all__ = ["KEY_PATTERN", "MPAccountIn", "save_account"]

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,62}$"


class MPAccountIn(BaseModel):
    """An Official Account as the console's form describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(pattern=KEY_PATTERN, description="slug in the callback URL (lower-case letters, digits, - _)")
    name: str = Field(default="", max_length=128)
    appid: str = Field(pattern=r"^wx[0-9A-Za-z]{6,30}$")
    #: empty when changing an account: the stored one is kept
    secret: str = Field(default="", max_length=128)
    token: str = Field(default="", pattern=r"^([A-Za-z0-9]{3,32})?$")
    aes_key: str = Field(default="", pattern=r"^([A-Za-z0-9]{43})?$")
    template_id: str = Field(default="", max_length=64)


async def save_account(*, actor: Actor, body: MPAccountIn) -> ChannelAccount:
    """Add an Official Account or change the one with ``body.key`` (empty secrets keep the stored ones); audited."""
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理渠道账号", code="admin_only")
    existing = await ChannelAccount.get_or_none(key=body.key)
    if existing is not None and existing.kind != accounts.KIND:
        raise ValidationFailed.for_field("key", "这个标识已被其他渠道使用，请换一个", code="key_taken")
    stored = json.loads(decrypt_field(existing.secrets_enc)) if existing and existing.secrets_enc else {}
    secret = body.secret or stored.get("secret", "")
    token = body.token or stored.get("token", "")
    aes_key = body.aes_key or stored.get("aes_key", "")
    if not secret:
        raise ValidationFailed.for_field("secret", "请填写 AppSecret", code="secret_required")
    if not token:
        raise ValidationFailed.for_field("token", "请填写令牌（Token）", code="token_required")
    previous = stored.get("aes_key", "") if body.aes_key and stored.get("aes_key") != body.aes_key else \
        stored.get("previous_aes_key", "")
    async with atomic():
        try:
            account = await accounts.upsert_account(
                key=body.key, name=body.name or body.key, appid=body.appid, secret=secret, token=token,
                aes_key=aes_key, previous_aes_key=previous,
                template_id=body.template_id, is_default=existing.is_default if existing else False,
                accept_plain=bool((existing.config or {}).get("accept_plain")) if existing else False)
        except ConfigError as exc:
            raise ValidationFailed.for_field("aes_key", f"EncodingAESKey 不合法：{exc}",
                                             code="invalid_aes_key") from exc
        await record_audit(actor=actor, action="channel_save", object_type="channel_account",
                           object_id=str(account.id),
                           reason=f"{'修改' if existing else '新增'}公众号 {body.key}（{body.appid}）")
    return account
