"""Conversations: a customer's inbound messages land here, and the conversion rules say when one becomes a ticket.

The path a message takes (bot, joining a ticket, opening one) is `app.intake.flows.receive`; this module keeps the
conversation itself: storing messages (unique per channel account and provider message id, so a job that runs twice
stores nothing the second time), the conversion decision, and the answer to a status query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.config import ConversionRules
from app.conversations.models import Conversation, Message
from app.customers.models import Customer
from app.db import dialect_sql, rows_sql
from app.logs import get_logger
from app.notifications import service as notify
from app.rows import inserted
from app.security import tokens as pii_tokens
from app.tickets import states
from app.tickets.models import Ticket
from app.timeutil import CHINA, utcnow

log = get_logger(__name__)

#: the per-message statements of the intake path, as SQL written once (`app.db.dialect_sql`): tortoise's query
#: building cost more CPU than the round trip. SQLite has no row locks (its writer lock serialises transactions).
_LOCK = {"mysql": "SELECT {q}id{q} FROM {q}customer{q} WHERE {q}id{q}={m} FOR UPDATE",
         "sqlite": "SELECT {q}id{q} FROM {q}customer{q} WHERE {q}id{q}={m}"}
_BUMP = ("UPDATE {q}conversation{q} SET {q}message_count{q}={q}message_count{q}+1,{q}last_message_at{q}={m},"
         "{q}last_inbound_at{q}={m} WHERE {q}id{q}={m}")
#: the open conversation, read as a model (`app.db.rows_sql`)
_OPEN = ("SELECT {{columns}} FROM {q}conversation{q} WHERE {q}customer_id{q}={{customer_id}} AND "
         "{q}channel_account_id{q}={{account_id}} AND {q}status{q}='open' ORDER BY {q}id{q} DESC LIMIT 1")
#: a new ticket's transcript, read the same way
_UNTICKETED = ("SELECT {q}id{q},{q}direction{q},{q}text{q} FROM {q}message{q} WHERE "
               "{q}conversation_id{q}={{conversation_id}} AND {q}ticket_id{q} IS NULL ORDER BY {q}id{q}")


async def open_for_inbound(*, customer: Customer, account: ChannelAccount, now: datetime,
                           new_customer: bool = False) -> tuple[Conversation, bool]:
    """The conversation an inbound message arriving `now` goes to, and whether it counts that message already: a
    conversation created here is inserted with the message counted (`store_inbound(counted=True)` then writes no
    counter update; a failed store rolls both back in the caller's transaction). ``new_customer``: created for this
    message, so they have none to read."""
    if not new_customer:
        found: list[Conversation] = await Conversation.raw(
            rows_sql(_OPEN, Conversation).format(customer_id=int(customer.id), account_id=int(account.id)))
        if found:
            return found[0], False
    conv = await inserted(Conversation, {"customer": customer, "channel_account": account, "message_count": 1,
                                         "last_message_at": now, "last_inbound_at": now})
    return conv, True


async def lock_customer(*, customer: Customer) -> None:
    """Hold the customer's row lock until the transaction ends (the first lock an intake transaction takes)."""
    # Taken before any read, so the rows read next are those the previous holder committed, and every later lock
    # (conversation, message, ticket) is taken in the same order by one transaction at a time.
    conn: Any = Customer._meta.db
    dialect = conn.capabilities.dialect
    await conn.execute_query(dialect_sql(_LOCK["mysql" if dialect == "mysql" else "sqlite"], dialect), [customer.id])


def is_status_query(inbound: InboundMessage, rules: ConversionRules) -> bool:
    """A text such as 查询 / 进度, or the configured menu key, asks for the customer's tickets."""
    if inbound.event == "menu_click":
        return bool(rules.status_query_menu_key) and inbound.event_key == rules.status_query_menu_key
    return inbound.msg_type == "text" and inbound.text.strip() in rules.status_query_texts


async def store_inbound(*, conv: Conversation, customer: Customer, account: ChannelAccount,
                        inbound: InboundMessage, ticket_id: int | None = None, counted: bool = False,
                        now: datetime | None = None) -> Message:
    """Store a customer's message in their conversation (unique per account and provider message id); `counted`:
    the conversation's counters include it already (``open_for_inbound``)."""
    now = now or utcnow()
    message = await inserted(Message, {
        "conversation": conv, "customer": customer, "direction": "in", "author_kind": "customer",
        "channel_account": account, "ticket_id": ticket_id, "provider_msg_id": inbound.provider_msg_id,
        "msg_type": inbound.msg_type,
        # personal data in the text is stored as tokens (no statement when there is none)
        "text": await pii_tokens.tokenise(inbound.text, customer_id=customer.id),
        "media": [{"kind": m.kind, "provider_media_id": m.provider_media_id, "url": m.url} for m in inbound.media],
        "data": inbound.data, "created_at": inbound.created_at})
    if counted:
        return message
    conn: Any = Conversation._meta.db
    stamp = Conversation._meta.fields_map["last_message_at"].to_db_value(now, Conversation)
    await conn.execute_query(dialect_sql(_BUMP, conn.capabilities.dialect), [stamp, stamp, conv.id])
    # the counters as the UPDATE left them, without reading the row back
    conv.message_count += 1
    conv.last_message_at = now
    conv.last_inbound_at = now
    return message


async def unticketed_messages(*, conv: Conversation) -> list[Message]:
    """The conversation's messages that belong to no ticket yet, oldest first (a new ticket's transcript): their
    id, direction and text only (read-only rows; load a message in full to change it)."""
    sql = rows_sql(_UNTICKETED, Message).format(conversation_id=int(conv.id))
    return list(await Message.raw(sql))


def conversion_reason(*, conv: Conversation, text: str, rules: ConversionRules, now: Any,
                      account: ChannelAccount | None = None) -> str | None:
    """Why this conversation becomes a ticket now, or None (an account's {"every_message": true} is a channel
    policy: every email is a ticket)."""
    if rules.every_message or (account is not None and (account.config or {}).get("every_message")):
        return "every_message"
    if any(k in text for k in rules.human_request):
        return "human_request"
    if any(k in text for k in rules.keywords):
        return "keyword"
    if rules.max_messages and conv.message_count >= rules.max_messages:
        return "message_count"
    if rules.max_minutes and conv.started_at and now - conv.started_at >= timedelta(minutes=rules.max_minutes):
        return "duration"
    return None


async def answer_status_query(*, customer: Customer, account: ChannelAccount, dedupe_key: str | None) -> None:
    """Reply with the customer's open tickets, their status and last update."""
    rows = await Ticket.filter(customer_id=customer.id, status__in=["new", "open", "pending", "resolved"]).order_by(
        "-last_activity_at").limit(5)
    text = notify.render("status_query.txt", tickets=rows, labels=states.STATUS_LABELS, Status=states.Status,
                         tz=CHINA)
    await notify.send_text_to_customer(account=account, customer=customer, text=text, dedupe_key=dedupe_key)
