"""One intake flow: every customer message and every new ticket, whatever the entry, goes through here.

    identity (resolved, and merged by unionid/external_userid, by the channel before it calls)
      -> conversation -> the bot -> which live ticket the message belongs to -> conversion decision
      -> extraction -> routing decision (group, priority, category, SLA policy, after-hours parking: all decided
         before the ticket exists) -> create (ticket.created: SLA clocks, assignment unless parked, notifications)
      -> one decision record (TicketEvent "intake") saying which rule did what

Entries: `receive` for a channel message (公众号, 微信客服, the WeCom app; email and web chat plug in the same way),
`open_ticket` for everyone else: the bot's hand-off, staff in H5 and in the chat sidebar, customers in H5, the API
and business events. A `Context` carries the customer, the account, the conversation and the customer's current
tickets down the path, so nothing is read twice.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from tortoise.exceptions import IntegrityError

from app.assist import text as assist_text
from app.channels.base import IDENTITY_KIND, InboundMessage
from app.channels.models import ChannelAccount
from app.conversations import service as conversations
from app.conversations.config import ConversionRules, load_rules
from app.conversations.extract import Extracted, extract
from app.conversations.models import Conversation, Message
from app.customers import service as customers
from app.customers.models import Customer
from app.db import dialect_sql, rows_sql
from app.kb import bot
from app.logs import get_logger
from app.security import tokens as pii_tokens
from app.security.scope import SYSTEM, Actor, customer_actor
from app.tickets import flows as ticket_flows
from app.tickets import routing, sla, states
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from app.uow import atomic, joined

log = get_logger(__name__)

PRIORITY_ORDER = ("low", "normal", "high", "urgent")
#: statuses a customer's message can still join (resolved: the customer writing again reopens it)
JOINABLE = ("new", "open", "pending", "resolved")
#: a ticket number the customer quotes, e.g. GD-20261205-0042 (prefix configurable, so any letters)
NUMBER_IN_TEXT = re.compile(r"\b[A-Z]{1,8}-\d{8}-\d{4,}\b")
#: the live-ticket read every message makes, as SQL written once and read as models through `Model.raw` (which takes
#: no parameters: the customer id is formatted in as an int); tortoise's query building cost more than the read
_JOINABLE = ("SELECT {{columns}} FROM {q}ticket{q} WHERE {q}customer_id{q}={{customer_id}} AND {q}status{q} IN ("
             + ",".join(f"'{s}'" for s in JOINABLE) + ") ORDER BY {q}last_activity_at{q} DESC,{q}id{q} DESC")
#: whether there is one at all: a result of one column (MariaDB describes every column of a result, rows or none, and
#: parsing the 35 descriptions of the whole rows cost more CPU than the rest of the read)
_ANY_JOINABLE = ("SELECT {q}id{q} FROM {q}ticket{q} WHERE {q}customer_id{q}={m} AND {q}status{q} IN ("
                 + ",".join(f"'{s}'" for s in JOINABLE) + ") LIMIT 1")


@dataclass
class Context:
    """What the path knows about the customer, read once at the entry."""

    customer: Customer
    account: ChannelAccount | None = None
    conversation: Conversation | None = None
    #: the customer's tickets a message may join, newest activity first (None: not read yet)
    tickets: list[Ticket] | None = None
    #: a bot hand-off opens no ticket: the outcome says it would have (nobody is there to take it)
    hold_handoff: bool = False
    #: the sender's id on the account's channel, when a message of theirs is on the path (where replies go)
    sender: str | None = None
    #: the customer was created for this message (and merged with nobody): no conversation, survey or earlier ticket
    #: of theirs exists to be read. Where they were committed before the message's transaction began, their live
    #: tickets are still looked for (by id first): a channel that learned the same person's unionid a moment ago
    #: could have opened one meanwhile, and joining it keeps one ticket a person. Created inside the message's own
    #: transaction (`receive(new_identities=...)`), nobody can have, and `tickets` starts empty.
    first_contact: bool = False

    def customer_target(self) -> tuple[str, int, str] | None:
        """(channel kind, account id, handle) where the customer is answered: the channel and sender of the message
        on the path, as app.notifications would look them up (None: no message, or a channel without identities)."""
        if self.account is None or not self.sender or self.account.kind not in IDENTITY_KIND:
            return None
        return self.account.kind, self.account.id, self.sender

    async def joinable(self) -> list[Ticket]:
        """The customer's new, open, pending and resolved tickets (read once; a first contact's are asked for by id
        first, as they nearly always have none)."""
        if self.tickets is None:
            if self.first_contact and not await _any_joinable(customer_id=self.customer.id):
                self.tickets = []
            else:
                self.tickets = list(await Ticket.raw(
                    rows_sql(_JOINABLE, Ticket).format(customer_id=int(self.customer.id))))
        return self.tickets


async def _any_joinable(*, customer_id: int) -> bool:
    conn: Any = Ticket._meta.db
    _, rows = await conn.execute_query(dialect_sql(_ANY_JOINABLE, conn.capabilities.dialect), [customer_id])
    return bool(rows)


@dataclass
class NewTicket:
    """A request to open a ticket: what the entry knows; extraction and routing fill the rest."""

    #: where it came from: a channel kind, or staff_h5, sidebar, customer_h5, api, event
    source: str
    #: why now: keyword, human_request, bot:<why>, staff, customer, api, ...
    reason: str
    subject: str = ""
    description: str = ""
    actor: Actor = SYSTEM
    #: a person's explicit choices: routing never lowers a chosen priority nor replaces a chosen group
    priority: str | None = None
    group_id: int | None = None
    assignee_id: int | None = None
    category: str = ""
    order_no: str | None = None
    phone: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    #: messages of the conversation that become the ticket's first messages
    messages: list[Message] = field(default_factory=list)
    #: text that is not the description but should be read by extraction and routing (the transcript)
    extra_text: str = ""


@dataclass
class Outcome:
    """What one customer message did."""

    message: Message | None
    ticket: Ticket | None = None
    created_ticket: bool = False
    duplicate: bool = False
    status_query: bool = False
    #: the bot would have handed off (its reason), but the entry asked for hand-offs to be held: no ticket opened
    held_handoff: str | None = None


# ---- a channel message --------------------------------------------------------------------------------------------


async def receive(*, inbound: InboundMessage, account: ChannelAccount, customer: Customer | None = None,
                  customer_id: int | None = None, hold_handoff: bool = False, first_contact: bool = False,
                  new_identities: list[customers.IdentityRow] | None = None) -> Outcome:
    """Store a customer's message and let the bot answer, join the right ticket, or open one as the rules say
    (``customer_id`` instead of ``customer``: the customer is read under the row lock the path takes;
    ``hold_handoff``: where the bot would hand off, open nothing and say so in ``Outcome.held_handoff``;
    ``first_contact``: ``customer`` was created for this message, see `Context.first_contact`;
    ``new_identities``: the sender is nobody we know: a customer holding these is created in the message's
    transaction, and IntegrityError, with nothing written, says someone took one of them meanwhile)."""
    rules = load_rules()
    if new_identities is not None:
        if not conversations.is_status_query(inbound, rules):
            return await _receive_first(inbound=inbound, account=account, identities=new_identities, rules=rules,
                                        hold_handoff=hold_handoff)
        async with atomic():  # a first 查询 finds nothing, but its customer is kept like any other
            customer = await customers.create_with_identities(identities=new_identities)
    if customer is None and customer_id is None:
        customer = await customers.resolve_identity(
            kind=IDENTITY_KIND.get(account.kind, inbound.sender_kind), scope=account.key, value=inbound.sender_id)
    if conversations.is_status_query(inbound, rules):
        if customer is None:
            assert customer_id is not None
            customer = await customers.load(customer_id=customer_id)
        source = inbound.provider_msg_id or inbound.data.get("inbound_event_id")
        await conversations.answer_status_query(customer=customer, account=account,
                                                dedupe_key=f"status_query:{account.id}:{source}" if source else None)
        return Outcome(message=None, status_query=True)
    try:
        async with atomic():
            # first lock in the transaction: one customer's messages pass one at a time (MariaDB deadlocked on the
            # conversation and ticket rows, and two first messages opened two conversations)
            if customer is None:
                assert customer_id is not None
                # the customer row read under that lock: one statement for both
                customer = await customers.load(customer_id=customer_id, for_update=True)
            else:
                await conversations.lock_customer(customer=customer)
            ctx = Context(customer=customer, account=account, hold_handoff=hold_handoff, sender=inbound.sender_id,
                          first_contact=first_contact)
            return await _receive(ctx, inbound=inbound, rules=rules)
    except IntegrityError:
        # the provider message is stored already (WeChat retried, or a concurrent run stored it first)
        existing = await Message.get_or_none(channel_account_id=account.id, provider_msg_id=inbound.provider_msg_id)
        if existing is None:
            raise
        return Outcome(message=existing, duplicate=True)


async def _receive_first(*, inbound: InboundMessage, account: ChannelAccount, identities: list[customers.IdentityRow],
                         rules: ConversionRules, hold_handoff: bool) -> Outcome:
    # nobody finds the customer before this transaction commits (their identities are in it): no row lock to take
    # and nothing of theirs to read, not even their live tickets
    async with atomic():
        customer = await customers.create_with_identities(identities=identities)
        ctx = Context(customer=customer, account=account, tickets=[], hold_handoff=hold_handoff,
                      sender=inbound.sender_id, first_contact=True)
        return await _receive(ctx, inbound=inbound, rules=rules)


async def _receive(ctx: Context, *, inbound: InboundMessage, rules: ConversionRules) -> Outcome:
    assert ctx.account is not None
    live = await ctx.joinable()
    target = choose_ticket(live, text=inbound.text) if inbound.thread_number is None else next(
        (t for t in live if inbound.thread_number and t.number == inbound.thread_number), None)
    # a person is on the case: the message goes straight onto the ticket, the bot stays out
    ticket_for_message = target if target is not None and target.status != states.Status.RESOLVED else None
    now = utcnow()
    conv, counted = await conversations.open_for_inbound(customer=ctx.customer, account=ctx.account, now=now,
                                                         new_customer=ctx.first_contact)
    ctx.conversation = conv
    message = await conversations.store_inbound(conv=conv, customer=ctx.customer, account=ctx.account,
                                                inbound=inbound, ticket_id=ticket_for_message.id
                                                if ticket_for_message else None, counted=counted, now=now)
    handled = await bot.on_message(inbound=inbound, account=ctx.account, customer=ctx.customer, conv=conv,
                                   message=message, tickets=live, surveyed=not ctx.first_contact)
    if handled is not None and handled.action == "handoff":
        if ctx.hold_handoff:
            return Outcome(message=message, held_handoff=handled.reason)
        ticket = await handoff(ctx, outcome=handled, trigger=message)
        return Outcome(message=message, ticket=ticket, created_ticket=True)
    if handled is not None:
        return Outcome(message=message, ticket=handled.ticket, created_ticket=handled.created_ticket)
    if target is not None:
        await join(ticket=target, message=message, already_linked=ticket_for_message is not None)
        return Outcome(message=message, ticket=target)
    reason = conversations.conversion_reason(conv=conv, text=inbound.text, rules=rules, now=utcnow(),
                                             account=ctx.account)
    if reason is None:
        return Outcome(message=message)
    # a conversation this message opened holds only it (inserted in this transaction, under the customer's lock)
    history = [message] if counted else await conversations.unticketed_messages(conv=conv)
    texts = [m.text for m in history if m.direction == "in" and m.text]
    subject = (inbound.subject or message.text or (texts[-1] if texts else "")).strip().replace("\n", " ")
    ticket = await open_ticket(ctx, NewTicket(source=ctx.account.kind, reason=reason, subject=subject,
                                              description="\n".join(texts), messages=history))
    return Outcome(message=message, ticket=ticket, created_ticket=True)


def choose_ticket(candidates: list[Ticket], *, text: str) -> Ticket | None:
    """The ticket a customer's message belongs to: the one they name, else the one waiting for them (pending),
    else the most recently active live ticket, else the newest resolved one (the message reopens it)."""
    if not candidates:
        return None
    named = {m.group(0) for m in NUMBER_IN_TEXT.finditer(text.upper())}
    for t in candidates:
        if t.number in named:
            return t
    for wanted in (("pending",), ("new", "open"), ("resolved",)):
        for t in candidates:  # newest activity first
            if t.status in wanted:
                return t
    return None


#: the audit row of every joining message: SQL written once (`app.db.dialect_sql`), as tortoise's model creation and
#: query building cost more CPU than the round trip (nothing reads the row back)
_JOINED_EVENT = ("INSERT INTO {q}ticket_event{q} ({q}ticket_id{q},{q}kind{q},{q}actor_kind{q},{q}reason{q},{q}data{q},"
                 "{q}created_at{q}) VALUES ({m},'customer_message','customer','',{m},{m})")


async def join(*, ticket: Ticket, message: Message, already_linked: bool = False) -> None:
    """A customer's message joins a ticket: the ticket is touched, the closing hooks and listeners see it, and a
    pending or resolved ticket opens again."""
    if not already_linked:
        await Message.filter(id=message.id).update(ticket_id=ticket.id)
    await tickets.touch(ticket_id=ticket.id)
    data = {"message_id": message.id, **({"via": message.data["via"]} if message.data.get("via") else {})}
    conn: Any = TicketEvent._meta.db
    fields_map = TicketEvent._meta.fields_map
    await conn.execute_query(dialect_sql(_JOINED_EVENT, conn.capabilities.dialect), [
        ticket.id, fields_map["data"].to_db_value(data, TicketEvent),
        fields_map["created_at"].to_db_value(utcnow(), TicketEvent)])
    if await ticket_flows.on_customer_message(ticket=ticket, message=message):
        return  # consumed: a 1/2 answer to "is it solved?", a refund confirmation code
    if ticket.status in (states.Status.PENDING, states.Status.RESOLVED):
        await states.transition(ticket_id=ticket.id, to=states.Status.OPEN.value, expected_version=ticket.version,
                                actor=customer_actor(), reason="客户回复")


async def add_to_ticket(*, ticket: Ticket, customer: Customer, text: str, media: list[dict[str, Any]],
                        via: str) -> Message:
    """A customer's message written straight onto one of their tickets (the H5 page), with the same effects as a
    message arriving on a channel."""
    async with atomic():
        message = await Message.create(
            ticket_id=ticket.id, conversation_id=ticket.conversation_id,  # type: ignore[attr-defined]
            customer_id=customer.id, channel_account_id=ticket.channel_account_id,  # type: ignore[attr-defined]
            direction="in", author_kind="customer", msg_type="text" if text or not media else "image",
            text=await pii_tokens.tokenise(text, customer_id=customer.id), media=media, data={"via": via},
        )
        await join(ticket=ticket, message=message, already_linked=True)
    return message


# ---- the one way a ticket is born ---------------------------------------------------------------------------------


def _max_priority(chosen: str | None, routed: str) -> str:
    if chosen is None:
        return routed
    return max(chosen, routed, key=lambda p: PRIORITY_ORDER.index(p) if p in PRIORITY_ORDER else 1)


#: a new ticket's transcript joins it: SQL written once per number of messages (`app.db.dialect_sql`), as tortoise's
#: query building cost more CPU than the round trip
_LINK_MESSAGES = "UPDATE {q}message{q} SET {q}ticket_id{q}={m} WHERE {q}id{q} IN ({marks})"


async def open_ticket(ctx: Context, req: NewTicket) -> Ticket:
    """Extract, route and create a ticket for the context's customer; listeners start SLA, assign, notify."""
    # stored messages hold personal data as tokens: extraction and the subject's length work on the clear text
    # (one query, only when there are tokens), and the ticket's texts are stored tokenised again below
    req.subject, req.description, req.extra_text = await pii_tokens.detokenise_data(
        [req.subject, req.description, req.extra_text])
    text = "\n".join(t for t in (req.subject, req.description, req.extra_text) if t)
    rules = load_rules()
    found: Extracted = extract(text, rules)
    category = req.category or found.category
    order_no = req.order_no or found.order_no
    phone = req.phone or found.phone
    channel = ctx.account.kind if ctx.account is not None else req.source
    decision = await routing.route(
        category=category, text=text, channel=channel, customer=ctx.customer,
        fields={"order_no": order_no, "problem_type": category, "phone": "*" if phone else None},
        reason=req.reason, priority=req.priority or "normal", previous_tickets=() if ctx.first_contact else None)
    group_id = req.group_id if req.group_id is not None else decision.group_id
    assignee_id = req.assignee_id if req.assignee_id is not None else decision.assignee_id
    # a ticket someone already holds is not parked: parking only delays automatic assignment
    parked_until = decision.after_hours_until if assignee_id is None else None
    priority = _max_priority(req.priority, decision.priority)
    sla_policy_id = decision.sla_policy_id
    if sla_policy_id is None:
        # the policy the SLA listener would look up for the new ticket, picked from what this path holds already
        # (the customer, the channel), which spares the listener two reads
        policy = sla.pick(await sla.policies(), priority=priority, vip_level=ctx.customer.vip_level,
                          channel=ctx.account.kind if ctx.account is not None else "", group_id=group_id)
        sla_policy_id = policy.id if policy is not None else None
    custom = dict(req.custom_fields)
    if found.category and "problem_type" not in custom:
        custom["problem_type"] = found.category
    subject = (req.subject or req.description.replace("\n", " ")).strip() or "客户来信"
    texts = [subject[:60], req.description]
    sets_phone = bool(phone) and ctx.customer.phone_enc is None
    # a ticket that writes nothing else (no customer phone, no personal data to tokenise, no transcript to link) is
    # created on its own: outside a transaction it shares one with the tickets the process opens at the same moment
    async with joined() if sets_phone or req.messages or pii_tokens.has_pii(texts) else nullcontext():
        if sets_phone:
            await customers.set_contact(customer=ctx.customer, phone=phone)
        subject, description = await pii_tokens.tokenise_many(texts, customer_id=ctx.customer.id)
        conv = ctx.conversation
        ticket = await tickets.create(
            actor=req.actor, customer_id=ctx.customer.id, subject=pii_tokens.fit(subject, 200),
            description=description,
            priority=priority, category=decision.category or category,
            order_no=order_no, phone=phone, custom_fields=custom, tags=sorted({*req.tags, *decision.tags}),
            group_id=group_id, assignee_id=assignee_id, channel_account_id=ctx.account.id if ctx.account else None,
            conversation_id=conv.id if conv else None, sla_policy_id=sla_policy_id,
            after_hours_until=parked_until, decision=decision, customer_checked=True,
            customer_target=ctx.customer_target(),
            group_checked=req.group_id is None,
            record={"source": req.source, "reason": req.reason, "keywords": found.matched_keywords,
                    **decision.to_json()})
        if req.messages:
            conn: Any = Message._meta.db
            marks = ",".join("{m}" for _ in req.messages)
            await conn.execute_query(dialect_sql(_LINK_MESSAGES.replace("{marks}", marks), conn.capabilities.dialect),
                                     [ticket.id, *(m.id for m in req.messages)])
    if ctx.tickets is not None:
        ctx.tickets.insert(0, ticket)
    log.info("intake.ticket_opened", ticket_id=ticket.id, source=req.source, reason=req.reason,
             routing=decision.matched, parked=parked_until is not None)
    return ticket


