"""The simulator's fault injection: expired tokens, rate limits and 5xx all end delivered, never twice."""

from __future__ import annotations

from datetime import timedelta

from app.outbox import service as outbox
from app.outbox.jobs import deliver_outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service
from app.tickets.models import Ticket
from app.timeutil import set_clock, utcnow
from tests.app.channels.wechat_mp.conftest import APPID, MPEnv

OPENID = "oFaulty00000000000000001"


async def _deliver_everything(mp: MPEnv) -> None:
    """Move time past every backoff and run what is due (the deferred retry jobs would, later), until done."""
    start = utcnow()
    try:
        for step in range(1, 20):
            await mp.settle()
            if not await OutboxMessage.filter(status__in=["pending", "sending"]).exists():
                return
            later = start + timedelta(minutes=10 * step)
            set_clock(lambda later=later: later)
            for outbox_id, *_ in await outbox.list_due():
                await deliver_outbox({}, outbox_id)
    finally:
        set_clock(None)
    raise AssertionError("outbox never drained")


async def test_token_expiry_rate_limit_and_5xx_end_delivered_once(mp: MPEnv) -> None:
    await mp.driver.send_text(OPENID, "报修：热水器不出热水")
    await mp.settle()
    ticket = await Ticket.get()
    fetches_before = mp.sim.token_fetch_count(APPID)

    mp.sim.inject_fault("message/custom/send", {"errcode": 42001}, times=1)
    mp.sim.inject_fault("message/custom/send", {"errcode": 45009}, times=1)
    mp.sim.inject_fault("message/custom/send", {"http_status": 502}, times=1)
    mp.sim.inject_fault("message/custom/send", {"errcode": -1}, times=1)
    replies = ["第一条回复", "第二条回复", "第三条回复"]
    for text in replies:
        await service.reply(actor=SYSTEM, ticket_id=ticket.id, text=text)
    await _deliver_everything(mp)

    received = [m.body["text"]["content"] for m in mp.sim.sent_messages(touser=OPENID) if m.msgtype == "text"]
    assert received[0].startswith("您好，您的问题已受理")
    assert sorted(received[1:]) == sorted(replies)  # each exactly once
    rows = await OutboxMessage.filter(kind="customer_message").order_by("id").values_list("status", flat=True)
    assert rows == ["sent"] * 4
    attempts = sum(await OutboxMessage.all().values_list("attempts", flat=True))
    assert attempts == 4 + 3  # 45009, 502 and -1 each cost one extra attempt; 42001 is healed inside one
    assert mp.sim.token_fetch_count(APPID) == fetches_before + 1  # the expired token was fetched again once
