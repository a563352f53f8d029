"""Who is told what on which event. Renders jinja2 templates (Chinese) and writes only to the outbox.

The customer is addressed on the channel the ticket came from, by the identity they hold there; a ticket with
no channel (entered by staff) gets its messages recorded through the null channel.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.channels.base import IDENTITY_KIND
from app.channels.models import ChannelAccount
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.db import dialect_sql
from app.outbox import service as outbox
from app.settings import get_settings
from app.tickets.models import Ticket
from app.timeutil import local, utcnow

#: customer-facing status names; resolved, closed and a reopen are announced by template message
CUSTOMER_VISIBLE = {"new": "已受理", "open": "处理中", "pending": "待您回复", "resolved": "已解决", "closed": "已关闭"}
#: statuses a move back to open counts as a reopen from
REOPENED_FROM = ("resolved", "closed")


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: Any) -> str:
    """Render a message template to plain text."""
    return _env().get_template(name).render(**context).strip()


def ticket_url(ticket: Ticket) -> str:
    """The customer-facing page of a ticket (the H5 "我的工单")."""
    return f"{get_settings().public_url}/h5/my/tickets/{ticket.number}"


#: where a message to a ticket's customer goes, read for every new ticket (the acknowledgement) and every reply:
#: SQL written once (`app.db.dialect_sql`), the columns needed only, as tortoise's query building and whole rows cost
#: more CPU than the round trips
_ACCOUNT = "SELECT {q}kind{q},{q}key{q} FROM {q}channel_account{q} WHERE {q}id{q}={m} LIMIT 1"
_HANDLE = ("SELECT {q}value{q} FROM {q}customer_identity{q} WHERE {q}customer_id{q}={m} AND {q}kind{q}={m} AND "
           "{q}scope{q}={m} LIMIT 1")


async def customer_target(ticket: Ticket) -> tuple[str, int | None, str]:
    """(channel kind, channel account id, recipient handle) for messages to the ticket's customer."""
    account_id: int | None = ticket.channel_account_id  # type: ignore[attr-defined]
    if account_id is None:
        return "null", None, ""
    # kept on the object: a new ticket's acknowledgement and its 下班 notice go to the same place
    known = ticket.__dict__.get("_customer_target")
    if known is not None and known[0] == (account_id, ticket.customer_id):  # type: ignore[attr-defined]
        return cast(tuple[str, int | None, str], known[1])
    target = await _look_up_target(account_id, ticket.customer_id)  # type: ignore[attr-defined]
    _keep_target(ticket, account_id, target)
    return target


def _keep_target(ticket: Ticket, account_id: int, target: tuple[str, int | None, str]) -> None:
    # keyed by what it answers for: a ticket moved to another account or customer reads its target again
    ticket.__dict__["_customer_target"] = ((account_id, ticket.customer_id), target)  # type: ignore[attr-defined]


def remember_target(ticket: Ticket, target: tuple[str, int, str]) -> None:
    """Where the ticket's customer is answered, as `customer_target` would read it, told by a caller that holds it
    (the intake path has the channel and sender of the message that opened the ticket)."""
    _keep_target(ticket, target[1], target)


async def _look_up_target(account_id: int, customer_id: int) -> tuple[str, int | None, str]:
    conn: Any = ChannelAccount._meta.db
    dialect = conn.capabilities.dialect
    accounts = await conn.execute_query_dict(dialect_sql(_ACCOUNT, dialect), [account_id])
    if not accounts or accounts[0]["kind"] not in IDENTITY_KIND:
        return "null", None, ""
    kind, key = str(accounts[0]["kind"]), str(accounts[0]["key"])
    handles = await conn.execute_query_dict(dialect_sql(_HANDLE, dialect), [customer_id, IDENTITY_KIND[kind], key])
    if not handles:
        return "null", account_id, ""
    return kind, account_id, str(handles[0]["value"])


def _template_fields(ticket: Ticket, status_label: str, remark: str) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": status_label,
        "time": local(utcnow()).strftime("%Y-%m-%d %H:%M"),
        "remark": remark,
    }


async def _to_customer(ticket: Ticket, *, kind: str, payload: dict[str, Any], dedupe_key: str | None) -> None:
    channel, account_id, recipient = await customer_target(ticket)
    await outbox.create(
        channel=channel,
        kind=kind,
        recipient=recipient,
        payload=payload,
        channel_account_id=account_id,
        ticket_id=ticket.id,
        dedupe_key=dedupe_key,
    )


