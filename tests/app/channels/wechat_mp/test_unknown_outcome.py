"""A reply whose outcome is unknown is not sent twice (issue 11, finding 5: a 12 s delay on message/custom/send gave
two copies). custom/send has no idempotency key: when the desk's timeout fires after the platform received the
message, the row becomes 结果未知 on the ticket and goes out again only when staff tap 重新发送."""

from __future__ import annotations

from datetime import timedelta

from app.channels.wechat_mp import accounts
from app.outbox import service as outbox
from app.outbox.jobs import sweep_outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM, actor_for
from app.security.service import create_token
from app.staff.models import Staff
from app.tickets import service
from app.tickets.models import Ticket, TicketEvent
from app.tickets.serializers import event_label
from app.timeutil import set_clock, utcnow
from tests.app.channels.wechat_mp.conftest import MPEnv

OPENID = "oSlowPlatform000000000001"
REPLY = "您好，维修师傅明天上午上门。"
#: the desk's HTTP timeout in this test, and how late the simulator answers (it delivers first)
TIMEOUT = 0.3
SLOW = 1.5


async def _slow_reply(mp: MPEnv) -> tuple[Ticket, OutboxMessage]:
    await mp.driver.send_text(OPENID, "报修：热水器不出热水")
    await mp.settle()
    ticket = await Ticket.get()
    account = await accounts.by_key("default")
    assert account is not None
    accounts.api(account).client.timeout = TIMEOUT
    mp.sim.inject_fault("mp:message/custom/send", {"slow": SLOW})
    await service.reply(actor=SYSTEM, ticket_id=ticket.id, text=REPLY)
    await mp.settle()
    rows = [r for r in await OutboxMessage.filter(ticket_id=ticket.id) if r.payload.get("text") == REPLY]
    assert len(rows) == 1
    return ticket, rows[0]


def _copies(mp: MPEnv) -> int:
    return sum(1 for m in mp.sim.sent_messages(touser=OPENID) if m.body.get("text", {}).get("content") == REPLY)


async def test_a_timed_out_reply_reaches_the_customer_once_and_is_marked_unknown(mp: MPEnv) -> None:
    ticket, row = await _slow_reply(mp)
    assert _copies(mp) == 1  # the platform took it before the desk gave up waiting
    assert (row.status, row.attempts, row.lease_until) == ("unknown", 1, None)
    assert "PlatformTimedOut" in (row.last_error or "")
    event = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_unknown")
    assert event_label(event.kind) == "结果未知"
    assert event.data == {"outbox_id": row.id, "channel": "wechat_mp"} and "可能已送达" in event.reason

    # nothing sends it again by itself: not the sweep, not an hour later
    later = utcnow() + timedelta(hours=1)
    set_clock(lambda: later)
    try:
        assert await sweep_outbox({}) == 0
        await mp.settle()
    finally:
        set_clock(None)
    assert _copies(mp) == 1 and (await OutboxMessage.get(id=row.id)).status == "unknown"


async def test_staff_resend_delivers_a_second_copy_only_on_request(mp: MPEnv) -> None:
    ticket, row = await _slow_reply(mp)
    admin = await Staff.get(userid="admin")
    headers = {"Authorization": f"Bearer {await create_token(staff=admin, name='test')}"}

    r = await mp.client.post(f"/api/v1/outbox/{row.id}/resend", headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    await mp.settle()
    assert _copies(mp) == 2
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.attempts) == ("sent", 2)
    resent = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_resent")
    assert (resent.actor_id, resent.data, event_label(resent.kind)) == (  # type: ignore[attr-defined]
        admin.id, {"outbox_id": row.id}, "重新发送")

    # a second tap is refused in Chinese and sends nothing
    again = await mp.client.post(f"/api/v1/outbox/{row.id}/resend", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_unknown"
    assert "无需再发" in again.json()["error"]["message"]
    await mp.settle()
    assert _copies(mp) == 2


async def test_resend_outside_the_scope_or_of_a_missing_row_is_404_and_changes_nothing(mp: MPEnv) -> None:
    ticket, row = await _slow_reply(mp)
    outsider = None
    for staff in await Staff.filter(role="agent"):
        actor = await actor_for(staff)
        if not await Ticket.filter(actor.ticket_filter(), id=ticket.id).exists():
            outsider = staff
            break
    assert outsider is not None
    headers = {"Authorization": f"Bearer {await create_token(staff=outsider, name='test')}"}
    for path in (f"/api/v1/outbox/{row.id}/resend", "/api/v1/outbox/999999/resend"):
        r = await mp.client.post(path, headers=headers)
        assert r.status_code == 404, r.text
    bad = await mp.client.post("/api/v1/outbox/abc/resend", headers=headers)
    assert bad.status_code == 400
    await mp.settle()
    assert (await OutboxMessage.get(id=row.id)).status == "unknown" and _copies(mp) == 1
    assert not await TicketEvent.filter(kind="delivery_resent").exists()
    assert await outbox.list_due() == []
