"""Tickets: create, read, list, update, reply, note. Every query carries the actor's scope."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import structlog
from tortoise.expressions import F, Q

from app import events
from app.batching import GroupCommit
from app.conversations.models import Message
from app.customers.models import Customer
from app.db import dialect_sql
from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.rows import id_step, insert_rows, instance
from app.security import tokens
from app.security.crypto import encrypt_field, keyed_hash, normalize_phone
from app.security.scope import Actor
from app.staff.models import SkillGroup, Staff
from app.tickets import routing, sla, states
from app.tickets.models import Ticket, TicketEvent
from app.tickets.numbers import next_numbers
from app.timeutil import utcnow
from app.uow import atomic, inside_transaction, on_commit

log = structlog.get_logger(__name__)

PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_LABELS = {"low": "低", "normal": "普通", "high": "高", "urgent": "紧急"}
#: fields a PATCH may change besides status
EDITABLE = ("subject", "priority", "category", "group_id", "assignee_id", "tags", "order_no", "custom_fields")


#: the columns of a ticket in a list (what serializers.ticket reads without detail)
LIST_FIELDS = (
    "id", "number", "subject", "status", "priority", "category", "order_no", "customer_id", "group_id", "assignee_id",
    "channel_account_id", "tags", "version", "created_at", "updated_at", "last_activity_at", "first_response_due",
    "next_response_due", "resolution_due",
)


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


async def get(*, actor: Actor, ticket_id: int) -> Ticket:
    """Return a ticket in the actor's scope, or NotFound (also when it exists outside the scope)."""
    ticket = await Ticket.filter(actor.ticket_filter(), id=ticket_id).first()
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


async def get_by_number(*, actor: Actor, number: str) -> Ticket:
    """Return a ticket by its number, within the actor's scope."""
    ticket = await Ticket.filter(actor.ticket_filter(), number=number).first()
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