async def ticket_acknowledged(*, ticket: Ticket) -> None:
    """Tell the customer their case is registered, with the number to quote."""
    if ticket.channel_account_id is None:  # type: ignore[attr-defined]
        return
    text = render("ticket_acknowledged.txt", ticket=ticket)
    payload = {
        "type": "text",
        "text": text,
        "template": {"name": "ticket_update", "url": ticket_url(ticket),
                     "fields": _template_fields(ticket, "已受理", "我们会尽快处理，请留意消息")},
    }
    await _to_customer(ticket, kind="customer_message", payload=payload, dedupe_key=f"ack:ticket:{ticket.id}")


async def auto_reply(*, ticket: Ticket, template: str, group: str | None) -> None:
    """A routing rule's auto-reply to the customer ({next_open}, {group}, {number} filled in)."""
    if ticket.channel_account_id is None:  # type: ignore[attr-defined]
        return
    from app.tickets import calendar as bizcal
    from app.tickets.routing import render_reply

    cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
    text = render_reply(template, calendar=cal, now=utcnow(), group=group, number=ticket.number)
    await _to_customer(ticket, kind="customer_message", payload={"type": "text", "text": text},
                       dedupe_key=f"autoreply:ticket:{ticket.id}")


async def staff_reply(*, ticket: Ticket, message: Message) -> None:
    """Carry a staff reply to the customer; outside the channel's window it falls back to a template."""
    payload = {
        "type": "text",
        "text": message.text,
        "message_id": message.id,
        "template": {"name": "ticket_update", "url": ticket_url(ticket),
                     "fields": _template_fields(ticket, CUSTOMER_VISIBLE.get(ticket.status, "处理中"),
                                                "客服已回复您，点击查看详情")},
    }
    channel, account_id, recipient = await customer_target(ticket)
    row = await outbox.create(
        channel=channel, kind="customer_message", recipient=recipient, payload=payload,
        channel_account_id=account_id, ticket_id=ticket.id, dedupe_key=f"reply:message:{message.id}",
    )
    await Message.filter(id=message.id).update(outbox_id=row.id)


async def status_changed(*, ticket: Ticket, old: str, new: str, reason: str) -> None:
    """A template message when the ticket reaches a status the customer cares about."""
    label = CUSTOMER_VISIBLE.get(new)
    if label is None or ticket.channel_account_id is None:  # type: ignore[attr-defined]
        return
    if new == "open" and old in REOPENED_FROM:
        await ticket_reopened(ticket=ticket, old=old)
        return
    if new in ("open", "pending") and old not in REOPENED_FROM:
        # taking a case up or asking the customer something goes with a reply; a template on top is noise
        return
    remark = render("status_changed.txt", ticket=ticket, new=new, label=label, reason=reason)
    payload = {
        "type": "template",
        "text": remark,
        "template": {"name": "ticket_update", "url": ticket_url(ticket),
                     "fields": _template_fields(ticket, label, remark)},
    }
    await _to_customer(
        ticket, kind="template_message", payload=payload, dedupe_key=f"status:{ticket.id}:{ticket.version}:{new}"
    )


async def ticket_reopened(*, ticket: Ticket, old: str) -> None:
    """Tell the customer their resolved or closed ticket is being handled again (whoever reopened it)."""
    if old not in REOPENED_FROM or ticket.channel_account_id is None:  # type: ignore[attr-defined]
        return
    text = render("ticket_reopened.txt", ticket=ticket)
    payload = {
        "type": "text",
        "text": text,
        # outside the channel's window (a closed ticket reopened days later) the template still gets through
        "template": {"name": "ticket_update", "url": ticket_url(ticket),
                     "fields": _template_fields(ticket, CUSTOMER_VISIBLE["open"], text)},
    }
    await _to_customer(ticket, kind="customer_message", payload=payload,
                       dedupe_key=f"reopen:{ticket.id}:{ticket.version}")


async def send_text_to_customer(*, account: ChannelAccount, customer: Any, text: str,
                                dedupe_key: str | None) -> None:
    """A plain text to a customer on one channel account (status answers, auto-replies)."""
    identity = await CustomerIdentity.filter(
        customer_id=customer.id, kind=IDENTITY_KIND.get(account.kind, ""), scope=account.key
    ).first()
    if identity is None:
        return
    await outbox.create(channel=account.kind, kind="customer_message", recipient=identity.value,
                        payload={"type": "text", "text": text}, channel_account_id=account.id,
                        dedupe_key=dedupe_key)
