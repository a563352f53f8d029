"""A ticket's fact worked out by hand from its rows: wall and business seconds on the default working calendar
(Mon-Fri 09:00-12:00 and 13:00-18:00), next-response waits, SLA per clock, hand-off reason, handling time;
conversation facts; channel days (消息接收率, delivery rates, lost callbacks)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.channels.models import ChannelAccount, InboundEvent
from app.channels.wecom_kf.models import KfSeen
from app.conversations.models import Conversation, Message
from app.outbox.models import OutboxMessage
from app.reports import facts, jobs, service
from app.reports.models import ReportConversationFact, ReportTicketFact
from app.reports.service import ReportFilter
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import SlaEvent, SlaPolicy, Ticket, TicketEvent, TicketRating
from app.timeutil import set_clock
from tests import factories
from tests.app.reports.dataset import at


def test_conversion_reasons_fall_into_the_issue_s_groups() -> None:
    assert {r: facts.reason_group(r) for r in (
        "keyword", "duration", "message_count", "human_request", "bot:angry", "bot:vip", "staff", "api",
        "every_message", "customer", "")} == {
        "keyword": "keyword", "duration": "duration", "message_count": "duration", "human_request": "handoff",
        "bot:angry": "handoff", "bot:vip": "handoff", "staff": "staff", "api": "api", "every_message": "channel",
        "customer": "customer", "": "other"}


async def _message(ticket: Ticket | None, conv_id: int | None, direction: str, author: str, when: datetime) -> None:
    m = await Message.create(ticket_id=ticket.id if ticket else None, conversation_id=conv_id, direction=direction,
                             author_kind=author, text="…")
    await Message.filter(id=m.id).update(created_at=when)


async def test_a_ticket_fact_by_hand(db: None) -> None:
    data = await factories.org()
    agent, other = data["people"]["agent"], data["people"]["tech"]
    account = await ChannelAccount.create(kind="wechat_mp", key="mp1", name="公众号")
    policy = await SlaPolicy.create(name="标准", first_response_minutes=60, resolution_minutes=480)
    customer = await factories.customer()
    conv = await Conversation.create(customer_id=customer.id, channel_account_id=account.id)
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="要求人工", group_id=data["groups"][
        "service"].id, assignee_id=other.id, channel_account_id=account.id, conversation_id=conv.id,
        sla_policy_id=policy.id, record={"source": "wechat_mp", "reason": "bot:vip"})
    created = at("2026-11-13", "17:00")  # a Friday, an hour before closing
    await Ticket.filter(id=t.id).update(
        created_at=created, first_responded_at=at("2026-11-16", "09:30"), resolved_at=at("2026-11-17", "10:00"),
        status="resolved", assignee_id=agent.id)
    await _message(t, conv.id, "in", "customer", at("2026-11-13", "16:59"))
    await _message(t, conv.id, "out", "bot", at("2026-11-13", "17:00"))  # the bot is nobody's response
    await _message(t, conv.id, "out", "staff", at("2026-11-16", "09:30"))
    await _message(t, conv.id, "in", "customer", at("2026-11-16", "10:00"))
    await _message(t, conv.id, "in", "customer", at("2026-11-16", "10:05"))  # still the same wait
    await _message(t, conv.id, "out", "staff", at("2026-11-16", "10:20"))
    await _message(t, conv.id, "in", "customer", at("2026-11-16", "17:50"))
    await _message(t, conv.id, "out", "staff", at("2026-11-17", "09:10"))
    assigned = await TicketEvent.create(ticket_id=t.id, kind="assigned", actor_kind="system", new=str(agent.id))
    await TicketEvent.filter(id=assigned.id).update(created_at=at("2026-11-16", "09:00"))
    for old, new in (("open", "resolved"), ("resolved", "open"), ("open", "resolved")):
        await TicketEvent.create(ticket_id=t.id, kind="status_changed", actor_kind="staff", old=old, new=new)
    for kind in ("warning", "breach", "escalation_1"):
        await SlaEvent.create(ticket_id=t.id, clock="first_response", due_at=created, kind=kind, at=created)
    await TicketRating.create(ticket_id=t.id, score=5, source="h5_page", at=at("2026-11-17", "12:00"))

    old, new = await facts.save_ticket_facts([t.id])
    assert old == [] and [r["ticket_id"] for r in new] == [t.id]
    f = await ReportTicketFact.get(ticket_id=t.id)  # as written, and read back
    assert (f.channel, f.account_id, f.conversation_id, f.agent_id, f.policy_id) == (
        "wechat_mp", account.id, conv.id, agent.id, policy.id)
    assert (f.created_day, f.created_hour, f.created_weekday) == (date(2026, 11, 13), 17, 5)
    # Fri 17:00 -> Mon 09:30: 2 d 16 h 30 m on the clock; 1 h Friday + 30 min Monday of working time
    assert (f.frt_wall, f.frt_business) == (232200, 5400)
    # waits: Mon 10:00 -> 10:20 (1200 s both), Mon 17:50 -> Tue 09:10 (55200 s; 10 + 10 working minutes)
    assert (f.nrt_count, f.nrt_wall, f.nrt_business) == (2, (1200 + 55200) // 2, 1200)
    # Fri 17:00 -> Tue 10:00: 3 d 17 h; working 1 h Friday + 8 h Monday (lunch 12-13 off) + 1 h Tuesday
    assert (f.resolution_wall, f.resolution_business, f.resolved_day) == (320400, 36000, date(2026, 11, 17))
    assert f.handling_wall == 25 * 3600  # assigned Mon 09:00, resolved Tue 10:00
    assert (f.reopened, f.replies, f.customer_messages) == (1, 3, 4)
    assert (f.sla_first, f.sla_next, f.sla_resolution, f.breached, f.escalations) == (
        "breached", None, "met", True, 1)
    assert (f.csat, f.rated_day) == (5, date(2026, 11, 17))
    assert (f.reason, f.reason_group, f.handoff, f.is_open) == ("bot:vip", "handoff", "vip", False)


async def test_conversations_follow_new_messages_without_a_ticket_event(db: None) -> None:
    account = await ChannelAccount.create(kind="wecom_kf", key="kf1", name="客服")
    customer = await factories.customer()
    conv = await Conversation.create(customer_id=customer.id, channel_account_id=account.id)
    await _message(None, conv.id, "in", "customer", datetime.now(UTC))
    await _message(None, conv.id, "out", "bot", datetime.now(UTC))
    await jobs.refresh()
    c = await ReportConversationFact.get(conversation_id=conv.id)
    assert (c.channel, c.messages_in, c.messages_out, c.bot_messages, c.ticket_id, c.bot_resolved) == (
        "wecom_kf", 1, 1, 1, None, True)
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="转人工", conversation_id=conv.id,
                             channel_account_id=account.id, record={"source": "wecom_kf", "reason": "bot:angry"})
    await jobs.refresh()
    c = await ReportConversationFact.get(conversation_id=conv.id)
    assert (c.ticket_id, c.ticket_number, c.reason_group, c.handoff, c.bot_resolved) == (
        t.id, t.number, "handoff", "angry", False)
    await jobs.refresh()  # nothing new: nothing changes
    assert await ReportConversationFact.all().count() == 1


async def _inbound(account: ChannelAccount, key: str, status: str, when: datetime) -> None:
    e = await InboundEvent.create(channel_account_id=account.id, dedupe_key=key, payload="<xml/>", status=status,
                                  error="解密失败" if status == "failed" else None)
    await InboundEvent.filter(id=e.id).update(received_at=when)


async def _outbox(account: ChannelAccount | None, channel: str, kind: str, status: str, when: datetime,
                  receipt: str | None = None) -> None:
    row = await OutboxMessage.create(channel=channel, kind=kind, recipient="o1", payload={}, status=status,
                                     next_attempt_at=when, channel_account_id=account.id if account else None,
                                     delivery_state=receipt)
    await OutboxMessage.filter(id=row.id).update(created_at=when)


async def test_reception_and_delivery_rates_by_hand(db: None) -> None:
    mp = await ChannelAccount.create(kind="wechat_mp", key="mp1", name="服务号")
    await ChannelAccount.create(kind="wecom_kf", key="kf1", name="微信客服")
    day = at("2026-11-10", "10:00")
    for n, status in enumerate(("done", "done", "ignored", "failed", "pending")):
        await _inbound(mp, f"k{n}", status, day + timedelta(minutes=n))
    await _inbound(mp, "old", "done", at("2026-11-03", "10:00"))
    for n in range(2):
        seen = await KfSeen.create(msgid=f"m{n}", open_kfid="kf1")
        await KfSeen.filter(id=seen.id).update(created_at=day)
    for status in ("sent", "sent", "failed", "dead", "pending"):
        await _outbox(mp, "wechat_mp", "customer_message", status, day)
    await _outbox(mp, "wechat_mp", "template_message", "sent", day, "success")
    await _outbox(mp, "wechat_mp", "template_message", "sent", day, "failed:user block")
    await _outbox(None, "wecom_app", "staff_card", "failed", day)  # a card to staff is not a customer delivery
    await facts.recompute_channel_days(date(2026, 11, 1), date(2026, 11, 30))
    await facts.recompute_channel_days(date(2026, 11, 1), date(2026, 11, 30))  # twice: the same rows
    set_clock(lambda: datetime(2026, 11, 16, tzinfo=UTC))
    flt = ReportFilter(start=date(2026, 11, 9), end=date(2026, 11, 15))
    s = await service.reception(actor=SYSTEM, flt=flt)

    def fig(key: str) -> tuple[Any, Any, Any, Any]:
        f = s.figure(key)
        return f.value, f.previous, f.numerator, f.denominator

    # received: 5 callbacks + 2 pulled kf messages; processed: 2 done + 1 ignored + 2 pulled
    assert fig("reception_rate") == (5 / 7, 1.0, 5, 7)
    assert fig("received")[:2] == (7, 1)
    assert fig("failed")[:2] == (1, 0)
    # attempted: sent 2, failed 1, dead 1, 2 templates sent = 6 (the pending row was not tried); sent 4
    assert fig("delivery_rate") == (4 / 6, None, 4, 6)
    assert fig("template_delivery_rate") == (0.5, None, 1, 2)
    by = {r["account"]: (r["received"], r["processed"], r["failed"]) for r in s.tables[0].rows}
    assert by == {"服务号": (5, 3, 1), "微信客服": (2, 2, 0)}
    lost = await service.lost_inbound(actor=SYSTEM, flt=flt)
    assert [(x.status, x.error) for x in lost] == [("pending", ""), ("failed", "解密失败")]
    kf_only = await service.reception(actor=SYSTEM, flt=ReportFilter(start=flt.start, end=flt.end,
                                                                     channel="wecom_kf"))
    assert kf_only.figure("reception_rate").value == 1.0