def _encode_cursor(last_activity_at: str, ticket_id: int) -> str:
    """The cursor after a ticket (its last activity in ISO form: a list row carries it as text already)."""
    raw = json.dumps({"t": last_activity_at, "id": ticket_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(raw["t"]), int(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("cursor 无效", code="invalid_cursor") from exc


async def list_tickets(
    *,
    actor: Actor,
    status: list[str] | None = None,
    group_id: int | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    customer_id: int | None = None,
    text: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    light: bool = False,
    replica: bool = False,
) -> Page:
    """List tickets in the actor's scope, newest activity first, with cursor pagination (light: the list's columns
    as plain rows, datetimes in ISO text, with the current `rating`; replica: read from DATABASE_REPLICA_URL when
    configured)."""
    from app.tickets import listing

    limit = max(1, min(limit, 200))
    after = _decode_cursor(cursor) if cursor else None
    conn: Any = Ticket._meta.db
    if replica:
        from app.db import reader

        conn = reader()
    if light and not text and listing.supports(conn):
        # the list page's own statement (app.tickets.listing): tortoise's building and conversions cost more here
        rows = await listing.page_rows(conn=conn, actor=actor, status=status, group_id=group_id,
                                       assignee_id=assignee_id, unassigned=unassigned, customer_id=customer_id,
                                       after=after, limit=limit + 1)
        page = [SimpleNamespace(**row) for row in rows]
        return Page(items=page[:limit], next_cursor=_encode_cursor(page[limit - 1].last_activity_at, page[limit - 1].id)
                    if len(page) > limit
                    else None)
    query = Ticket.filter(actor.ticket_filter())
    if replica:
        query = query.using_db(conn)
    if status:
        query = query.filter(status__in=status)
    if group_id is not None:
        query = query.filter(group_id=group_id)
    if assignee_id is not None:
        query = query.filter(assignee_id=assignee_id)
    if unassigned:
        query = query.filter(assignee_id=None)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    if text:
        text = text.strip()
        # a text longer than a column cannot equal its value (and tortoise refuses to compare it): skip that column
        match = Q(subject__icontains=text)
        for column, width in (("number", 32), ("order_no", 64)):
            if len(text) <= width:
                match |= Q(**{column: text})
        phone = normalize_phone(text)
        if phone:
            # the ticket's contact phone, and the phone written in its subject or description (stored tokenised)
            match |= Q(phone_hash=keyed_hash(phone))
            in_text = await tokens.text_filter(value=phone)
            if in_text is not None:
                match |= in_text
        query = query.filter(match)
    if after is not None:
        t, last_id = after
        query = query.filter(Q(last_activity_at__lt=t) | Q(last_activity_at=t, id__lt=last_id))
    query = query.order_by("-last_activity_at", "-id").limit(limit + 1)
    if light:
        # a text search (or another dialect): the same plain rows as the list's statement gives
        from app.tickets.ratings import scores_for

        values = await query.values(*LIST_FIELDS)
        rating = await scores_for(ticket_ids=[v["id"] for v in values])
        items: list[Any] = [SimpleNamespace(**{
            **v, **{c: v[c].isoformat() if v[c] is not None else None for c in listing.DATES},
            "rating": rating.get(v["id"])}) for v in values]
        next_cursor = (_encode_cursor(items[limit - 1].last_activity_at, items[limit - 1].id)
                       if len(items) > limit else None)
    else:
        items = await query
        next_cursor = (_encode_cursor(items[limit - 1].last_activity_at.isoformat(), items[limit - 1].id)
                       if len(items) > limit else None)
    return Page(items=items[:limit], next_cursor=next_cursor)


async def _check_group_and_assignee(actor: Actor, group_id: int | None, assignee_id: int | None) -> None:
    # groups are never deleted: one in routing's cached list exists; only an id it lacks (a group created in the
    # last CACHE_SECONDS, or none) costs a read
    if (group_id is not None and group_id not in (await routing.group_ids()).values()
            and not await SkillGroup.filter(id=group_id).exists()):
        raise ValidationFailed("技能组不存在", code="unknown_group")
    if group_id is not None and actor.kind == "staff" and not actor.sees_group(group_id):
        raise PermissionDenied("不能把工单放入你无权查看的技能组", code="group_out_of_scope")
    if assignee_id is not None and not await Staff.filter(id=assignee_id, status="active").exists():
        raise ValidationFailed("处理人不存在或已停用", code="unknown_assignee")


def _phone_fields(phone: str | None) -> dict[str, Any]:
    if not phone:
        return {}
    normalized = normalize_phone(phone)
    if normalized is None:
        raise ValidationFailed("手机号格式不正确", code="invalid_phone")
    return {"phone_enc": encrypt_field(normalized), "phone_hash": keyed_hash(normalized)}


async def create(
    *,
    actor: Actor,
    customer_id: int,
    subject: str,
    description: str = "",
    priority: str = "normal",
    category: str = "",
    order_no: str | None = None,
    phone: str | None = None,
    custom_fields: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    group_id: int | None = None,
    assignee_id: int | None = None,
    channel_account_id: int | None = None,
    conversation_id: int | None = None,
    sla_policy_id: int | None = None,
    after_hours_until: datetime | None = None,
    decision: Any = None,
    record: dict[str, Any] | None = None,
    customer_checked: bool = False,
    group_checked: bool = False,
    customer_target: tuple[str, int, str] | None = None,
) -> Ticket:
    """Create a ticket and its audit trail, and tell the listeners, in one transaction (use app.intake, which
    routes it first; `record` is the intake decision kept on the ticket; `customer_target`, where the customer is
    answered when the caller holds it, is handed to the listeners). Outside a transaction the tickets a process
    creates at the same moment share one (`_Creations`)."""
    subject = subject.strip()
    if not subject:
        raise ValidationFailed("请填写工单标题", code="subject_required")
    if priority not in PRIORITIES:
        raise ValidationFailed(f"优先级必须是 {', '.join(PRIORITIES)} 之一", code="invalid_priority")
    if not customer_checked and not await Customer.filter(id=customer_id).exists():
        raise ValidationFailed("客户不存在", code="unknown_customer")
    await _check_group_and_assignee(actor, None if group_checked else group_id, assignee_id)
    now = utcnow()
    # the routed policy's clocks go into the INSERT (a ticket without one gets the best match from sla.on_created)
    clocks = {} if sla_policy_id is None else await sla.started_clocks(policy_id=sla_policy_id, group_id=group_id,
                                                                      start=now)
    new = _NewTicket(actor=actor, decision=decision, record=record or {}, customer_target=customer_target, fields={
        "subject": subject[:200], "description": description, "priority": priority, "category": category[:32],
        "order_no": order_no, "custom_fields": custom_fields or {}, "tags": tags or [], "customer_id": customer_id,
        "group_id": group_id, "assignee_id": assignee_id, "channel_account_id": channel_account_id,
        "conversation_id": conversation_id, "after_hours_until": after_hours_until, "last_activity_at": now,
        "created_at": now, "updated_at": now, **_phone_fields(phone), **clocks})
    if inside_transaction():
        return (await _write_new([new]))[0]  # the caller's transaction holds more than the ticket
    return await _CREATIONS.add(new)


@dataclass
class _NewTicket:
    """A checked ticket waiting for its number and its INSERT."""

    fields: dict[str, Any]
    actor: Actor
    record: dict[str, Any]
    decision: Any
    customer_target: tuple[str, int, str] | None


async def _write_new(new: list[_NewTicket]) -> list[Ticket]:
    """Number, insert and announce the tickets in the caller's transaction: the tickets in one INSERT where the
    server hands its rows consecutive ids, their audit rows in one more, then each ticket's listeners."""
    numbers = await next_numbers(count=len(new))
    made = [instance(Ticket, {"number": number, **n.fields}) for n, number in zip(new, numbers, strict=True)]
    step = await id_step(Ticket, rows=len(made)) if len(made) > 1 else 0
    if step:
        for ticket in made:
            await ticket._pre_save()  # the signal `save` sends: tokenising personal data (app.security.tokens)
        columns = Ticket._meta.db.executor_class(model=Ticket, db=Ticket._meta.db).regular_columns
        ids = await insert_rows(Ticket, [{c: getattr(t, c) for c in columns} for t in made], id_step=step)
        for ticket, ticket_id in zip(made, ids, strict=True):
            ticket.id = ticket_id
            ticket._saved_in_db = True
    else:
        for ticket in made:
            await ticket.save(force_create=True)
    now = utcnow()
    await insert_rows(TicketEvent, [{
        "ticket_id": t.id, "kind": "created", "actor_kind": n.actor.kind, "actor_id": n.actor.staff_id,
        "new": states.Status.NEW.value, "reason": "", "data": n.record, "created_at": now}
        for t, n in zip(made, new, strict=True)])
    for ticket, n in zip(made, new, strict=True):
        await events.emit(events.TICKET_CREATED, ticket=ticket, actor=n.actor, decision=n.decision, record=n.record,
                          customer_target=n.customer_target)
    return made


class _Creations(GroupCommit[_NewTicket, Ticket]):
    """The tickets one process is asked for outside a transaction (API, H5, the sidebar) while a batch is being
    written go together in the next: one counter statement, one transaction, one INSERT per table, where each alone
    cost seven round trips. A batch that fails is written again a ticket at a time, so one bad ticket fails alone."""

    max_batch = 50

    async def _write(self, batch: list[tuple[_NewTicket, asyncio.Future[Ticket]]]) -> None:
        try:
            made = await _committed([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            for item, fut in batch:
                try:
                    one = await _committed([item])
                except Exception as alone:
                    if not fut.done():
                        fut.set_exception(alone)
                else:
                    if not fut.done():
                        fut.set_result(one[0])
            return
        except BaseException as exc:
            self._fail(batch, exc)
            return
        for (_, fut), ticket in zip(batch, made, strict=True):
            if not fut.done():  # the caller may have gone (a client that hung up): its ticket stays
                fut.set_result(ticket)


async def _committed(new: list[_NewTicket]) -> list[Ticket]:
    """`_write_new` in a transaction of its own; an after-commit hook's failure does not undo what committed."""
    made: list[Ticket] = []
    done = False

    async def _mark() -> None:
        nonlocal done
        done = True

    try:
        async with atomic():
            await on_commit(_mark)  # the first hook: it runs once the commit succeeded
            made = await _write_new(new)
    except Exception:
        if not done:
            raise
        log.exception("tickets.after_commit_failed", tickets=[t.id for t in made])
    return made


_CREATIONS = _Creations()


async def update(*, actor: Actor, ticket_id: int, expected_version: int, changes: dict[str, Any]) -> Ticket:
    """Change fields (and, through the state machine, the status) if nobody changed the ticket since the version."""
    unknown = set(changes) - set(EDITABLE) - {"status", "reason"}
    if unknown:
        raise ValidationFailed(f"不能修改字段: {', '.join(sorted(unknown))}", code="not_editable")
    ticket = await get(actor=actor, ticket_id=ticket_id)
    reason = str(changes.pop("reason", "") or "")
    status = changes.pop("status", None)
    if "priority" in changes and changes["priority"] not in PRIORITIES:
        raise ValidationFailed(f"优先级必须是 {', '.join(PRIORITIES)} 之一", code="invalid_priority")
    if "subject" in changes and not str(changes["subject"]).strip():
        raise ValidationFailed("请填写工单标题", code="subject_required")
    await _check_group_and_assignee(actor, changes.get("group_id"), changes.get("assignee_id"))
    async with atomic():
        version = expected_version
        field_changes = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
        if field_changes:
            updated = await Ticket.filter(id=ticket.id, version=version).update(
                **field_changes, version=F("version") + 1, updated_at=utcnow()
            )
            if not updated:
                raise states.conflict(await Ticket.filter(id=ticket.id).select_for_update().get())
            version += 1
            for key, value in field_changes.items():
                await TicketEvent.create(
                    ticket_id=ticket.id,
                    kind=_event_kind(key),
                    actor_kind=actor.kind,
                    actor_id=actor.staff_id,
                    old=_short(getattr(ticket, key)),
                    new=_short(value),
                    reason=reason[:500],
                )
            fresh = await Ticket.get(id=ticket.id)
            await events.emit(events.TICKET_UPDATED, ticket=fresh, before=ticket, changed=set(field_changes),
                              actor=actor)
        if status is not None and status != ticket.status:
            return await states.transition(
                ticket_id=ticket.id, to=str(status), expected_version=version, actor=actor, reason=reason
            )
        if not field_changes and version != ticket.version:
            raise states.conflict(ticket)
    return await Ticket.get(id=ticket.id)


def _event_kind(key: str) -> str:
    return {"assignee_id": "assigned", "priority": "priority_changed", "group_id": "group_changed"}.get(key, "updated")


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:255]


async def reply(*, actor: Actor, ticket_id: int, text: str, status: str | None = None) -> Message:
    """Post a staff reply: stored on the ticket and sent to the customer's channel through the outbox."""
    text = text.strip()
    if not text:
        raise ValidationFailed("回复内容不能为空", code="empty_reply")
    ticket = await get(actor=actor, ticket_id=ticket_id)
    async with atomic():
        now = utcnow()
        message = await Message.create(
            ticket_id=ticket.id,
            conversation_id=ticket.conversation_id,  # type: ignore[attr-defined]
            customer_id=ticket.customer_id,  # type: ignore[attr-defined]
            direction="out",
            author_kind="staff" if actor.kind == "staff" else actor.kind,
            staff_id=actor.staff_id,
            channel_account_id=ticket.channel_account_id,  # type: ignore[attr-defined]
            msg_type="text",
            text=text,
        )
        touch: dict[str, Any] = {"last_activity_at": now}
        if ticket.first_responded_at is None:
            touch["first_responded_at"] = now
        await Ticket.filter(id=ticket.id).update(**touch)
        await TicketEvent.create(
            ticket_id=ticket.id, kind="replied", actor_kind=actor.kind, actor_id=actor.staff_id,
            data={"message_id": message.id},
        )
        await events.emit(events.TICKET_REPLIED, ticket=ticket, message=message, actor=actor)
        target = status or ("open" if ticket.status == states.Status.NEW else None)
        if target and target != ticket.status:
            await states.transition(
                ticket_id=ticket.id, to=target, expected_version=ticket.version, actor=actor, reason="回复客户"
            )
    return message


async def add_note(*, actor: Actor, ticket_id: int, text: str) -> Message:
    """Add an internal note (never sent to the customer)."""
    text = text.strip()
    if not text:
        raise ValidationFailed("备注内容不能为空", code="empty_note")
    ticket = await get(actor=actor, ticket_id=ticket_id)
    async with atomic():
        message = await Message.create(
            ticket_id=ticket.id, customer_id=ticket.customer_id, direction="internal",  # type: ignore[attr-defined]
            author_kind=actor.kind, staff_id=actor.staff_id, msg_type="text", text=text,
        )
        await TicketEvent.create(
            ticket_id=ticket.id, kind="note", actor_kind=actor.kind, actor_id=actor.staff_id,
            data={"message_id": message.id},
        )
    return message


async def list_messages(*, actor: Actor, ticket_id: int, after_id: int = 0, limit: int = 200) -> list[Message]:
    """The ticket's messages in order (customer, staff, notes), within the actor's scope."""
    ticket = await get(actor=actor, ticket_id=ticket_id)
    return await Message.filter(ticket_id=ticket.id, id__gt=after_id).order_by("id").limit(min(limit, 500))


async def list_events(*, actor: Actor, ticket_id: int) -> list[TicketEvent]:
    """The ticket's audit trail, oldest first."""
    ticket = await get(actor=actor, ticket_id=ticket_id)
    return await TicketEvent.filter(ticket_id=ticket.id).order_by("id")


#: every customer message on a ticket touches it: SQL written once (`app.db.dialect_sql`), as tortoise's query building
#: cost more CPU than the round trip
_TOUCH = "UPDATE {q}ticket{q} SET {q}last_activity_at{q}={m},{q}updated_at{q}={m} WHERE {q}id{q}={m}"


async def touch(*, ticket_id: int) -> None:
    """Record activity on a ticket (lists sort by it; platforms polling updated_since see it)."""
    conn: Any = Ticket._meta.db
    stamp = Ticket._meta.fields_map["last_activity_at"].to_db_value(utcnow(), Ticket)
    await conn.execute_query(dialect_sql(_TOUCH, conn.capabilities.dialect), [stamp, stamp, ticket_id])


async def open_ticket_for_customer(*, customer_id: int) -> Ticket | None:
    """The customer's newest live ticket (a new message joins it instead of opening another)."""
    return await Ticket.filter(customer_id=customer_id, status__in=[s.value for s in states.LIVE]).order_by(
        "-id"
    ).first()
