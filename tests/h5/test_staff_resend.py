"""The staff ticket page shows a reply whose outcome is unknown as 结果未知 with a one-tap 重新发送 (issue 11,
finding 5)."""

from __future__ import annotations

from app.conversations.models import Message
from app.customers import service as customers
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from tests.h5.conftest import H5, csrf_of


async def _unknown_reply() -> tuple[Ticket, OutboxMessage]:
    customer = await customers.create(name="王先生")
    group = await SkillGroup.get(name="一线客服组")
    lina = await Staff.get(userid="lina")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="热水器不出热水", group_id=group.id,
                                  assignee_id=lina.id)
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="师傅明天上门")
    message = await Message.get(ticket_id=ticket.id, direction="out")
    row = await OutboxMessage.get(id=message.outbox_id)  # type: ignore[attr-defined]
    claimed = await outbox.claim(outbox_id=row.id)
    assert claimed is not None
    assert await outbox.mark_unknown(row=claimed, error="PlatformTimedOut: the platform did not answer")
    return ticket, await OutboxMessage.get(id=row.id)


async def test_unknown_reply_shows_its_state_and_resends_with_one_tap(h5: H5) -> None:
    ticket, row = await _unknown_reply()
    await h5.login_staff("lina")
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert page.status_code == 200
    assert "结果未知：平台超时未答复，客户可能已收到" in page.text
    assert "结果未知（平台超时未答复，消息可能已送达也可能没有送达。" in page.text  # the timeline event
    action = f'action="/h5/tickets/{ticket.number}/resend/{row.id}"'
    assert action in page.text and "重新发送</button>" in page.text

    path = f"/h5/tickets/{ticket.number}/resend/{row.id}"
    r = await h5.client.post(path, data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=resent"
    assert (await OutboxMessage.get(id=row.id)).status == "pending"
    lina = await Staff.get(userid="lina")
    event = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_resent")
    assert event.actor_id == lina.id  # type: ignore[attr-defined]
    after = await h5.client.get(f"/h5/tickets/{ticket.number}?notice=resent")
    assert "已重新发送。" in after.text and action not in after.text

    # a stale page's second tap changes nothing
    again = await h5.client.post(path, data={"csrf_token": csrf_of(page.text)})
    assert again.headers["location"] == f"/h5/tickets/{ticket.number}?notice=resend_done"
    assert await TicketEvent.filter(ticket_id=ticket.id, kind="delivery_resent").count() == 1


async def test_resend_without_csrf_or_for_another_ticket_changes_nothing(h5: H5) -> None:
    ticket, row = await _unknown_reply()
    other, _ = await _unknown_reply()
    await h5.login_staff("lina")
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert (await h5.client.post(f"/h5/tickets/{ticket.number}/resend/{row.id}", data={})).status_code == 403
    wrong = await h5.client.post(f"/h5/tickets/{other.number}/resend/{row.id}",
                                 data={"csrf_token": csrf_of(page.text)})
    assert wrong.status_code == 404
    assert (await OutboxMessage.get(id=row.id)).status == "unknown"