async def handoff(ctx: Context, *, outcome: bot.BotOutcome, trigger: Message) -> Ticket:
    """The bot hands the customer to people: a ticket with the transcript and what the bot collected."""
    assert ctx.conversation is not None
    fields = outcome.fields
    history = await conversations.unticketed_messages(conv=ctx.conversation)
    texts = [m.text for m in history if m.direction == "in" and m.text]
    custom: dict[str, Any] = {}
    if fields.get("address"):
        custom["address"] = fields["address"]
    # the person taking over reads a short extractive summary (the messages stay on the ticket); extraction and
    # routing still read every message
    summary = assist_text.summarize(texts, rules=load_rules()).text
    ticket = await open_ticket(ctx, NewTicket(
        source=ctx.account.kind if ctx.account else "bot", reason=f"bot:{outcome.reason}",
        subject=(trigger.text or (texts[-1] if texts else "")).strip().replace("\n", " "),
        description=summary or "\n".join(texts), extra_text="\n".join(texts) if summary else "",
        category=fields.get("category", ""), order_no=fields.get("order_no"),
        phone=fields.get("phone"), custom_fields=custom, messages=history))
    await bot.record_handoff(ticket=ticket, outcome=outcome, customer=ctx.customer,
                             account=ctx.account, text=trigger.text)
    return ticket


