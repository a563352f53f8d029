"""Mailboxes as the console manages them: list with the last poll's outcome and how new mail is noticed (IDLE or
polling), add or change one (the same ``upsert_account`` as ``gongdan channel add email``, the same checks), and
test the IMAP and SMTP logins."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.channels.email import accounts, imap
from app.channels.email.models import MailboxCursor
from app.channels.models import ChannelAccount
from app.errors import ConfigError, NotFound, PermissionDenied, ValidationFailed
from app.security.scope import Actor
from app.security.service import record_audit
from app.timeutil import utcnow
from app.uow import atomic

#: the seconds a connection test waits for each server
TEST_TIMEOUT = 10.0
KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,62}$"


class MailboxIn(BaseModel):
    """A mailbox as the console's form (and the CLI's flags) describe it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(pattern=KEY_PATTERN, description="slug naming the mailbox (lower-case letters, digits, - _)")
    name: str = Field(default="", max_length=128)
    address: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    imap_host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_security: Literal["", "ssl", "starttls", "none"] = ""
    smtp_host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    smtp_port: int = Field(default=465, ge=1, le=65535)
    smtp_security: Literal["", "ssl", "starttls", "none"] = ""
    username: str = Field(default="", max_length=254)
    #: empty when changing a mailbox: the stored password is kept
    password: str = Field(default="", max_length=256)
    folder: str = Field(default="INBOX", min_length=1, max_length=128)
    #: hold an IMAP IDLE connection where the server offers it; False: the minute poll only
    idle: bool = True

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


@dataclass(frozen=True)
class MailboxState:
    """A mailbox and how its last poll went."""

    account: ChannelAccount
    address: str
    polled_at: datetime | None
    last_error: str
    last_uid: int
    #: the mailbox's IDLE setting
    idle: bool
    #: how new mail is noticed now: "idle" (a watcher holds IDLE) or "poll" (the minute poll only)
    mode: str
    #: why it is polled, in Chinese ("" while idling)
    mode_note: str


def _mode(*, idle: bool, cursor: MailboxCursor | None, now: datetime) -> tuple[str, str]:
    if not idle:
        return "poll", "已关闭 IDLE，每分钟收一次信"
    if cursor is None or not cursor.mode:
        return "poll", "尚未检测服务器是否支持 IDLE，暂时每分钟收一次信"
    if cursor.mode == "poll":
        return "poll", "服务器不支持 IDLE，每分钟收一次信"
    if cursor.idle_until is None or cursor.idle_until <= now:
        # a watcher renews the lease while it lives: none does now (stopped, or its process died)
        return "poll", "IDLE 连接未建立，暂时每分钟收一次信"
    return "idle", ""


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of a connection test: each server's login, and a Chinese sentence when it failed."""

    imap_ok: bool
    imap_message: str
    smtp_ok: bool
    smtp_message: str


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理邮箱", code="admin_only")


async def list_mailboxes(*, actor: Actor) -> list[MailboxState]:
    """Every mailbox with its last poll (when, and the error if it failed)."""
    _require_admin(actor)
    rows = await ChannelAccount.filter(kind=accounts.KIND).order_by("id")
    cursors = {c.channel_account_id: c for c in  # type: ignore[attr-defined]
               await MailboxCursor.filter(channel_account_id__in=[r.id for r in rows])}
    out = []
    now = utcnow()
    for row in rows:
        cursor = cursors.get(row.id)
        idle = bool((row.config or {}).get("idle", True))
        mode, note = _mode(idle=idle, cursor=cursor, now=now)
        out.append(MailboxState(account=row, address=str((row.config or {}).get("address", "")),
                                polled_at=cursor.polled_at if cursor else None,
                                last_error=(cursor.last_error or "") if cursor else "",
                                last_uid=cursor.last_uid if cursor else 0, idle=idle, mode=mode, mode_note=note))
    return out


async def get_mailbox(*, actor: Actor, account_id: int) -> ChannelAccount:
    """One mailbox (404 when there is none)."""
    _require_admin(actor)
    row = await ChannelAccount.get_or_none(id=account_id, kind=accounts.KIND)
    if row is None:
        raise NotFound("邮箱不存在")
    return row


