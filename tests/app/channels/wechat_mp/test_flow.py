from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.channels.models import InboundEvent
from app.conversations.models import Message
from app.customers.models import Customer, CustomerIdentity
from app.outbox.models import OutboxMessage
from app.security.pii import render_tokens
from app.security.scope import SYSTEM
from app.security.tokens import detokenise
from app.staff.models import SkillGroup
from app.tickets import service, states
from app.tickets.models import Ticket
from app.timeutil import set_clock, utcnow
from tests.app.channels.wechat_mp.conftest import TEMPLATE_ID, MPEnv

OPENID = "oCustomer0000000000000001"


async def test_refund_message_becomes_a_routed_ticket_and_the_customer_hears_back(mp: MPEnv) -> None:
    result = await mp.driver.send_text(OPENID, "订单号 2025112512345678 退款还没到账")
    assert result.response is not None and result.response.text == "success"
    await mp.settle()

    ticket = await Ticket.get()
    group = await SkillGroup.get(name="售后组")
    assert (ticket.order_no, ticket.category, ticket.group_id, ticket.status) == (  # type: ignore[attr-defined]
        "2025112512345678", "退款", group.id, "new")
    assert ticket.subject == "订单号 2025112512345678 退款还没到账"
    sent = mp.sim.sent_messages(touser=OPENID)
    ack = (f"您好，您的问题已受理，工单号：{ticket.number}。\n"
           "我们会尽快处理，处理进展会在这里通知您。回复“查询”可随时查看进度。")
    assert [m.body for m in sent] == [{"touser": OPENID, "msgtype": "text", "text": {"content": ack}}]

    # a staff reply goes out as a customer-service message
    await service.reply(actor=SYSTEM, ticket_id=ticket.id, text="您好，退款已重新发起，请留意到账。")
    await mp.settle()
    sent = mp.sim.sent_messages(touser=OPENID)
    reply = {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，退款已重新发起，请留意到账。"}}
    assert sent[-1].body == reply

    # resolving sends the template message
    ticket = await Ticket.get(id=ticket.id)
    await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version, actor=SYSTEM)
    await mp.settle()
    template = mp.sim.sent_messages(touser=OPENID)[-1]
    assert template.body["template_id"] == TEMPLATE_ID
    assert template.body["data"]["keyword1"] == {"value": ticket.number}
    assert template.body["data"]["keyword2"] == {"value": "已解决"}
    assert template.body["url"].endswith(f"/h5/my/tickets/{ticket.number}")
    row = await OutboxMessage.get(kind="template_message")
    assert row.provider_msg_id == str(template.msgid)

    # the customer's 查询 lists it
    await mp.driver.send_text(OPENID, "查询")
    await mp.settle()
    answer = mp.sim.sent_messages(touser=OPENID)[-1].body["text"]["content"]
    assert ticket.number in answer and "已解决" in answer


async def test_template_delivery_report_updates_the_outbox_row(mp: MPEnv) -> None:
    await mp.driver.send_text(OPENID, "我要投诉")
    await mp.settle()
    ticket = await Ticket.get()
    await states.transition(ticket_id=ticket.id, to="closed", expected_version=ticket.version, actor=SYSTEM)
    await mp.settle()
    row = await OutboxMessage.get(kind="template_message")
    assert row.status == "sent" and row.provider_msg_id
    await mp.driver.template_send_job_finish(OPENID, int(row.provider_msg_id), status="failed:user block")
    await mp.settle()
    assert (await OutboxMessage.get(id=row.id)).delivery_state == "failed:user block"


async def test_second_message_joins_the_open_ticket(mp: MPEnv) -> None:
    await mp.driver.send_text(OPENID, "我要投诉，快递员态度差")
    await mp.driver.send_text(OPENID, "电话 13812345678，请回电")
    await mp.settle()
    assert await Ticket.all().count() == 1
    ticket = await Ticket.get()
    texts = await Message.filter(ticket_id=ticket.id).order_by("id").values_list("text", flat=True)
    # the phone is stored as a token (issue 11): shown masked, back in clear only for delivery or a reveal
    assert [render_tokens(str(t)) for t in texts] == ["我要投诉，快递员态度差", "电话 138****5678，请回电"]
    assert [await detokenise(str(t)) for t in texts] == ["我要投诉，快递员态度差", "电话 13812345678，请回电"]
    assert (ticket.category, ticket.priority) == ("投诉", "high")


async def test_small_talk_stays_a_conversation_until_the_rules_say_so(mp: MPEnv) -> None:
    for text in ["你好", "在吗", "想问一下", "你们几点下班"]:
        await mp.driver.send_text(OPENID, text)
    await mp.settle()
    assert await Ticket.all().count() == 0
    assert await Message.filter(direction="in").count() == 4
    await mp.driver.send_text(OPENID, "还有一个问题")  # the 5th message converts (max_messages: 5)
    await mp.settle()
    ticket = await Ticket.get()
    assert await Message.filter(ticket_id=ticket.id).count() == 5


