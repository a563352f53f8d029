"""kf pull against the simulator: paging, cursors, duplicates, crashes, the send window and the session state."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.channels.models import ChannelAccount
from app.channels.wecom_kf import sync
from app.channels.wecom_kf.models import KfCursor, KfSession
from app.conversations.models import Message
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import set_clock, utcnow

from .conftest import OPEN_KFID, KfEnv


async def _texts() -> list[str]:
    return [m.text for m in await Message.filter(direction="in").order_by("id")]


async def test_fifty_messages_on_three_pages_with_one_callback_arrive_once_in_order(kfenv: KfEnv) -> None:
    for i in range(50):
        kfenv.customer_says(f"第{i}条")
    await kfenv.callback()
    await kfenv.settle()
    assert await _texts() == [f"第{i}条" for i in range(50)]
    assert (await KfCursor.get(open_kfid=OPEN_KFID)).pages == 3
    assert len(kfenv.env.sim.api_calls_for("kf/sync_msg")) == 3


async def test_the_same_callback_three_times_changes_nothing(kfenv: KfEnv) -> None:
    for i in range(50):
        kfenv.customer_says(f"第{i}条")
    for _ in range(3):
        await kfenv.callback()
    await kfenv.settle()
    assert await _texts() == [f"第{i}条" for i in range(50)]


async def test_a_worker_killed_between_pages_loses_and_repeats_nothing(kfenv: KfEnv,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(50):
        kfenv.customer_says(f"第{i}条")
    real = sync.handle_item
    calls = {"n": 0}

    async def dies_on_the_25th(**kw: object) -> int:
        calls["n"] += 1
        if calls["n"] == 25:
            raise RuntimeError("worker killed")
        return await real(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sync, "handle_item", dies_on_the_25th)
    with pytest.raises(RuntimeError):
        await sync.pull(open_kfid=OPEN_KFID, token=None)
    # a killed worker never releases its lease: the next pull waits for it to run out
    row = await KfCursor.get(open_kfid=OPEN_KFID)
    await KfCursor.filter(id=row.id).update(lease_until=utcnow() + sync.LEASE)
    with pytest.raises(sync.PullBusy):
        await sync.pull(open_kfid=OPEN_KFID, token=None)
    assert len(await _texts()) == 24 and (await KfCursor.get(id=row.id)).pages == 1
    later = utcnow() + sync.LEASE + timedelta(seconds=1)
    set_clock(lambda: later)
    try:
        assert await sync.pull(open_kfid=OPEN_KFID, token=None) == {"pages": 2, "handled": 26}
    finally:
        set_clock(None)
    assert await _texts() == [f"第{i}条" for i in range(50)]


async def test_an_expired_callback_token_falls_back_to_a_tokenless_pull(kfenv: KfEnv) -> None:
    kfenv.customer_says("你好")
    token = kfenv.kf.issue_token(kfenv.env.sim.clock.now(), OPEN_KFID)
    kfenv.env.sim.advance(601)
    assert await sync.pull(open_kfid=OPEN_KFID, token=token) == {"pages": 1, "handled": 1}
    bodies = [c.body for c in kfenv.env.sim.api_calls_for("kf/sync_msg")]
    assert b'"token"' in bodies[0] and b'"token"' not in bodies[1]


async def test_media_location_and_menu_replies_become_inbound_messages(kfenv: KfEnv) -> None:
    now = kfenv.env.sim.clock.now()
    kfenv.kf.customer_message(now, OPEN_KFID, "wmA", "image", {"media_id": "MEDIA1"})
    kfenv.kf.customer_message(now, OPEN_KFID, "wmA", "location",
                              {"latitude": 22.5, "longitude": 113.9, "name": "科技园", "address": "深圳市南山区"})
    kfenv.customer_says("发票怎么开", user="wmA", menu_id="kb:3")
    await sync.pull(open_kfid=OPEN_KFID, token=None)
    rows = await Message.filter(direction="in").order_by("id")
    assert [(m.msg_type, m.text) for m in rows] == [("image", ""), ("location", "[位置] 科技园 深圳市南山区"),
                                                   ("text", "发票怎么开")]
    assert rows[0].media == [{"kind": "image", "provider_media_id": "MEDIA1", "url": ""}]
    assert rows[2].data["menu_id"] == "kb:3"


async def test_enter_session_is_welcomed_with_its_code(kfenv: KfEnv) -> None:
    kfenv.kf.event(kfenv.env.sim.clock.now(), OPEN_KFID, "wmNew", {"event_type": "enter_session", "scene": "123"})
    await kfenv.callback()
    await kfenv.settle()
    assert [(m["touser"], m["text"]["content"], m.get("on_event")) for m in kfenv.kf.sent] == [
        ("wmNew", "您好，我是智能客服。请直接描述您的问题；需要人工服务请回复“人工”。", True)]
    row = await OutboxMessage.get(kind="kf_welcome")
    assert (row.status, row.provider_msg_id) == ("sent", f"gd{row.id}")


async def test_a_reply_after_48_hours_is_refused_with_a_reason_and_no_retry(kfenv: KfEnv) -> None:
    kfenv.customer_says("我要投诉，东西坏了")
    await kfenv.callback()
    await kfenv.settle()
    ticket = await Ticket.get()
    sent_before = len(kfenv.kf.sent)
    kfenv.env.sim.advance(49 * 3600)
    later = utcnow() + timedelta(hours=49)
    set_clock(lambda: later)
    try:
        await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，请问还需要帮助吗？")
        await kfenv.settle()
    finally:
        set_clock(None)
    row = await OutboxMessage.filter(ticket_id=ticket.id, kind="customer_message").order_by("-id").first()
    assert row is not None
    assert (row.status, row.attempts, row.delivery_state) == ("failed", 1, "kf_window_closed")
    assert row.last_error == "客户超过 48 小时没有发消息，微信客服已不能再发送；请等客户再次来信，或致电联系。"
    event = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_failed")
    assert event.reason == row.last_error
    assert len(kfenv.kf.sent) == sent_before  # known to the desk: WeCom was not even asked


async def test_the_platform_refusal_is_final_too(kfenv: KfEnv) -> None:
    kfenv.customer_says("我要投诉")
    await kfenv.callback()
    await kfenv.settle()
    ticket = await Ticket.get()
    kfenv.env.sim.advance(49 * 3600)  # only WeCom's clock moved: the desk believes the window is open
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="还在吗？")
    await kfenv.settle()
    row = await OutboxMessage.filter(ticket_id=ticket.id, kind="customer_message").order_by("-id").first()
    assert row is not None and (row.status, row.attempts, row.delivery_state) == ("failed", 1, "kf_window_closed")
    sends = [c for c in kfenv.env.sim.api_calls_for("kf/send_msg") if c.errcode == 95002]
    assert len(sends) == 1


async def test_after_the_bot_hands_off_the_desk_keeps_the_session_and_can_answer(kfenv: KfEnv) -> None:
    # the desk is the receptionist: the session stays where kf/send_msg may send (0/1), so the agent's reply, the
    # resolved notice and the rating question all reach the customer
    await ChannelAccount.filter(id=kfenv.account.id).update(config={"open_kfid": OPEN_KFID, "bot": True})
    kfenv.customer_says("ＸＹＺ")
    kfenv.customer_says("转人工")
    await kfenv.callback()
    await kfenv.settle()
    ticket = await Ticket.get()
    assert kfenv.kf.session(OPEN_KFID, "wmCustomer01").state in (0, 1)
    handoff = "正在为您转接人工客服，请稍候。之前的对话客服都能看到，不需要重复描述。"
    assert handoff in [m["text"]["content"] for m in kfenv.kf.sent if m.get("msgtype") == "text"]
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，我是客服小王，请问订单号是多少？")
    fresh = await Ticket.get(id=ticket.id)
    await tickets.update(actor=SYSTEM, ticket_id=ticket.id, expected_version=fresh.version,
                         changes={"status": "resolved"})
    await kfenv.settle()
    texts = [m["text"]["content"] for m in kfenv.kf.sent if m.get("msgtype") == "text"]
    assert "您好，我是客服小王，请问订单号是多少？" in texts
    failed = await OutboxMessage.filter(ticket_id=ticket.id, status="failed").values_list("last_error", flat=True)
    assert failed == []
    assert kfenv.kf.session(OPEN_KFID, "wmCustomer01").state in (0, 1)


async def test_an_account_that_transfers_hands_the_session_to_wecom_kf(kfenv: KfEnv) -> None:
    await ChannelAccount.filter(id=kfenv.account.id).update(
        config={"open_kfid": OPEN_KFID, "bot": True, "transfer_to_servicer": True})
    kfenv.customer_says("ＸＹＺ")
    kfenv.customer_says("转人工")
    await kfenv.callback()
    # the move to the queue waits until the bot's words before it went out (kf/send_msg is refused after it)
    for _ in range(100):
        await kfenv.settle()
        if kfenv.kf.session(OPEN_KFID, "wmCustomer01").state == 2:
            break
        await asyncio.sleep(0.1)
    ticket = await Ticket.get()
    transcript = [(m.direction, m.author_kind) for m in await Message.filter(ticket_id=ticket.id).order_by("id")]
    assert transcript == [("in", "customer"), ("out", "bot"), ("in", "customer"), ("out", "bot")]
    session = kfenv.kf.session(OPEN_KFID, "wmCustomer01")
    assert (session.state, session.servicer_userid) == (2, "")
    assert (await KfSession.get(external_userid="wmCustomer01")).service_state == 2
    said = [m["text"]["content"] for m in kfenv.kf.sent if m.get("msgtype") == "text"]
    assert said.count("正在为您转接人工客服，请稍候。之前的对话客服都能看到，不需要重复描述。") == 1
    # closing the ticket ends the session
    fresh = await Ticket.get(id=ticket.id)
    await tickets.update(actor=SYSTEM, ticket_id=ticket.id, expected_version=fresh.version,
                         changes={"status": "closed"})
    # the end waits for the messages written before it (the closed notice), then goes out on the outbox's retry
    for _ in range(100):
        await kfenv.settle()
        if kfenv.kf.session(OPEN_KFID, "wmCustomer01").state == 4:
            break
        await asyncio.sleep(0.1)
    assert kfenv.kf.session(OPEN_KFID, "wmCustomer01").state == 4
