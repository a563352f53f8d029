"""Stored mail -> InboundMessage (pure), and the processor the inbound job calls for mailbox events.

An ``InboundEvent`` of a mailbox holds JSON ``{"uid", "uidvalidity", "raw": base64 of the RFC 5322 bytes}``. The
processor recognises bounces (marked on the outbox row they are about, never a ticket), threads the mail (the
ticket number in the subject, then In-Reply-To/References against our own Message-IDs and the customer's earlier
mail) and hands it to ``app.intake.receive``; the original and the attachments are stored as the message's media.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import uuid
from typing import Any

from tortoise.expressions import Q

from app.channels.base import InboundMessage, MediaRef
from app.channels.email import accounts
from app.channels.email.parse import OUR_ID, Attachment, ParsedMail, parse_mail
from app.channels.models import ChannelAccount, InboundEvent, bounded_dedupe_key
from app.conversations.models import Message
from app.logs import get_logger
from app.outbox.models import OutboxMessage
from app.settings import get_settings
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import local, utcnow

log = get_logger(__name__)

KIND = accounts.KIND
#: Message.provider_msg_id's width
PROVIDER_ID_LENGTH = 128
TRUNCATED_NOTE = "（邮件超过 25 MB，正文和附件未下载，请到邮箱中查看原邮件）"
BOUNCED_REASON = "邮件被退回，客户没有收到这封邮件（{status}）。请核对客户的邮箱地址。"


def provider_id(message_id: str) -> str:
    """A mail's Message-ID as the message's provider id (hashed when longer than the column)."""
    if len(message_id) <= PROVIDER_ID_LENGTH:
        return message_id
    return f"{message_id[:60]}#{hashlib.sha256(message_id.encode('utf-8')).hexdigest()}"


def dedupe_key(*, account_id: int, message_id: str, uidvalidity: int, uid: int) -> str:
    """The InboundEvent key of a mail: its Message-ID (a mail re-read after a UIDVALIDITY change is known), else
    its UID."""
    if message_id:
        return bounded_dedupe_key(f"email:{account_id}:mid:{message_id}")
    return f"email:{account_id}:uid:{uidvalidity}:{uid}"


def media_kind(content_type: str) -> str:
    """The media kind the timeline shows for a content type."""
    main = content_type.split("/", 1)[0]
    return main if main in ("image", "video") else "voice" if main == "audio" else "file"


def to_inbound(mail: ParsedMail, *, account_id: int, thread_number: str) -> InboundMessage:
    """Map one parsed mail to the channel-neutral message (attachments as media without a stored path yet)."""
    media = [MediaRef(kind=media_kind(a.content_type), content_type=a.content_type, filename=a.filename)
             for a in mail.attachments]
    text = mail.text or ("" if media else mail.subject)
    return InboundMessage(
        channel=KIND,
        channel_account_id=account_id,
        sender_kind="email",
        sender_id=mail.from_addr,
        msg_type="text" if text or not media else media[0].kind,
        provider_msg_id=provider_id(mail.message_id) if mail.message_id else None,
        created_at=mail.date or utcnow(),
        text=text,
        media=media,
        data={"email": {
            "message_id": mail.message_id, "subject": mail.subject, "in_reply_to": mail.in_reply_to[:5],
            "references": mail.references[-20:], "full_text": mail.full_text, "html": mail.html,
            "auto": mail.auto, "forward": mail.is_forward,
        }},
        subject=mail.subject,
        thread_number=thread_number,
    )


async def thread_number(*, account: ChannelAccount, customer_id: int, mail: ParsedMail) -> str:
    """The number of the sender's ticket this mail continues, or "" (a new ticket): the number in the subject,
    then our own Message-IDs in In-Reply-To/References, then the sender's earlier mail there."""
    numbers = mail.ticket_numbers
    if numbers:
        found = {t.number for t in await Ticket.filter(number__in=numbers, customer_id=customer_id).only(
            "id", "number")}
        for number in numbers:
            if number in found:
                return number
    ids = mail.thread_ids
    ours = [m.group(0) for mid in ids for m in [OUR_ID.search(mid)] if m is not None]
    if ours:
        row = await OutboxMessage.filter(channel=KIND, provider_msg_id__in=ours, ticket_id__not_isnull=True,
                                         ticket__customer_id=customer_id).select_related("ticket").order_by(
            "-id").first()
        if row is not None and row.ticket is not None:
            return str(row.ticket.number)
    theirs = [provider_id(mid) for mid in ids if not OUR_ID.search(mid)]
    if theirs:
        earlier = await Message.filter(channel_account_id=account.id, provider_msg_id__in=theirs,
                                       ticket_id__not_isnull=True, ticket__customer_id=customer_id).select_related(
            "ticket").order_by("-id").first()
        if earlier is not None and earlier.ticket is not None:
            return str(earlier.ticket.number)
    return ""


