"""Closing with confirmation: 1 closes, 2 or any new message reopens, silence closes after AUTO_CLOSE_DAYS."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from app import intake
from app.channels.base import InboundMessage
from app.channels.testing import RecordingAdapter
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
    outcome = await intake.receive(inbound=inbound(" 1 "), account=account)
    assert outcome.ticket is not None and outcome.ticket.id == t.id
    fresh = await Ticket.get(id=t.id)
    assert fresh.status == "closed"
    event = await TicketEvent.filter(ticket_id=t.id, kind="status_changed").order_by("-id").first()
    assert event is not None and (event.old, event.new, event.actor_kind, event.reason) == (
        "resolved", "closed", "customer", "客户确认已解决")


async def test_reply_2_or_any_message_reopens(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    account, _ = await factories.channel_customer()
    await intake.receive(inbound=inbound("2"), account=account)
    fresh = await Ticket.get(id=t.id)
    assert fresh.status == "open"
    reasons: list[Any] = list(await TicketEvent.filter(ticket_id=t.id, kind="status_changed").order_by(
        "id").values_list("reason", flat=True))
    assert reasons[-1] == "客户表示问题未解决"
    fresh = await states.transition(ticket_id=t.id, to="resolved", expected_version=fresh.version, actor=SYSTEM)
    await intake.receive(inbound=inbound("还是不行，退款没到"), account=account)
    assert (await Ticket.get(id=t.id)).status == "open"


async def test_a_1_on_an_open_ticket_is_just_a_message(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    t = await states.transition(ticket_id=t.id, to="open", expected_version=t.version, actor=SYSTEM)
    account, _ = await factories.channel_customer()
    await intake.receive(inbound=inbound("1"), account=account)
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


def reopen_text(t: Ticket) -> str:
    return f"您的工单 {t.number} 已重新打开，我们正在继续为您处理，有进展会第一时间通知您。"


async def test_reply_2_tells_the_customer_the_ticket_is_handled_again(db: None, recording: RecordingAdapter) -> None:
    # observation 7: a reopen by "2" used to send the customer nothing
    t = await resolved_ticket()
    account, _ = await factories.channel_customer()
    await intake.receive(inbound=inbound("2"), account=account)
    fresh = await Ticket.get(id=t.id)
    row = await OutboxMessage.get(ticket_id=t.id, dedupe_key=f"reopen:{t.id}:{fresh.version}")
    assert (row.channel, row.kind, row.recipient) == ("test", "customer_message", "u-1")
    assert row.payload["text"] == reopen_text(fresh)
    assert row.payload["template"]["fields"]["status"] == "处理中"
    # any other message on a resolved ticket reopens it with the same notice
    fresh = await states.transition(ticket_id=t.id, to="resolved", expected_version=fresh.version, actor=SYSTEM)
    await intake.receive(inbound=inbound("还是不行"), account=account)
    fresh = await Ticket.get(id=t.id)
    again = await OutboxMessage.get(ticket_id=t.id, dedupe_key=f"reopen:{t.id}:{fresh.version}")
    assert (fresh.status, again.payload["text"]) == ("open", reopen_text(fresh))


async def test_a_staff_reopen_tells_the_customer_once(db: None, recording: RecordingAdapter) -> None:
    t = await resolved_ticket()
    data = await factories.org()
    agent = await factories.actor(data["people"]["admin"])
    t = await states.transition(ticket_id=t.id, to="closed", expected_version=t.version, actor=SYSTEM)
    t = await states.transition(ticket_id=t.id, to="open", expected_version=t.version, actor=agent, reason="客户来电")
    rows = [r for r in await OutboxMessage.filter(ticket_id=t.id) if r.payload.get("text") == reopen_text(t)]
    assert [r.dedupe_key for r in rows] == [f"reopen:{t.id}:{t.version}"]


async def test_staff_closing_needs_a_confirmation_and_a_new_unanswered_ticket_a_warning(db: None) -> None:
    account, customer = await factories.channel_customer()
    from app.tickets import service

    t = await service.create(actor=SYSTEM, customer_id=customer.id, subject="退款", channel_account_id=account.id)
    with pytest.raises(closing.ConfirmationRequired) as exc:
        closing.require_close_confirmation(ticket=t, to="closed", confirmed=False)
    assert (exc.value.status_code, exc.value.code, exc.value.details["warning"]) == (
        409, "confirmation_required", "unanswered")
    assert exc.value.message == closing.UNANSWERED_WARNING + closing.CONFIRM_HINT
    closing.require_close_confirmation(ticket=t, to="closed", confirmed=True)
    closing.require_close_confirmation(ticket=t, to="open", confirmed=False)
    t = await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=SYSTEM)
    await Ticket.filter(id=t.id).update(first_responded_at=utcnow())
    t = await Ticket.get(id=t.id)
    with pytest.raises(closing.ConfirmationRequired) as exc:
        closing.require_close_confirmation(ticket=t, to="closed", confirmed=False)
    assert (exc.value.details["warning"], exc.value.message) == (
        "close", closing.CLOSE_WARNING + closing.CONFIRM_HINT)
