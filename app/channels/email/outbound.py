"""Delivery by SMTP (aiosmtplib) with the mailbox's own credentials.

Every mail carries a Message-ID of ours, ``<gd{outbox id}.{16 hex}@{mailbox domain}>`` (the same for every attempt
of one row: a retried send is recognised as the same mail by the receiving side), In-Reply-To/References of the
customer's latest mail on the ticket, and the ticket number in the subject (``Re: 打印机报修 [GD-20261204-0001]``).

Loops and noise: an automatic message (anything but a staff reply: acknowledgements, auto-replies, notices, status
answers) is not sent when the customer's latest mail must not be answered automatically (Auto-Submitted, X-Loop,
Precedence bulk/list/junk, X-Auto-Response-Suppress, one of our own addresses), nor beyond the per-hour caps per
address and per ticket; the row is then ``failed`` with ``delivery_state`` ``suppressed:<why>``. Automatic mail we
send says so itself (``Auto-Submitted: auto-replied``, RFC 3834).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any

import aiosmtplib
from tortoise.expressions import Q

from app.channels.base import DeliveryResult
from app.channels.email import accounts
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.errors import PermanentChannelError, TemporaryChannelError
from app.outbox.models import OutboxMessage
from app.security.tokens import detokenise
from app.settings import get_settings
from app.tickets.models import Ticket
from app.timeutil import utcnow

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage as Row

TIMEOUT = 30.0
#: what every mail of ours says under the text
FOOTER = "——\n请直接回复本邮件，并保留主题中的工单号，您的回复会自动归入同一工单。"
DEFAULT_SUBJECT = "您的工单"


def message_id_local(outbox_id: int) -> str:
    """Our Message-ID's local part for an outbox row (stable across attempts, not guessable)."""
    key = get_settings().secret_key
    digest = hmac.new(str(key).encode(), f"email:{outbox_id}".encode(), hashlib.sha256).hexdigest()
    return f"gd{outbox_id}.{digest[:16]}"


def is_automatic(row: Row) -> bool:
    """Everything but a staff reply is an automatic message."""
    return "message_id" not in row.payload


async def _latest_inbound(row: Row, account: accounts.MailAccount) -> Message | None:
    """The customer's latest mail the row answers: on its ticket, else from its recipient on this mailbox."""
    ticket_id = row.ticket_id  # type: ignore[attr-defined]
    if ticket_id is not None:
        found = await Message.filter(ticket_id=ticket_id, direction="in").order_by("-id").first()
        if found is not None:
            return found
    identity = await CustomerIdentity.get_or_none(kind="email", scope=account.key, value=row.recipient)
    if identity is None:
        return None
    return await Message.filter(customer_id=identity.customer_id,  # type: ignore[attr-defined]
                                channel_account_id=account.account_id,
                                direction="in").order_by("-id").first()


async def suppressed(row: Row, account: accounts.MailAccount, latest: Message | None) -> str:
    """Why an automatic message must not go out now ("" when it may)."""
    auto = ((latest.data or {}).get("email") or {}).get("auto") if latest is not None else ""
    if auto:
        return str(auto)
    since = utcnow() - timedelta(hours=1)
    automatic = Q(dedupe_key=None) | ~Q(dedupe_key__startswith="reply:")
    sent = OutboxMessage.filter(automatic, channel=accounts.KIND, status="sent", sent_at__gte=since)
    if await sent.filter(channel_account_id=account.account_id, recipient=row.recipient).count() >= (
            account.auto_cap_sender_hour):
        return "sender_cap"
    ticket_id = row.ticket_id  # type: ignore[attr-defined]
    if ticket_id is not None and await sent.filter(ticket_id=ticket_id).count() >= account.auto_cap_ticket_hour:
        return "ticket_cap"
    return ""


async def build(row: Row, account: accounts.MailAccount, latest: Message | None) -> EmailMessage:
    """The mail for one outbox row (its payload already in clear)."""
    ticket = await Ticket.get_or_none(id=row.ticket_id) if row.ticket_id is not None else None  # type: ignore[attr-defined]
    theirs: dict[str, Any] = ((latest.data or {}).get("email") or {}) if latest is not None else {}
    subject = str(theirs.get("subject") or "")
    if ticket is not None:
        if not subject:
            subject = await detokenise(ticket.subject)
        if f"[{ticket.number}]" not in subject:
            subject = f"{subject} [{ticket.number}]".strip()
    subject = subject or str(row.payload.get("subject") or "") or DEFAULT_SUBJECT
    if theirs and not subject.lower().startswith(("re:", "答复:", "回复:")):
        subject = f"Re: {subject}"
    mail = EmailMessage()
    mail["From"] = formataddr((account.name, account.address)) if account.name != account.address else account.address
    mail["To"] = row.recipient
    mail["Subject"] = " ".join(subject.split())[:250]
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{message_id_local(row.id)}@{account.domain}>"
    parent = str(theirs.get("message_id") or "")
    if parent:
        refs = [*list(theirs.get("references") or [])[-9:], parent]
        mail["In-Reply-To"] = parent
        mail["References"] = " ".join(dict.fromkeys(refs))
    if is_automatic(row):
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    text = str(row.payload.get("text") or "")
    # a mail that is no conversation (a verification code) does not ask to be answered
    body = f"{text}\n" if row.payload.get("plain") else f"{text}\n\n{FOOTER}\n"
    mail.set_content(body, charset="utf-8")
    return mail


async def smtp_send(account: accounts.MailAccount, mail: EmailMessage) -> None:
    """Send one mail through the mailbox's SMTP server; errors mapped to temporary or permanent."""
    try:
        await aiosmtplib.send(
            mail, hostname=account.smtp_host, port=account.smtp_port, username=account.username or None,
            password=account.password or None, use_tls=account.smtp_security == "ssl",
            start_tls=True if account.smtp_security == "starttls" else False, timeout=TIMEOUT)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            raise PermanentChannelError("收件人地址被邮件服务器拒绝", code="smtp_recipient_refused") from exc
        raise TemporaryChannelError(f"recipient deferred: {codes}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            raise PermanentChannelError(f"邮件服务器拒绝发送（{exc.code}）", code=f"smtp_{exc.code}") from exc
        raise TemporaryChannelError(f"smtp {exc.code}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TemporaryChannelError(f"smtp unavailable: {type(exc).__name__}") from exc


class EmailAdapter:
    kind = accounts.KIND
    #: a retried row keeps its Message-ID, so the receiving side sees one mail, not two
    resend_safe = True

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        account_id = message.channel_account_id  # type: ignore[attr-defined]
        account = await accounts.by_id(account_id) if account_id is not None else None
        if account is None:
            raise PermanentChannelError("这条消息所属的邮箱已不存在", code="no_account")
        if "@" not in message.recipient:
            raise PermanentChannelError("客户没有邮箱地址", code="no_recipient")
        latest = await _latest_inbound(message, account)
        if is_automatic(message):
            why = await suppressed(message, account, latest)
            if why:
                raise PermanentChannelError(f"自动邮件未发送（{why}）", code=f"suppressed:{why}")
        mail = await build(message, account, latest)
        await smtp_send(account, mail)
        return DeliveryResult(provider_msg_id=message_id_local(message.id),
                              detail={"message_id": str(mail["Message-ID"])})