async def save_mailbox(*, actor: Actor, body: MailboxIn) -> ChannelAccount:
    """Add a mailbox or change the one with ``body.key`` (an empty password keeps the stored one; IDLE switched
    back on is tried again at once); audited."""
    _require_admin(actor)
    existing = await ChannelAccount.get_or_none(key=body.key)
    if existing is not None and existing.kind != accounts.KIND:
        raise ValidationFailed.for_field("key", "这个标识已被其他渠道使用，请换一个", code="key_taken")
    password = body.password
    if not password:
        if existing is None:
            raise ValidationFailed.for_field("password", "请填写密码或客户端授权码", code="password_required")
        password = accounts.from_row(existing).password
    async with atomic():
        try:
            account = await accounts.upsert_account(
                key=body.key, name=body.name, address=body.address, imap_host=body.imap_host,
                imap_port=body.imap_port, smtp_host=body.smtp_host, smtp_port=body.smtp_port,
                username=body.username or body.address, password=password, imap_security=body.imap_security,
                smtp_security=body.smtp_security, folder=body.folder, idle=body.idle)
        except ConfigError as exc:
            raise ValidationFailed.for_field("address", f"邮箱设置不合法：{exc}", code="invalid_mailbox") from exc
        if existing is not None and body.idle and not (existing.config or {}).get("idle", True):
            # switched back on: the server is asked afresh at the next watch (one once found without IDLE would
            # otherwise be asked again only hourly)
            cursors = MailboxCursor.filter(channel_account_id=account.id)
            await cursors.filter(mode="poll").update(idle_until=None)
            await cursors.update(mode="")
        await record_audit(actor=actor, action="mailbox_save", object_type="channel_account",
                           object_id=str(account.id),
                           reason=f"{'修改' if existing else '新增'}邮箱 {body.address}"
                                  f"（IDLE {'开' if body.idle else '关'}）")
    return account


def _imap_login(mailbox: accounts.MailAccount) -> None:
    client = imap._connect(mailbox)
    try:
        client.select_folder(mailbox.folder, readonly=True)
    finally:
        try:
            client.logout()
        except Exception:  # the connection is gone already; nothing to close
            pass


def _why(exc: BaseException) -> str:
    """A Chinese sentence for a connection failure (never the server's text: it may echo the login)."""
    name = type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or "LoginError" in name or "auth" in str(exc).lower():
        return "登录失败：用户名或密码（授权码）不正确"
    if isinstance(exc, ssl.SSLError):
        return "加密连接失败：请检查端口与加密方式是否匹配"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "连接超时：服务器没有响应"
    if isinstance(exc, ConnectionRefusedError | aiosmtplib.SMTPConnectError):
        return "无法连接：服务器拒绝连接，请检查地址和端口"
    if isinstance(exc, OSError):
        return "无法连接：请检查服务器地址和端口"
    return f"连接失败（{name}）"


async def check_connection(*, actor: Actor, account_id: int) -> ConnectionCheck:
    """Log in to the mailbox's IMAP and SMTP servers (nothing is read or sent) and say how each went."""
    row = await get_mailbox(actor=actor, account_id=account_id)
    mailbox = accounts.from_row(row)
    try:
        await asyncio.wait_for(asyncio.to_thread(_imap_login, mailbox), TEST_TIMEOUT)
        imap_ok, imap_message = True, "收信（IMAP）登录成功"
    except Exception as exc:
        imap_ok, imap_message = False, _why(exc)
    client = aiosmtplib.SMTP(hostname=mailbox.smtp_host, port=mailbox.smtp_port,
                             use_tls=mailbox.smtp_security == "ssl",
                             start_tls=True if mailbox.smtp_security == "starttls" else False, timeout=TEST_TIMEOUT)
    try:
        await client.connect()
        try:
            if mailbox.username and mailbox.password:
                await client.login(mailbox.username, mailbox.password)
        finally:
            client.close()
        smtp_ok, smtp_message = True, "发信（SMTP）登录成功"
    except Exception as exc:
        smtp_ok, smtp_message = False, _why(exc)
    return ConnectionCheck(imap_ok=imap_ok, imap_message=imap_message, smtp_ok=smtp_ok, smtp_message=smtp_message)
