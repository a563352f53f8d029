"""Journeys through the one intake flow on the Official Account (the desk's ASGI app, the simulator's API in a
thread, real encrypted callbacks): the observations of the intake issue, each as it was seen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from app.customers.models import Customer, CustomerIdentity
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import assignment, states
from app.tickets.demo import seed_workflow
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import CHINA, set_clock
from tests.app.channels.wechat_mp.conftest import APPID, MPEnv

OPENID = "oJourneyVip000000000000001"


@pytest.fixture
def saturday_night(mp: MPEnv) -> Iterator[list[datetime]]:
    """The desk's and WeChat's clocks at 02:22 on Saturday 5 December 2026 (China time); tests move it on."""
    now = [datetime(2026, 12, 5, 2, 22, tzinfo=CHINA)]
    offset = now[0].timestamp() - mp.sim.clock.now()
    mp.sim.advance(offset)
    set_clock(lambda: now[0])
    yield now
    set_clock(None)
    mp.sim.advance(-offset)


async def test_a_vip_first_message_after_hours_is_parked_raised_told_and_assigned_when_the_group_opens(
        mp: MPEnv, saturday_night: list[datetime]) -> None:
    await seed_workflow()
    # the person is known already, through WeCom, as a VIP; their unionid is the one WeChat gives for this openid
    vip = await Customer.create(name="钱女士", vip_level=1)
    await CustomerIdentity.create(customer=vip, kind="unionid", value="oUjourneyVip")
    mp.sim.mp.set_user(APPID, OPENID, unionid="oUjourneyVip")

    await mp.driver.send_text(OPENID, "我要投诉，快递三天没动了")
    await mp.settle()

    ticket = await Ticket.get()
    group = await SkillGroup.get(name="售后组")
    assert ticket.customer_id == vip.id  # type: ignore[attr-defined]
    assert (ticket.group_id, ticket.priority, ticket.tags) == (group.id, "urgent", ["VIP"])  # type: ignore[attr-defined]
    assert ticket.assignee_id is None  # type: ignore[attr-defined]
    assert ticket.after_hours_until == datetime(2026, 12, 5, 9, 0, tzinfo=CHINA)
    policy = await ticket.sla_policy  # type: ignore[misc]
    assert policy is not None and policy.name == "紧急"
    # nobody was woken at 02:22: no card went to staff
    assert await OutboxMessage.filter(channel="wecom_app").count() == 0
    texts = [m.body["text"]["content"] for m in mp.sim.sent_messages(touser=OPENID)]
    assert texts[-1] == (f"您好，现在是非工作时间，您的工单 {ticket.number} 已登记，售后组将于12月5日（周六）09:00"
                         "开始处理，请耐心等待。")
    intake = await TicketEvent.get(ticket_id=ticket.id, kind="created")
    assert intake.data["matched"] == ["投诉优先", "VIP 提升优先级", "非工作时间"]
    assert intake.data["reason"] == "keyword" and intake.data["source"] == "wechat_mp"

    saturday_night[0] = datetime(2026, 12, 5, 9, 1, tzinfo=CHINA)
    assert await assignment.release_after_hours() == 1
    ticket = await Ticket.get(id=ticket.id)
    wangfang = await Staff.get(userid="wangfang")
    assert ticket.assignee_id == wangfang.id and ticket.after_hours_until is None  # type: ignore[attr-defined]
    cards = await OutboxMessage.filter(channel="wecom_app").values_list("recipient", flat=True)
    assert cards == ["wangfang"]


async def test_a_reply_goes_to_the_ticket_waiting_for_the_customer_or_the_one_they_name(mp: MPEnv) -> None:
    await mp.driver.send_text(OPENID, "我要投诉，快递三天没动了")
    await mp.settle()
    first = await Ticket.get()
    second = await Ticket.create(number="GD-20261204-0900", subject="退款还没到账", customer_id=first.customer_id,  # type: ignore[attr-defined]
                                 channel_account_id=first.channel_account_id, last_activity_at=first.last_activity_at)  # type: ignore[attr-defined]
    # the first ticket waits for the customer; the second was active more recently
    await states.transition(ticket_id=first.id, to="pending", expected_version=first.version, actor=SYSTEM)
    await mp.driver.send_text(OPENID, "银行说还没收到")
    await mp.settle()
    first = await Ticket.get(id=first.id)
    assert first.status == "open"  # the pending clock stopped waiting: the customer answered
    event = await TicketEvent.filter(kind="customer_message").order_by("-id").first()
    assert event is not None and event.ticket_id == first.id  # type: ignore[attr-defined]

    await mp.driver.send_text(OPENID, f"关于 {second.number.lower()} 还有一个问题")
    await mp.settle()
    event = await TicketEvent.filter(kind="customer_message").order_by("-id").first()
    assert event is not None and event.ticket_id == second.id  # type: ignore[attr-defined]