# ---- entries for people ---------------------------------------------------------------------------------------


async def staff_ticket(*, actor: Actor, customer: Customer, subject: str, description: str = "",
                       priority: str | None = None, order_no: str | None = None, source: str = "staff_h5",
                       assign_to_self: bool = True, group_id: int | None = None, phone: str | None = None,
                       category: str = "", tags: list[str] | None = None,
                       custom_fields: dict[str, Any] | None = None, assignee_id: int | None = None) -> Ticket:
    """A ticket a staff member opens for a customer (H5 新建, the chat sidebar, the API): routed like a message
    (open_ticket holds its writes in one transaction)."""
    return await open_ticket(Context(customer=customer), NewTicket(
        source=source, reason="staff" if source != "api" else "api", subject=subject, description=description,
        actor=actor, priority=priority, group_id=group_id, order_no=order_no, phone=phone, category=category,
        tags=list(tags or []), custom_fields=dict(custom_fields or {}),
        assignee_id=actor.staff_id if assign_to_self and assignee_id is None else assignee_id))


async def customer_ticket(*, customer: Customer, account: ChannelAccount | None, subject: str, description: str,
                          order_no: str | None = None, phone: str | None = None,
                          media: list[dict[str, Any]] | None = None, via: Literal["h5", "webchat"] = "h5") -> Ticket:
    """A ticket the customer submits on the H5 page (or the web chat's offline form): routed like a message on
    their channel."""
    async with atomic():
        ticket = await open_ticket(Context(customer=customer, account=account), NewTicket(
            source="customer_h5" if via == "h5" else "webchat_offline", reason="customer", subject=subject,
            description=description, actor=customer_actor(), order_no=order_no, phone=phone,
            custom_fields={"source": via}))
        if media:
            await Message.create(ticket_id=ticket.id, customer_id=customer.id,
                                 channel_account_id=account.id if account else None, direction="in",
                                 author_kind="customer", msg_type="image", text="", media=media, data={"via": "h5"})
    return ticket
