"""A returning visitor proves an e-mail address with a code (sent through the real SMTP sink) and becomes the
customer who holds it, with their earlier conversation; wrong, expired and repeated codes change nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.channels.email import accounts as mail_accounts
from app.channels.webchat import verify, visitors
from app.customers import service as customers
from app.customers.merging import claim_proven_contact
from app.customers.models import ContactVerification, Customer, CustomerIdentity, CustomerMerge
from app.outbox.models import OutboxMessage
from tests.app.channels.email.conftest import ADDRESS, PASSWORD, SinkHandler, smtp_sink
from tests.app.channels.webchat.conftest import Desk, Socket

__all__ = ["smtp_sink"]


@pytest.fixture
async def mailbox(desk: Desk, smtp_sink: tuple[SinkHandler, int]) -> SinkHandler:
    await mail_accounts.upsert_account(
        key="support", name="客服中心", address=ADDRESS, imap_host="127.0.0.1", imap_port=1, imap_security="none",
        smtp_host="127.0.0.1", smtp_port=smtp_sink[1], smtp_security="none", username=ADDRESS, password=PASSWORD)
    smtp_sink[0].mails.clear()
    verify.send_limiter.reset()
    verify.ip_send_limiter.reset()
    return smtp_sink[0]


async def _code(desk: Desk, sink: SinkHandler, ws: Socket, address: str) -> str:
    await ws.send({"type": "verify_start", "contact": address})
    sent = await ws.receive_until("verify_sent")
    assert sent["to"] != address and sent["to"].endswith("@example.cn")  # masked
    await desk.jobs.drain()
    mail = sink.mails[-1]
    assert mail["To"] == address.lower() and mail["Subject"] == "示例商城 验证码"
    body = mail.get_content()
    assert "请直接回复本邮件" not in body
    found = re.search(r"验证码是 (\d{6})", body)
    assert found is not None
    return found.group(1)


async def _chat(desk: Desk, text: str, **hello: Any) -> tuple[Socket, dict[str, Any], int]:
    ws = await desk.socket()
    welcome = await ws.hello(**hello)
    await ws.send({"type": "message", "text": text, "client_id": "c1"})
    ack = await ws.receive_until("ack")
    await desk.jobs.drain()
    return ws, welcome, int(ack["id"])


async def test_a_proven_address_makes_the_returning_visitor_the_same_customer(
        desk: Desk, mailbox: SinkHandler, at_work: None) -> None:
    # the first browser: chats, proves the address
    first, first_welcome, first_msg = await _chat(desk, "上次的订单还没到")
    code = await _code(desk, mailbox, first, "Wang@Example.cn")
    await first.send({"type": "verify_code", "code": code})
    await first.receive_until("verify_ok")
    await first.close()
    old = await CustomerIdentity.get(kind="visitor", value=visitors.verify(first_welcome["visitor"]))
    assert await ContactVerification.filter(customer_id=old.customer_id, kind="email").count() == 1  # type: ignore[attr-defined]

    # a new browser: another customer until it proves the same address
    second, second_welcome, second_msg = await _chat(desk, "我又来问一下")
    new = await CustomerIdentity.get(kind="visitor", value=visitors.verify(second_welcome["visitor"]))
    assert new.customer_id != old.customer_id  # type: ignore[attr-defined]
    code = await _code(desk, mailbox, second, "wang@example.cn")
    await second.send({"type": "verify_code", "code": code})
    await second.receive_until("verify_ok")
    history = [await second.receive_until("message") for _ in range(2)]
    assert [m["id"] for m in history if m["direction"] == "in"][:2] == [first_msg, second_msg]

    survivor = await Customer.get(id=old.customer_id)  # type: ignore[attr-defined]
    merged = await Customer.get(id=new.customer_id)  # type: ignore[attr-defined]
    assert (merged.merged_into_id, survivor.merged_into_id) == (survivor.id, None)  # type: ignore[attr-defined]
    assert customers.email_of(survivor) == "wang@example.cn"
    record = await CustomerMerge.get(merged_id=merged.id)
    assert (record.survivor_id, record.reason, record.staff_id) == (survivor.id, "email", None)  # type: ignore[attr-defined]

    # the new browser stays that customer when it comes back
    await second.close()
    again = await desk.socket()
    await again.hello(visitor=second_welcome["visitor"])
    await again.send({"type": "message", "text": "谢谢", "client_id": "c9"})
    await again.receive_until("ack")
    await desk.jobs.drain()
    assert (await CustomerIdentity.get(kind="visitor", value=new.value)).customer_id == survivor.id  # type: ignore[attr-defined]
    await again.close()


async def test_the_address_someone_writes_mail_from_is_the_same_person(desk: Desk, mailbox: SinkHandler,
                                                                       at_work: None) -> None:
    writer = await customers.resolve_identity(kind="email", scope="support", value="li@example.cn")
    ws, _, _ = await _chat(desk, "邮件里说的那件事")
    await ws.send({"type": "verify_code", "code": "000000"})
    assert (await ws.receive_until("error"))["code"] == "verify_expired"  # no code asked for yet
    code = await _code(desk, mailbox, ws, "li@example.cn")
    await ws.send({"type": "verify_code", "code": code})
    await ws.receive_until("verify_ok")
    identity = await CustomerIdentity.get(kind="visitor", scope="shop")
    assert identity.customer_id == writer.id  # type: ignore[attr-defined]
    await ws.close()


async def test_an_address_merely_typed_by_someone_else_merges_nothing(desk: Desk, mailbox: SinkHandler,
                                                                      at_work: None) -> None:
    typed = await customers.create(name="别人", email="zhao@example.cn")  # unverified: typed, never proven
    ws, _, _ = await _chat(desk, "你好")
    code = await _code(desk, mailbox, ws, "zhao@example.cn")
    await ws.send({"type": "verify_code", "code": code})
    await ws.receive_until("verify_ok")
    assert await CustomerMerge.all().count() == 0
    assert (await Customer.get(id=typed.id)).merged_into_id is None  # type: ignore[attr-defined]
    await ws.close()


async def test_wrong_codes_void_the_challenge_and_phones_and_floods_are_refused(
        desk: Desk, mailbox: SinkHandler, at_work: None) -> None:
    ws, _, _ = await _chat(desk, "你好")
    code = await _code(desk, mailbox, ws, "chen@example.cn")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(verify.MAX_TRIES - 1):
        await ws.send({"type": "verify_code", "code": wrong})
        assert (await ws.receive_until("error"))["code"] == "verify_wrong"
    await ws.send({"type": "verify_code", "code": wrong})
    assert (await ws.receive_until("error"))["code"] == "verify_expired"
    await ws.send({"type": "verify_code", "code": code})  # too late: the challenge is void
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == ("verify_expired", "验证码已失效，请重新获取")
    assert await ContactVerification.all().count() == 0

    await ws.send({"type": "verify_start", "contact": "13800138000"})
    assert (await ws.receive_until("error"))["message"] == "暂不支持短信验证，请填写邮箱"
    await ws.send({"type": "verify_start", "contact": "not-an-address"})
    assert (await ws.receive_until("error"))["code"] == "verify_bad_contact"
    for _ in range(2):  # three codes per visitor per ten minutes (one was sent above)
        await ws.send({"type": "verify_start", "contact": "chen@example.cn"})
        await ws.receive_until("verify_sent")
    before = await OutboxMessage.filter(kind="verify_code").count()
    await ws.send({"type": "verify_start", "contact": "chen@example.cn"})
    assert (await ws.receive_until("error"))["code"] == "verify_rate_limited"
    assert await OutboxMessage.filter(kind="verify_code").count() == before
    await ws.close()


async def test_without_a_mailbox_no_code_can_be_sent(desk: Desk, at_work: None) -> None:
    ws, _, _ = await _chat(desk, "你好")
    await ws.send({"type": "verify_start", "contact": "wu@example.cn"})
    assert (await ws.receive_until("error"))["message"] == "暂时无法发送验证码，请稍后再试"
    await ws.close()


async def test_claiming_a_contact_merges_every_holder_into_the_oldest(db: None, settings: Any) -> None:
    a = await customers.create(name="甲", email="x@example.cn", verified=True)
    b = await customers.create(name="", email="x@example.cn", verified=True)
    c = await customers.create(name="丙")
    survivor = await claim_proven_contact(customer=c, kind="email", value="X@example.cn")
    assert survivor.id == a.id
    assert {x.merged_into_id for x in await Customer.filter(id__in=[b.id, c.id])} == {a.id}  # type: ignore[attr-defined]