async def test_the_same_callback_four_times_concurrently_gives_one_message_and_one_ticket(mp: MPEnv) -> None:
    first = await mp.driver.send_text(OPENID, "退款 订单号 2025112500000001")
    replays = await asyncio.gather(*(mp.driver.replay(first) for _ in range(3)))
    assert all(r.response is not None and r.response.text == "success" for r in replays)
    await mp.settle()
    assert await InboundEvent.all().count() == 1
    assert await Message.filter(direction="in").count() == 1
    assert await Ticket.all().count() == 1


async def test_unionid_merges_followers_of_two_accounts(mp: MPEnv) -> None:
    from app.channels.wechat_mp import accounts
    from simulator import WeChatDriver

    mp.sim.set_mp_user(mp.account.appid, OPENID, unionid="union-42")
    other = mp.sim.add_mp_account("wx00000000000other", "secret-other-0123456789", "tok2", "B" * 43,
                                  callback_url="http://desk/callbacks/wechat/shop2", mode="safe")
    await accounts.upsert_account(key="shop2", name="二号店", appid=other.appid, secret=other.secret,
                                  token="tok2", aes_key="B" * 43)
    mp.sim.set_mp_user(other.appid, "oOtherOpenid", unionid="union-42")
    driver2 = WeChatDriver(mp.sim, other, "http://desk/callbacks/wechat/shop2", transport=mp.transport)
    await mp.driver.send_text(OPENID, "你好")
    await driver2.send_text("oOtherOpenid", "你好，我在二号店")
    await mp.settle()
    live = await Customer.filter(merged_into_id=None).all()
    assert len(live) == 1
    kinds = await CustomerIdentity.filter(customer_id=live[0].id).order_by("kind", "scope").values_list(
        "kind", "scope", "value")
    assert kinds == [("mp_openid", "default", OPENID), ("mp_openid", "shop2", "oOtherOpenid"),
                     ("unionid", "", "union-42")]


