"""Mail through the one intake flow and back out by SMTP: tickets, threading, loops and noise, bounces."""

from __future__ import annotations

import re

from app.channels.email.outbound import message_id_local
from app.channels.models import ChannelAccount, InboundEvent
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.outbox.models import OutboxMessage
from app.settings import get_settings
from app.tickets.models import Ticket, TicketEvent
from tests.app.channels.email.conftest import ADDRESS, Desk, fixture

NEW_MAIL = fixture("new_utf8.eml")


def mail(*, sender: str = "liuyang@customer.cn", subject: str = "发票抬头开错了", message_id: str,
         body: str = "你好，发票抬头开错了，请重开。", headers: str = "") -> bytes:
    from email.header import Header

    head = (f"From: {sender}\r\nTo: {ADDRESS}\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
            f"Date: Fri, 4 Dec 2026 09:30:00 +0800\r\nMessage-ID: {message_id}\r\n{headers}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode("ascii") + body.encode("utf-8") + b"\r\n"


async def test_a_new_mail_opens_a_ticket_acknowledged_by_smtp_in_the_thread(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)

    ticket = await Ticket.get()
    assert ticket.subject == "发票抬头开错了"
    identity = await CustomerIdentity.get(kind="email", scope="support")
    assert (identity.value, identity.customer_id) == ("liuyang@customer.cn", ticket.customer_id)  # type: ignore[attr-defined]
    message = await Message.get(direction="in")
    assert message.ticket_id == ticket.id  # type: ignore[attr-defined]
    assert message.text == "你好，发票抬头开错了，请重开。"  # the "-- " signature is not shown
    assert message.provider_msg_id == "<new-mail-0001@customer.cn>"
    assert "刘洋" in message.data["email"]["full_text"]
    [original] = message.media
    assert (original["filename"], original["content_type"], original["original"]) == (
        "original.eml", "message/rfc822", True)
    assert (get_settings().media_dir / original["path"]).read_bytes() == NEW_MAIL

    [sent] = desk.sink.mails
    ack = await OutboxMessage.get(ticket_id=ticket.id)
    assert ack.status == "sent"
    assert ack.provider_msg_id == message_id_local(ack.id)
    assert desk.sink.envelopes == [(ADDRESS, ["liuyang@customer.cn"])]
    assert sent["Subject"] == f"Re: 发票抬头开错了 [{ticket.number}]"
    assert sent["Message-ID"] == f"<{ack.provider_msg_id}@example.com>"
    assert sent["In-Reply-To"] == "<new-mail-0001@customer.cn>"
    assert sent["References"] == "<new-mail-0001@customer.cn>"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["From"] == f"客服中心 <{ADDRESS}>"
    body = sent.get_content()
    assert ticket.number in body and "请直接回复本邮件" in body


async def test_a_reply_with_the_number_in_the_subject_joins_the_ticket(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    await desk.receive(mail(subject=f"Re: 发票 [{ticket.number}]", message_id="<r1@customer.cn>",
                            body="抬头是：某某科技有限公司"))

    assert await Ticket.all().count() == 1
    reply = await Message.get(provider_msg_id="<r1@customer.cn>")
    assert reply.ticket_id == ticket.id  # type: ignore[attr-defined]
    assert reply.text == "抬头是：某某科技有限公司"


async def test_a_reply_found_by_in_reply_to_our_message_id_joins_the_ticket(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    ack = await OutboxMessage.get(ticket_id=ticket.id)
    outlook = fixture("outlook_zh_reply.eml").replace(b"gd1.0123456789abcdef", str(ack.provider_msg_id).encode()) \
        .replace(b"ZhangWei@Customer.cn", b"liuyang@customer.cn").replace(b"GD-20261204-0001", b"GD-00000000-0000")

    await desk.receive(outlook)

    assert await Ticket.all().count() == 1
    reply = await Message.get(provider_msg_id="<TYZPR06MB1234ABCD@TYZPR06MB1234.apcprd06.prod.outlook.com>")
    assert reply.ticket_id == ticket.id  # type: ignore[attr-defined]
    assert reply.text == "好的，打印机型号是 HP M227，今天上午又卡纸了三次。\n\n张伟\n市场部 | 某某科技有限公司"


async def test_a_reply_to_the_customers_own_earlier_mail_joins_its_ticket(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    await desk.receive(mail(subject="补充", message_id="<r2@customer.cn>", body="忘了说：要专票",
                            headers="In-Reply-To: <new-mail-0001@customer.cn>\r\n"))

    assert await Ticket.all().count() == 1


async def test_every_new_mail_is_a_ticket_even_while_another_is_open(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    await desk.receive(mail(subject="另一个问题：快递丢了", message_id="<other@customer.cn>", body="快递三天没动了"))

    subjects = sorted(t.subject for t in await Ticket.all())
    assert subjects == ["发票抬头开错了", "另一个问题：快递丢了"]
    assert len(desk.sink.mails) == 2


async def test_someone_elses_mail_quoting_a_number_does_not_join_that_ticket(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    await desk.receive(mail(sender="stranger@else.cn", subject=f"[{ticket.number}] 我也要", message_id="<s@else.cn>"))

    assert await Ticket.all().count() == 2


async def test_the_same_mail_read_twice_is_stored_once(desk: Desk) -> None:
    assert await desk.receive(NEW_MAIL) is not None
    assert await desk.receive(NEW_MAIL) is None  # another UID, the same Message-ID

    assert await InboundEvent.all().count() == 1
    assert await Message.filter(direction="in").count() == 1


async def test_an_auto_reply_gets_no_acknowledgement(desk: Desk) -> None:
    await desk.receive(fixture("auto_reply.eml"))

    ticket = await Ticket.get()
    ack = await OutboxMessage.get(ticket_id=ticket.id)
    assert (ack.status, ack.delivery_state) == ("failed", "suppressed:auto_submitted")
    assert desk.sink.mails == []


async def test_bulk_mail_and_mail_from_our_own_address_get_no_acknowledgement(desk: Desk) -> None:
    await desk.receive(fixture("bulk_list.eml"))
    await desk.receive(mail(sender=ADDRESS, subject="测试", message_id="<self@example.com>"))

    states = sorted(r.delivery_state or "" for r in await OutboxMessage.all())
    assert states == ["suppressed:own_address", "suppressed:precedence"]
    assert desk.sink.mails == []


async def test_automatic_mail_to_one_sender_is_capped_per_hour(desk: Desk) -> None:
    await ChannelAccount.filter(id=desk.account.id).update(
        config={**desk.account.config, "auto_cap_sender_hour": 2})
    for n in range(3):
        await desk.receive(mail(subject=f"问题 {n}", message_id=f"<cap{n}@customer.cn>"))

    rows = await OutboxMessage.all().order_by("id")
    assert [(r.status, r.delivery_state) for r in rows] == [
        ("sent", None), ("sent", None), ("failed", "suppressed:sender_cap")]
    assert len(desk.sink.mails) == 2


async def test_a_bounce_is_marked_on_the_outbox_row_and_opens_nothing(desk: Desk) -> None:
    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    ack = await OutboxMessage.get(ticket_id=ticket.id)

    event_id = await desk.receive(fixture("bounce.eml").replace(b"gd5.0123456789abcdef",
                                                                str(ack.provider_msg_id).encode()))

    await ack.refresh_from_db()
    assert (ack.status, ack.delivery_state) == ("sent", "bounced:5.1.1")
    assert await Ticket.all().count() == 1
    assert (await InboundEvent.get(id=event_id)).status == "done"
    bounced = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_bounced")
    assert bounced.reason == "邮件被退回，客户没有收到这封邮件（5.1.1）。请核对客户的邮箱地址。"


async def test_a_bounce_about_no_mail_of_ours_is_ignored(desk: Desk) -> None:
    event_id = await desk.receive(fixture("bounce.eml"))

    assert (await InboundEvent.get(id=event_id)).status == "ignored"
    assert await Ticket.all().count() == 0


async def test_gbk_mail_with_an_attachment(desk: Desk) -> None:
    await desk.receive(fixture("foxmail_gbk.eml"))

    ticket = await Ticket.get()
    assert ticket.subject == "订单一直没有发货"
    assert ticket.order_no == "202612040012345678"
    message = await Message.get(direction="in")
    assert message.text == "您好：\n我的订单号 202612040012345678 一直没有发货，请帮忙查一下。李喆"
    pdf, original = message.media
    assert (pdf["kind"], pdf["filename"], pdf["content_type"]) == ("file", "发货单.pdf", "application/octet-stream")
    assert (get_settings().media_dir / pdf["path"]).read_bytes().startswith(b"%PDF-1.4")
    assert original["original"] is True
    [sent] = desk.sink.mails
    assert sent["Subject"] == f"Re: 订单一直没有发货 [{ticket.number}]"


async def test_a_staff_reply_goes_out_in_the_thread_without_auto_headers(desk: Desk) -> None:
    from app.security.scope import SYSTEM
    from app.tickets import service as tickets

    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="已为您重开发票，请查收。")
    await desk.jobs.drain()

    ack, reply = desk.sink.mails
    assert reply["Subject"] == f"Re: 发票抬头开错了 [{ticket.number}]"
    assert reply["In-Reply-To"] == "<new-mail-0001@customer.cn>"
    assert reply["Auto-Submitted"] is None
    assert reply.get_content().startswith("已为您重开发票，请查收。")
    assert re.fullmatch(r"<gd\d+\.[0-9a-f]{16}@example\.com>", reply["Message-ID"])
    assert reply["Message-ID"] != ack["Message-ID"]


async def test_a_refused_recipient_fails_the_row_permanently(desk: Desk) -> None:
    desk.sink.refuse.append("550 5.1.1 mailbox unavailable")
    await desk.receive(NEW_MAIL)

    ack = await OutboxMessage.get()
    assert (ack.status, ack.delivery_state) == ("failed", "smtp_550")


async def test_the_mailbox_password_is_stored_encrypted_and_security_follows_the_port(desk: Desk) -> None:
    from app.channels.email import accounts

    row = await accounts.upsert_account(
        key="sales", name="", address="Sales@Example.com", imap_host="imap.exmail.qq.com", imap_port=993,
        smtp_host="smtp.exmail.qq.com", smtp_port=587, username="", password="auth-code-123")

    assert "auth-code-123" not in (row.secrets_enc or "") and "auth-code-123" not in str(row.config)
    mailbox = accounts.from_row(await ChannelAccount.get(key="sales"))
    assert (mailbox.address, mailbox.username, mailbox.password) == (
        "sales@example.com", "sales@example.com", "auth-code-123")
    assert (mailbox.imap_security, mailbox.smtp_security) == ("ssl", "starttls")
    assert (row.config["every_message"], row.config["bot"]) == (True, False)
    assert await accounts.own_addresses() == {ADDRESS, "sales@example.com"}


async def test_the_sender_becomes_the_customers_email_contact(desk: Desk) -> None:
    from app.customers.models import Customer

    await desk.receive(NEW_MAIL)

    customer = await Customer.get()
    assert customer.email_hash is not None
    assert customer.name == "刘洋"


async def test_a_mail_too_large_to_fetch_still_opens_a_ticket_saying_so(desk: Desk) -> None:
    from app.channels.email.jobs import store_mail

    headers = NEW_MAIL.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    await store_mail(account_id=desk.account.id, uidvalidity=1, uid=99, raw=headers, truncated=True)
    await desk.jobs.drain()

    message = await Message.get(direction="in")
    assert message.text == "发票抬头开错了\n（邮件超过 25 MB，正文和附件未下载，请到邮箱中查看原邮件）"
    assert message.data["email"]["truncated"] is True
    assert (await Ticket.get()).subject == "发票抬头开错了"


async def test_automatic_mail_on_one_ticket_is_capped_per_hour(desk: Desk) -> None:
    from app.outbox import service as outbox
    from app.uow import atomic

    await ChannelAccount.filter(id=desk.account.id).update(
        config={**desk.account.config, "auto_cap_ticket_hour": 1})
    await desk.receive(NEW_MAIL)
    ticket = await Ticket.get()
    async with atomic():
        await outbox.create(channel="email", kind="customer_message", recipient="liuyang@customer.cn",
                            payload={"type": "text", "text": "稍后回复"}, channel_account_id=desk.account.id,
                            ticket_id=ticket.id, dedupe_key=f"autoreply:ticket:{ticket.id}")
    await desk.jobs.drain()

    rows = await OutboxMessage.filter(ticket_id=ticket.id).order_by("id")
    assert [(r.status, r.delivery_state) for r in rows] == [("sent", None), ("failed", "suppressed:ticket_cap")]
    assert len(desk.sink.mails) == 1
