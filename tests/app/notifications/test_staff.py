"""Issue 10, observation 8: a WeCom card to staff never carries personal data in clear, whoever receives it."""

from __future__ import annotations

from typing import Any

from app.notifications import staff as cards
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service
from app.tickets.models import Ticket
from tests import factories


async def _ticket(*, assignee: str = "lead") -> tuple[Ticket, dict[str, Any]]:
    data = await factories.org()
    cust = await factories.customer(phone="13812345678")
    ticket = await service.create(actor=SYSTEM, customer_id=cust.id, group_id=data["groups"]["service"].id,
                                  subject="请回电 13812345678 或 １３６１２３４５６７１")
    await Ticket.filter(id=ticket.id).update(assignee_id=data["people"][assignee].id)
    return await Ticket.get(id=ticket.id), data


async def test_the_assignment_card_masks_the_phone_even_for_a_lead(db: None) -> None:
    ticket, _ = await _ticket(assignee="lead")
    await cards.ticket_assigned(ticket=ticket)
    row = await OutboxMessage.get(kind="staff_card", recipient="lead")
    card = row.payload["template_card"]
    assert card["main_title"] == {"title": "新工单分配给你", "desc": "请回电 138****5678 或 136****5671"}
    assert "13812345678" not in str(row.payload) and "１３６１２３４５６７１" not in str(row.payload)


async def test_message_sla_and_other_cards_mask_texts(db: None) -> None:
    ticket, data = await _ticket(assignee="agent")
    await cards.customer_message(ticket=ticket,
                                 text="我的邮箱 wang@example.com，身份证 11010119900307123X")
    await cards.sla_warning(ticket=ticket, clock="首次响应", due_label="10:30")
    await cards.ticket_card(staff=data["people"]["agent"], ticket=ticket, title="升级 13812345678",
                            description="客户 13812345678 投诉", dedupe_key="x")
    await cards.approval_waiting(ticket=ticket, approver=data["people"]["lead"], approval_id=1,
                                 summary="退款：客户电话 13812345678")
    payloads = [str(r.payload) for r in await OutboxMessage.filter(kind="staff_card").order_by("id")]
    assert len(payloads) == 4
    for payload in payloads:
        for secret in ("13812345678", "wang@example.com", "11010119900307123X"):
            assert secret not in payload
    assert "w***@example.com" in payloads[0] and "110***********123X" in payloads[0]


async def test_a_chatty_customer_buzzes_each_agent_once_a_minute_with_the_newest_line(db: None) -> None:
    from datetime import UTC, datetime, timedelta

    from app.timeutil import set_clock

    ticket, _ = await _ticket(assignee="agent")
    start = datetime(2026, 12, 5, 9, 0, 5, tzinfo=UTC)
    try:
        for seconds, text in ((0, "在吗"), (20, "订单还没到"), (50, "急")):
            set_clock(lambda s=seconds: start + timedelta(seconds=s))  # type: ignore[misc]
            await cards.customer_message(ticket=ticket, text=text)
        set_clock(lambda: start + timedelta(seconds=60))
        await cards.customer_message(ticket=ticket, text="下一分钟")
    finally:
        set_clock(None)
    rows = await OutboxMessage.filter(kind="staff_card", recipient="agent").order_by("id")
    newest = '<div class="normal">{}</div>'
    assert [(r.payload["textcard"]["title"], r.payload["textcard"]["description"].split("</div>", 1)[1])
            for r in rows] == [
        (f"客户连续发来多条消息 · {ticket.number}", newest.format("急")),
        (f"客户新消息 · {ticket.number}", newest.format("下一分钟")),
    ]


async def test_a_customers_messages_in_a_window_read_its_people_once_and_after_the_card_went_out_cost_nothing(
        db: None) -> None:
    from datetime import UTC, datetime, timedelta

    from app.outbox import service as outbox
    from app.timeutil import set_clock
    from tests.sqlcount import count_statements

    ticket, data = await _ticket(assignee="agent")
    start = datetime(2026, 12, 5, 9, 0, 5, tzinfo=UTC)
    try:
        set_clock(lambda: start)
        await cards.customer_message(ticket=ticket, text="在吗")  # the window's people read, the card written
        with count_statements() as statements:
            await cards.customer_message(ticket=ticket, text="订单还没到")
        assert [s.split()[0] for s in statements] == ["UPDATE"]  # folded into the waiting card, nobody re-read
        row = await OutboxMessage.get(kind="staff_card", recipient="agent")
        assert await outbox.claim(outbox_id=row.id) is not None  # the card goes out
        await cards.customer_message(ticket=ticket, text="急")  # covered: learnt once
        with count_statements() as statements:
            await cards.customer_message(ticket=ticket, text="还在吗")
        assert statements == []
        # reassigned: the window's new people are read, and the new assignee gets a card of their own
        await Ticket.filter(id=ticket.id).update(assignee_id=data["people"]["tech"].id)
        ticket = await Ticket.get(id=ticket.id)
        await cards.customer_message(ticket=ticket, text="换人了？")
        set_clock(lambda: start + timedelta(seconds=60))
        await cards.customer_message(ticket=ticket, text="下一分钟")
    finally:
        set_clock(None)
    rows = await OutboxMessage.filter(kind="staff_card").order_by("id").values_list("recipient", "status")
    assert rows == [("agent", "sending"), ("tech", "pending"), ("tech", "pending")]