async def test_image_is_downloaded_into_storage(mp: MPEnv) -> None:
    await mp.driver.send_image(OPENID)
    await mp.settle()
    message = await Message.get(msg_type="image")
    [item] = message.media
    assert item["content_type"] == "image/png" and item["path"].endswith(".png")
    from app.settings import get_settings

    assert (get_settings().media_dir / item["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_subscribe_bookkeeping(mp: MPEnv) -> None:
    await mp.driver.subscribe(OPENID)
    await mp.settle()
    ident = await CustomerIdentity.get(kind="mp_openid", value=OPENID)
    assert ident.data["subscribed"] is True and ident.data["unionid_checked"] is True
    await mp.driver.unsubscribe(OPENID)
    await mp.settle()
    assert (await CustomerIdentity.get(id=ident.id)).data["subscribed"] is False
    assert await Ticket.all().count() == 0


async def test_reply_after_48_hours_falls_back_to_a_template(mp: MPEnv) -> None:
    await mp.driver.send_text(OPENID, "报修：空调坏了")
    await mp.settle()
    ticket = await Ticket.get()
    mp.sim.advance(49 * 3600)
    later = utcnow() + timedelta(hours=49)
    set_clock(lambda: later)
    try:
        await service.reply(actor=SYSTEM, ticket_id=ticket.id, text="师傅明天上午上门")
        await mp.settle()
    finally:
        set_clock(None)
    last = mp.sim.sent_messages(touser=OPENID)[-1]
    assert last.body["template_id"] == TEMPLATE_ID
    row = await OutboxMessage.filter(kind="customer_message").order_by("-id").first()
    assert row is not None and row.status == "sent"
    assert row.payload["_delivery"] == {"sent_as": "template", "fallback": "template", "reason": "mp_window_closed"}


async def test_a_new_followers_first_message_writes_them_with_what_user_info_said(mp: MPEnv) -> None:
    mp.sim.set_mp_user(mp.account.appid, "oFirstContact000000000001", unionid="union-first", subscribe=True)
    await mp.driver.send_text("oFirstContact000000000001", "订单号 2025112512345678 退款还没到账")
    await mp.settle()
    ticket = await Ticket.get()
    identities = await CustomerIdentity.filter(customer_id=ticket.customer_id).order_by(  # type: ignore[attr-defined]
        "kind").values_list("kind", "value", "data")
    assert identities == [("mp_openid", "oFirstContact000000000001", {"unionid_checked": True, "subscribed": True}),
                          ("unionid", "union-first", {})]
    assert await Customer.all().count() == 1
    assert [m.body["touser"] for m in mp.sim.sent_messages()] == ["oFirstContact000000000001"]  # acknowledged


async def test_a_first_message_that_fails_leaves_no_customer_behind_and_succeeds_on_retry(
        mp: MPEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # the customer, their identities, the message and the ticket are one transaction: nothing half-written
    from app.channels import inbound_jobs
    from app.intake import flows

    real = flows.open_ticket

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the ticket insert failed")

    monkeypatch.setattr(flows, "open_ticket", broken)
    mp.sim.set_mp_user(mp.account.appid, "oFailsOnce000000000000001", unionid="union-fails")
    await mp.driver.send_text("oFailsOnce000000000000001", "订单号 2025112512345678 退款还没到账")
    await mp.settle()
    event = await InboundEvent.get()
    assert event.status == "pending" and "RuntimeError" in (event.error or "")
    assert (await Customer.all().count(), await CustomerIdentity.all().count(), await Message.all().count()) == (
        0, 0, 0)
    monkeypatch.setattr(flows, "open_ticket", real)
    assert await inbound_jobs.process_inbound_event({}, event.id) == "done"
    ticket = await Ticket.get()
    assert await CustomerIdentity.filter(customer_id=ticket.customer_id).count() == 2  # type: ignore[attr-defined]
    assert await Message.filter(ticket_id=ticket.id).count() == 1


async def test_a_unionid_taken_meanwhile_sends_the_first_message_the_usual_way(
        mp: MPEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # user/info named nobody we knew, but another channel stored the same unionid before our insert: the message's
    # transaction rolls back whole and the usual path merges the follower with that person
    from app.channels.wechat_mp import jobs as mp_jobs

    holder = await Customer.create(name="企业微信里的客户")
    await CustomerIdentity.create(customer=holder, kind="unionid", scope="", value="union-raced")
    real = mp_jobs.customers.identity_row

    async def not_yet(*, kind: str, value: str, scope: str = "") -> Any:
        return None if kind == "unionid" else await real(kind=kind, value=value, scope=scope)

    monkeypatch.setattr(mp_jobs.customers, "identity_row", not_yet)
    mp.sim.set_mp_user(mp.account.appid, "oRaced00000000000000000001", unionid="union-raced")
    await mp.driver.send_text("oRaced00000000000000000001", "订单号 2025112512345678 退款还没到账")
    monkeypatch.setattr(mp_jobs.customers, "identity_row", real)
    await mp.settle()
    ticket = await Ticket.get()
    assert ticket.customer_id == holder.id  # type: ignore[attr-defined]
    assert await Customer.filter(merged_into_id=None).count() == 1
    assert await Message.all().count() == 1


async def test_a_first_message_while_user_info_is_down_is_ticketed_and_the_unionid_learned_later(
        mp: MPEnv) -> None:
    mp.sim.set_mp_user(mp.account.appid, "oPlatformDown000000000001", unionid="union-later")
    mp.sim.inject_fault("user/info", {"errcode": -1}, times=2)  # the first contact's call and the usual path's
    await mp.driver.send_text("oPlatformDown000000000001", "订单号 2025112512345678 退款还没到账")
    await mp.settle()
    ticket = await Ticket.get()
    kinds = await CustomerIdentity.filter(customer_id=ticket.customer_id).order_by(  # type: ignore[attr-defined]
        "kind").values_list("kind", flat=True)
    assert kinds == ["mp_openid", "unionid"]  # the deferred sync job learned it
    ident = await CustomerIdentity.get(kind="mp_openid", value="oPlatformDown000000000001")
    assert ident.data["unionid_checked"] is True


async def test_a_new_follower_known_by_unionid_is_asked_about_once(mp: MPEnv) -> None:
    # user/info's answer that sent the message the usual way (a unionid we know) is the one the merge uses
    holder = await Customer.create(name="二号店的老客户")
    await CustomerIdentity.create(customer=holder, kind="unionid", scope="", value="union-asked-once")
    mp.sim.set_mp_user(mp.account.appid, "oAskedOnce000000000000001", unionid="union-asked-once")
    before = len(mp.sim.api_calls_for("user/info"))
    await mp.driver.send_text("oAskedOnce000000000000001", "订单号 2025112512345678 退款还没到账")
    await mp.settle()
    assert len(mp.sim.api_calls_for("user/info")) - before == 1
    ticket = await Ticket.get()
    assert ticket.customer_id == holder.id  # type: ignore[attr-defined]
    ident = await CustomerIdentity.get(kind="mp_openid", value="oAskedOnce000000000000001")
    assert ident.data["unionid_checked"] is True


async def test_a_new_followers_first_message_asking_for_progress_is_answered_and_keeps_them(mp: MPEnv) -> None:
    mp.sim.set_mp_user(mp.account.appid, "oAsksFirst000000000000001", unionid="union-asks-first")
    await mp.driver.send_text("oAsksFirst000000000000001", "查询")
    await mp.settle()
    assert await Ticket.all().count() == 0
    kinds = await CustomerIdentity.all().order_by("kind").values_list("kind", flat=True)
    assert kinds == ["mp_openid", "unionid"]
    assert [m.body["touser"] for m in mp.sim.sent_messages()] == ["oAsksFirst000000000000001"]
