"""Conversations: a customer's inbound messages land here, and the conversion rules decide about tickets.

`ingest` is idempotent: the message is unique per (channel account, provider message id), and the message, the
conversation update and any ticket it opens or joins commit together, so a job that runs twice does nothing the
second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from app.channels.base import IDENTITY_KIND, InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.config import ConversionRules, load_rules
from app.conversations.extract import extract
from app.conversations.models import Conversation, Message
from app.customers import service as customers
from app.customers.models import Customer
from app.logs import get_logger
from app.notifications import service as notify
from app.security.scope import SYSTEM, customer_actor
from app.tickets import routing, states
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import CHINA, utcnow
from app.uow import atomic

log = get_logger(__name__)


@dataclass
class Outcome:
    """What ingesting one message did."""

    message: Message | None
    ticket: Ticket | None = None
    created_ticket: bool = False
    duplicate: bool = False
    status_query: bool = False


async def open_conversation(*, customer: Customer, account: ChannelAccount) -> Conversation:
    """The customer's open conversation on this account, created when there is none."""
    conv = await Conversation.filter(customer_id=customer.id, channel_account_id=account.id, status="open").order_by(
        "-id").first()
    if conv is None:
        conv = await Conversation.create(customer=customer, channel_account=account)
    return conv


def is_status_query(inbound: InboundMessage, rules: ConversionRules) -> bool:
    """A text such as 查询 / 进度, or the configured menu key, asks for the customer's tickets."""
    if inbound.event == "menu_click":
        return bool(rules.status_query_menu_key) and inbound.event_key == rules.status_query_menu_key
    return inbound.msg_type == "text" and inbound.text.strip() in rules.status_query_texts


async def ingest(*, inbound: InboundMessage, account: ChannelAccount) -> Outcome:
    """Store a customer's message and open or join a ticket as the rules say."""
    rules = load_rules()
    customer = await customers.resolve_identity(
        kind=IDENTITY_KIND.get(account.kind, inbound.sender_kind), scope=account.key, value=inbound.sender_id
    )
    if inbound.provider_msg_id is not None:
        existing = await Message.get_or_none(channel_account_id=account.id, provider_msg_id=inbound.provider_msg_id)
        if existing is not None:
            return Outcome(message=existing, duplicate=True)
    if is_status_query(inbound, rules):
        source = inbound.provider_msg_id or inbound.data.get("inbound_event_id")
        await answer_status_query(customer=customer, account=account,
                                  dedupe_key=f"status_query:{account.id}:{source}" if source else None)
        return Outcome(message=None, status_query=True)
    try:
        async with atomic():
            return await _ingest(inbound=inbound, account=account, customer=customer, rules=rules)
    except IntegrityError:
        # a concurrent run stored the same provider message first
        existing = await Message.get_or_none(channel_account_id=account.id, provider_msg_id=inbound.provider_msg_id)
        if existing is None:
            raise
        return Outcome(message=existing, duplicate=True)


async def _ingest(*, inbound: InboundMessage, account: ChannelAccount, customer: Customer,
                  rules: ConversionRules) -> Outcome:
    conv = await open_conversation(customer=customer, account=account)
    now = utcnow()
    message = await Message.create(
        conversation=conv,
        customer=customer,
        direction="in",
        author_kind="customer",
        channel_account=account,
        provider_msg_id=inbound.provider_msg_id,
        msg_type=inbound.msg_type,
        text=inbound.text,
        media=[{"kind": m.kind, "provider_media_id": m.provider_media_id, "url": m.url} for m in inbound.media],
        data=inbound.data,
        created_at=inbound.created_at,
    )
    await Conversation.filter(id=conv.id).update(
        message_count=F("message_count") + 1, last_message_at=now, last_inbound_at=now
    )
    await conv.refresh_from_db()

    from app.kb import bot  # the bot answers first where it is enabled (app/kb/bot.py)

    handled = await bot.on_message(inbound=inbound, account=account, customer=customer, conv=conv, message=message)
    if handled is not None:
        return Outcome(message=message, ticket=handled.ticket, created_ticket=handled.created_ticket)

    live = await tickets.open_ticket_for_customer(customer_id=customer.id)
    if live is None:
        live = await _recently_resolved(customer_id=customer.id)
    if live is not None:
        await _join(ticket=live, message=message, conv=conv)
        return Outcome(message=message, ticket=live)

    reason = conversion_reason(conv=conv, text=inbound.text, rules=rules, now=now)
    if reason is None:
        return Outcome(message=message)
    ticket = await _open_ticket(conv=conv, customer=customer, account=account, trigger=message, reason=reason,
                                rules=rules)
    return Outcome(message=message, ticket=ticket, created_ticket=True)