async def record_bounce(*, mail: ParsedMail) -> int:
    """Mark the outbox rows a bounce is about (delivery_state "bounced:<status>") and say so on their tickets."""
    if not mail.bounced_ids:
        return 0
    state = f"bounced:{mail.bounce_status or 'unknown'}"
    rows = await OutboxMessage.filter(Q(delivery_state=None) | ~Q(delivery_state=state), channel=KIND,
                                      provider_msg_id__in=mail.bounced_ids)
    for row in rows:
        await OutboxMessage.filter(id=row.id).update(delivery_state=state)
        if row.ticket_id is not None:  # type: ignore[attr-defined]
            await TicketEvent.create(ticket_id=row.ticket_id, kind="delivery_bounced", actor_kind="system",  # type: ignore[attr-defined]
                                     reason=BOUNCED_REASON.format(status=mail.bounce_status or "未知原因"),
                                     data={"outbox_id": row.id, "channel": KIND, "status": mail.bounce_status})
    return len(rows)


def _store_file(content: bytes, *, content_type: str, filename: str) -> dict[str, Any]:
    ext = mimetypes.guess_extension(content_type) or ("." + filename.rsplit(".", 1)[-1][:8]
                                                       if "." in filename else "")
    rel = f"{local(utcnow()):%Y/%m}/{uuid.uuid4().hex}{ext}"
    path = get_settings().media_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return {"path": rel, "content_type": content_type, "size": len(content), "filename": filename}


def store_media(raw: bytes, attachments: list[Attachment]) -> list[dict[str, Any]]:
    """Write the attachments and the original mail into media storage; the message's media list."""
    media = []
    for a in attachments:
        item = {"kind": media_kind(a.content_type), **_store_file(a.content, content_type=a.content_type,
                                                                  filename=a.filename)}
        if a.content_id:
            item.update(content_id=a.content_id, inline=a.inline)
        media.append(item)
    media.append({"kind": "file", "original": True,
                  **_store_file(raw, content_type="message/rfc822", filename="original.eml")})
    return media


def raw_of(event: InboundEvent) -> bytes:
    """The mail bytes an InboundEvent holds."""
    return base64.b64decode(json.loads(event.payload)["raw"])


async def process(event: InboundEvent, account: ChannelAccount | None) -> str:
    """Handle one stored mail; idempotent (a mail is stored once per Message-ID)."""
    from app import intake
    from app.channels.inbound_jobs import in_order
    from app.customers import service as customers

    if account is None:
        return "ignored"
    raw = raw_of(event)
    mail = parse_mail(raw, own=await accounts.own_addresses())
    if mail.is_bounce:
        marked = await record_bounce(mail=mail)
        log.info("email.bounce", account=account.key, marked=marked)
        return "done" if marked else "ignored"
    if not mail.from_addr:
        return "ignored"
    if mail.message_id and OUR_ID.search(mail.message_id) and await OutboxMessage.exists(
            channel=KIND, provider_msg_id=OUR_ID.search(mail.message_id).group(0)):  # type: ignore[union-attr]
        return "ignored"  # our own mail came back (a copy to ourselves, one mailbox writing to another)
    async with in_order(f"{account.id}:{mail.from_addr}"):
        customer = await customers.resolve_identity(kind="email", scope=account.key, value=mail.from_addr,
                                                    name=mail.from_name[:64])
        if customer.email_hash is None:
            # the From address is the customer's contact, not a verified one (a From header can be forged)
            await customers.set_contact(customer=customer, email=mail.from_addr)
        number = await thread_number(account=account, customer_id=customer.id, mail=mail)
        inbound = to_inbound(mail, account_id=account.id, thread_number=number)
        inbound.data["inbound_event_id"] = event.id
        if json.loads(event.payload).get("truncated"):
            inbound.data["email"]["truncated"] = True
            inbound.text = f"{inbound.text}\n{TRUNCATED_NOTE}".strip()
        if inbound.provider_msg_id is None:
            inbound.provider_msg_id = f"uid:{event.id}"
        outcome = await intake.receive(inbound=inbound, account=account, customer=customer)
    if outcome.message is not None and not outcome.duplicate:
        media = store_media(raw, mail.attachments)
        await Message.filter(id=outcome.message.id).update(media=media)
    log.info("email.received", account=account.key, ticket_id=outcome.ticket.id if outcome.ticket else None,
             created=outcome.created_ticket, auto=mail.auto or None)
    return "done"
