"""Web chat sites as the console manages them: the embed snippet, the origin allow-list, the per-site limits
(messages per visitor and per IP address per minute, the longest message) and the mailbox that sends verification
codes; checked by ``WebchatSiteIn`` and saved by ``save_site`` for the console and ``gongdan channel add webchat``
alike; every change is an audit row."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.channels.models import ChannelAccount
from app.channels.webchat import accounts, visitors
from app.errors import ConfigError, NotFound, PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.staff.models import SkillGroup
from app.uow import atomic

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{1,62}$"
MAX_ORIGINS = 20
#: the channel kind of mailboxes (app.channels.email.accounts.KIND; named here, not imported across channels)
EMAIL_KIND = "email"


class WebchatSiteIn(BaseModel):
    """A site as the console's form describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(pattern=KEY_PATTERN, description="the site key in the embed snippet")
    name: str = Field(default="", max_length=128)
    origins: list[str] = Field(min_length=1, max_length=MAX_ORIGINS,
                               description="origins allowed to embed the widget, e.g. https://shop.example.com")
    bot: bool = True
    group_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    per_visitor: int = Field(default=visitors.PER_VISITOR, ge=1, le=600, description="messages per visitor a minute")
    per_ip: int = Field(default=visitors.PER_IP, ge=1, le=6000, description="messages per IP address a minute")
    max_chars: int = Field(default=visitors.MAX_CHARS, ge=50, le=10000, description="the longest message")
    #: the key of the mailbox that sends verification codes; empty: the first active mailbox
    verify_mailbox: str = Field(default="", max_length=64)

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            if not item.strip():
                continue
            try:
                out.append(accounts.normalise_origin(item))
            except ConfigError as exc:
                raise ValueError(f"不是合法的来源：{item[:100]}（应为 https://域名）") from exc
        if not out:
            raise ValueError("至少填写一个允许嵌入的来源")
        return sorted(set(out))


@dataclass(frozen=True)
class Limits:
    per_visitor: int
    per_ip: int
    max_chars: int


def limits(account: ChannelAccount) -> Limits:
    """The site's limits (the defaults where it sets none)."""
    c: dict[str, Any] = account.config or {}
    return Limits(per_visitor=int(c.get("per_visitor") or visitors.PER_VISITOR),
                  per_ip=int(c.get("per_ip") or visitors.PER_IP),
                  max_chars=int(c.get("max_chars") or visitors.MAX_CHARS))


def snippet(account: ChannelAccount, *, public_url: str) -> str:
    """The one ``<script>`` tag a site pastes into its pages."""
    base = public_url.rstrip("/")
    return f'<script src="{escape(base)}/static/webchat/widget.js" data-site="{escape(account.key)}" async></script>'


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理网页聊天", code="admin_only")


async def verify_mailboxes(*, actor: Actor) -> list[ChannelAccount]:
    """The mailboxes a site may send its verification codes from (the active ones), oldest first."""
    _require_admin(actor)
    return await ChannelAccount.filter(kind=EMAIL_KIND, active=True).order_by("id")


async def list_sites(*, actor: Actor) -> list[ChannelAccount]:
    """Every web chat site, oldest first."""
    _require_admin(actor)
    return await ChannelAccount.filter(kind=accounts.KIND).order_by("id")


async def get_site(*, actor: Actor, account_id: int) -> ChannelAccount:
    """One web chat site (404 when there is none)."""
    _require_admin(actor)
    row = await ChannelAccount.get_or_none(id=account_id, kind=accounts.KIND)
    if row is None:
        raise NotFound("网页聊天站点不存在")
    return row


async def save_site(*, actor: Actor, body: WebchatSiteIn) -> ChannelAccount:
    """Add a site or change the one with ``body.key`` (origins, bot, group, limits, verification mailbox);
    audited."""
    _require_admin(actor)
    existing = await ChannelAccount.get_or_none(key=body.key)
    if existing is not None and existing.kind != accounts.KIND:
        message = "这个站点标识已被其他渠道使用，请换一个"
        raise ValidationFailed.for_field("key", message, code="key_taken")
    if body.group_id is not None and not await SkillGroup.exists(id=body.group_id):
        message = "技能组不存在"
        raise ValidationFailed.for_field("group_id", message, code="no_such_group")
    if body.verify_mailbox and not await ChannelAccount.exists(kind=EMAIL_KIND, key=body.verify_mailbox,
                                                               active=True):
        message = "发送验证码的邮箱不存在或已停用"
        raise ValidationFailed.for_field("verify_mailbox", message, code="no_such_mailbox")
    async with atomic():
        account = await accounts.upsert_account(key=body.key, name=body.name, origins=body.origins, bot=body.bot,
                                                group_id=body.group_id)
        config = {**(account.config or {}), "per_visitor": body.per_visitor, "per_ip": body.per_ip,
                  "max_chars": body.max_chars, "verify_mailbox": body.verify_mailbox}
        await ChannelAccount.filter(id=account.id).update(config=config)
        await record_audit(actor=actor, action="webchat_save", object_type="channel_account",
                           object_id=str(account.id),
                           reason=f"{'修改' if existing else '新增'}站点 {body.key}：来源 {len(body.origins)} 个，"
                                  f"每访客 {body.per_visitor}/分钟，每 IP {body.per_ip}/分钟，"
                                  f"验证码邮箱 {body.verify_mailbox or '自动'}")
    return await ChannelAccount.get(id=account.id)
