"""Closing with confirmation: 1 closes, 2 or any new message reopens, silence closes after AUTO_CLOSE_DAYS."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from app.channels.base import InboundMessage
from app.channels.testing import RecordingAdapter
from app.conversations import service as conversations
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import closing, states
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from tests import factories
from tests.app.tickets.sla_helpers import Clock, cn

_ids = itertools.count(1)


def inbound(text: str, handle: str = "u-1") -> InboundMessage:
    return InboundMessage(channel="test", channel_account_id=0, sender_kind="test_id", sender_id=handle,
                          msg_type="text", provider_msg_id=f"m-{next(_ids)}", created_at=utcnow(), text=text)


async def resolved_ticket() -> Ticket:
    account, customer = await factories.channel_customer()
    from app.tickets import service

    t = await service.create(actor=SYSTEM, customer_id=customer.id, subject="退款", channel_account_id=account.id)
    t = await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=SYSTEM)
    return t


async def test_resolving_asks_the_customer_to_confirm(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    row = await OutboxMessage.get(kind="template_message", ticket_id=t.id)
    assert row.payload["text"] == (f"您的工单 {t.number} 已解决。请回复 1 确认关闭；"
                                   "如问题仍未解决，请回复 2 或直接描述问题，我们会继续处理。"
                                   "若一直未回复，工单将自动关闭。")


async def test_reply_1_closes(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    account, _ = await factories.channel_customer()
    outcome = await conversations.ingest(inbound=inbound(" 1 "), account=account)
    assert outcome.ticket is not None and outcome.ticket.id == t.id
    fresh = await Ticket.get(id=t.id)
    assert fresh.status == "closed"
    event = await TicketEvent.filter(ticket_id=t.id, kind="status_changed").order_by("-id").first()
    assert event is not None and (event.old, event.new, event.actor_kind, event.reason) == (
        "resolved", "closed", "customer", "客户确认已解决")


async def test_reply_2_or_any_message_reopens(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    account, _ = await factories.channel_customer()
    await conversations.ingest(inbound=inbound("2"), account=account)
    fresh = await Ticket.get(id=t.id)
    assert fresh.status == "open"
    reasons: list[Any] = list(await TicketEvent.filter(ticket_id=t.id, kind="status_changed").order_by(
        "id").values_list("reason", flat=True))
    assert reasons[-1] == "客户表示问题未解决"
    fresh = await states.transition(ticket_id=t.id, to="resolved", expected_version=fresh.version, actor=SYSTEM)
    await conversations.ingest(inbound=inbound("还是不行，退款没到"), account=account)
    assert (await Ticket.get(id=t.id)).status == "open"


async def test_a_1_on_an_open_ticket_is_just_a_message(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    t = await states.transition(ticket_id=t.id, to="open", expected_version=t.version, actor=SYSTEM)
    account, _ = await factories.channel_customer()
    await conversations.ingest(inbound=inbound("1"), account=account)
    assert (await Ticket.get(id=t.id)).status == "open"


async def test_silence_closes_after_the_configured_days(db: None, recording: RecordingAdapter) -> None:
    clock = Clock(cn(2025, 9, 22, 10, 0))
    t = await resolved_ticket()
    clock.to(cn(2025, 9, 22, 10, 0) + timedelta(days=3) - timedelta(seconds=1))
    assert await closing.close_silent() == 0
    clock.to(cn(2025, 9, 22, 10, 0) + timedelta(days=3))
    assert await closing.close_silent() == 1
    fresh = await Ticket.get(id=t.id)
    assert fresh.status == "closed"
    assert await closing.close_silent() == 0
    event = await TicketEvent.filter(ticket_id=t.id, kind="status_changed").order_by("-id").first()
    assert event is not None and event.reason == "客户 3 天未回复，自动关闭"