def conversion_reason(*, conv: Conversation, text: str, rules: ConversionRules, now: Any) -> str | None:
    """Why this conversation becomes a ticket now, or None."""
    if rules.every_message:
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


async def _recently_resolved(*, customer_id: int) -> Ticket | None:
    """A ticket resolved but not closed: the customer writing again reopens it."""
    return await Ticket.filter(customer_id=customer_id, status=states.Status.RESOLVED.value).order_by("-id").first()


async def _join(*, ticket: Ticket, message: Message, conv: Conversation | None = None) -> None:
    await Message.filter(id=message.id).update(ticket_id=ticket.id)
    await Ticket.filter(id=ticket.id).update(last_activity_at=utcnow())
    await TicketEvent.create(ticket_id=ticket.id, kind="customer_message", actor_kind="customer",
                             data={"message_id": message.id, **({"via": message.data["via"]}
                                                                 if message.data.get("via") else {})})
    from app.tickets import flows

    if await flows.on_customer_message(ticket=ticket, message=message):
        return  # consumed: a 1/2 answer to "is it solved?", a refund confirmation code
    if ticket.status in (states.Status.PENDING, states.Status.RESOLVED):
        await states.transition(ticket_id=ticket.id, to=states.Status.OPEN.value, expected_version=ticket.version,
                                actor=customer_actor(), reason="客户回复")


async def add_to_ticket(*, ticket: Ticket, customer: Customer, text: str, media: list[dict[str, Any]],
                        via: str) -> Message:
    """A customer's message written straight onto one of their tickets (the H5 page), with the same effects as a
    message arriving on a channel: the ticket is touched, SLA clocks resume, a pending or resolved ticket reopens."""
    async with atomic():
        message = await Message.create(
            ticket_id=ticket.id, conversation_id=ticket.conversation_id,  # type: ignore[attr-defined]
            customer_id=customer.id, channel_account_id=ticket.channel_account_id,  # type: ignore[attr-defined]
            direction="in", author_kind="customer", msg_type="text" if text or not media else "image",
            text=text, media=media, data={"via": via},
        )
        await _join(ticket=ticket, message=message)
    return message


async def _open_ticket(*, conv: Conversation, customer: Customer, account: ChannelAccount, trigger: Message,
                       reason: str, rules: ConversionRules) -> Ticket:
    history = await Message.filter(conversation_id=conv.id, ticket_id=None, direction="in").order_by("id")
    texts = [m.text for m in history if m.text]
    joined = "\n".join(texts)
    fields = extract(joined, rules)
    decision = await routing.route(category=fields.category, text=joined, channel=account.kind, customer=customer,
                                   fields={"order_no": fields.order_no, "problem_type": fields.category,
                                           "phone": "*" if fields.phone else None}, reason=reason)
    subject = (trigger.text or (texts[-1] if texts else "")).strip().replace("\n", " ") or "客户来信"
    if fields.phone:
        await customers.set_contact(customer=customer, phone=fields.phone)
    ticket = await tickets.create(
        actor=SYSTEM,
        customer_id=customer.id,
        subject=subject[:60],
        description=joined,
        priority=decision.priority,
        category=decision.category or fields.category,
        order_no=fields.order_no,
        phone=fields.phone,
        custom_fields={"problem_type": fields.category} if fields.category else {},
        group_id=decision.group_id,
        assignee_id=decision.assignee_id,
        tags=decision.tags,
        channel_account_id=account.id,
        conversation_id=conv.id,
    )
    await routing.after_create(ticket=ticket, decision=decision)
    await Message.filter(id__in=[m.id for m in history]).update(ticket_id=ticket.id)
    await TicketEvent.create(ticket_id=ticket.id, kind="intake", actor_kind="system",
                             data={"reason": reason, "routing": decision.matched, "keywords": fields.matched_keywords})
    log.info("conversation.converted", ticket_id=ticket.id, reason=reason, routing=decision.matched)
    return ticket


async def answer_status_query(*, customer: Customer, account: ChannelAccount, dedupe_key: str | None) -> None:
    """Reply with the customer's open tickets, their status and last update."""
    rows = await Ticket.filter(customer_id=customer.id, status__in=["new", "open", "pending", "resolved"]).order_by(
        "-last_activity_at").limit(5)
    text = notify.render("status_query.txt", tickets=rows, labels=states.STATUS_LABELS, Status=states.Status,
                         tz=CHINA)
    await notify.send_text_to_customer(account=account, customer=customer, text=text, dedupe_key=dedupe_key)
