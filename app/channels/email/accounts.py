"""Mailboxes as channel accounts: the address, IMAP and SMTP servers and the login (the password encrypted)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.channels.models import ChannelAccount
from app.errors import ConfigError
from app.security.crypto import decrypt_field, encrypt_field

KIND = "email"
SECURITY = ("ssl", "starttls", "none")
#: automatic messages (acknowledgements, auto-replies, notices) one address or one ticket gets per hour at most
AUTO_CAP_SENDER_HOUR = 5
AUTO_CAP_TICKET_HOUR = 3


@dataclass(frozen=True)
class MailAccount:
    account_id: int
    key: str
    name: str
    address: str
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    username: str
    password: str
    folder: str
    auto_cap_sender_hour: int
    auto_cap_ticket_hour: int
    #: hold an IMAP IDLE connection where the server offers it (off: the minute poll only)
    idle: bool = True

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1]


def default_security(port: int, *, imap: bool) -> str:
    """The usual security of a well-known port: 993/465 implicit TLS, 143/587 STARTTLS, anything else none."""
    if port in ((993,) if imap else (465,)):
        return "ssl"
    if port in ((143,) if imap else (587, 25)):
        return "starttls"
    return "none"


async def upsert_account(*, key: str, name: str, address: str, imap_host: str, imap_port: int, smtp_host: str,
                         smtp_port: int, username: str, password: str, imap_security: str = "",
                         smtp_security: str = "", folder: str = "INBOX", idle: bool = True) -> ChannelAccount:
    """Create or update a mailbox channel (every mail becomes a ticket, the bot stays out; ``idle`` False leaves
    it to the minute poll even where the server offers IDLE)."""
    address = address.strip().lower()
    if "@" not in address:
        raise ConfigError("the mailbox address must be an e-mail address")
    imap_security = imap_security or default_security(imap_port, imap=True)
    smtp_security = smtp_security or default_security(smtp_port, imap=False)
    if imap_security not in SECURITY or smtp_security not in SECURITY:
        raise ConfigError(f"security must be one of {', '.join(SECURITY)}")
    config: dict[str, Any] = {
        "address": address, "imap_host": imap_host, "imap_port": int(imap_port), "imap_security": imap_security,
        "smtp_host": smtp_host, "smtp_port": int(smtp_port), "smtp_security": smtp_security,
        "username": username or address, "folder": folder or "INBOX", "idle": bool(idle),
        # channel policy: every email conversation is a ticket, and the chat bot does not answer mail
        "every_message": True, "bot": False,
        "auto_cap_sender_hour": AUTO_CAP_SENDER_HOUR, "auto_cap_ticket_hour": AUTO_CAP_TICKET_HOUR,
    }
    account, _ = await ChannelAccount.update_or_create(
        key=key,
        defaults={"kind": KIND, "name": name or address, "active": True, "config": config,
                  "secrets_enc": encrypt_field(json.dumps({"password": password}))},
    )
    return account


def from_row(row: ChannelAccount) -> MailAccount:
    """The mailbox settings of a channel account row (the password decrypted)."""
    c = row.config or {}
    secrets = json.loads(decrypt_field(row.secrets_enc)) if row.secrets_enc else {}
    address = str(c.get("address", ""))
    return MailAccount(
        account_id=row.id, key=row.key, name=row.name, address=address,
        imap_host=str(c.get("imap_host", "")), imap_port=int(c.get("imap_port") or 993),
        imap_security=str(c.get("imap_security") or "ssl"),
        smtp_host=str(c.get("smtp_host", "")), smtp_port=int(c.get("smtp_port") or 465),
        smtp_security=str(c.get("smtp_security") or "ssl"),
        username=str(c.get("username") or address), password=str(secrets.get("password", "")),
        folder=str(c.get("folder") or "INBOX"),
        auto_cap_sender_hour=int(c.get("auto_cap_sender_hour", AUTO_CAP_SENDER_HOUR)),
        auto_cap_ticket_hour=int(c.get("auto_cap_ticket_hour", AUTO_CAP_TICKET_HOUR)),
        idle=bool(c.get("idle", True)),
    )


async def by_id(account_id: int) -> MailAccount | None:
    """The mailbox of an outbox row or a message."""
    row = await ChannelAccount.get_or_none(id=account_id, kind=KIND)
    return from_row(row) if row is not None else None


async def own_addresses() -> set[str]:
    """Every mailbox address of the desk (mail from them is never answered automatically)."""
    rows = await ChannelAccount.filter(kind=KIND)
    return {str((r.config or {}).get("address", "")).lower() for r in rows} - {""}
