"""Personal data in free texts is stored as tokens (issue 11, finding 8): masked for display, clear for delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from tortoise import Tortoise

from app.channels.testing import RecordingAdapter
from app.errors import NotFound, PermissionDenied
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.queue import InProcessQueue
from app.security import tokens
from app.security.crypto import keyed_hash
from app.security.models import AuditLog, PiiToken
from app.security.pii import mask_text, render_tokens
from app.security.scope import SYSTEM
from app.tickets import service as ticket_service
from app.tickets.models import Ticket
from app.uow import atomic
from tests import factories
from tests.sqlcount import count_statements

TEXT = "电话 13812345678，或 １３６１２３４５６７１，邮箱 zhang.san@example.com，身份证 11010519491231002X"


@pytest.fixture
def installed() -> Iterator[None]:
    tokens.install()  # what setup() does (idempotent: the hook stays installed for the tests after this one)
    yield


async def test_a_text_with_personal_data_is_stored_as_tokens_and_shown_masked(db: None) -> None:
    stored = await tokens.tokenise(TEXT, customer_id=None)
    for clear in ("13812345678", "１３６１２３４５６７１", "zhang.san@example.com", "11010519491231002X"):
        assert clear not in stored
    assert render_tokens(stored) == mask_text(TEXT) == (
        "电话 138****5678，或 136****5671，邮箱 z***@example.com，身份证 110***********002X")
    assert mask_text(stored) == mask_text(TEXT)
    rows = await PiiToken.all().order_by("kind").values("kind", "value_enc", "value_hash")
    assert sorted(r["kind"] for r in rows) == ["email", "id_card", "phone", "phone"]
    assert all("13812345678" not in r["value_enc"] for r in rows)
    # the full-width number is found by its E.164 hash, like the ASCII one
    assert keyed_hash("+8613612345671") in {r["value_hash"] for r in rows}
    assert await tokens.detokenise(stored) == TEXT


async def test_a_text_without_personal_data_costs_no_statement(db: None) -> None:
    with count_statements() as statements:
        assert await tokens.tokenise("订单号 2025112512345678 我要投诉，退款还没到账") == (
            "订单号 2025112512345678 我要投诉，退款还没到账")
        assert await tokens.detokenise("没有令牌") == "没有令牌"
        assert await tokens.detokenise_data({"text": "无"}) == {"text": "无"}
    assert statements == []


async def test_tokenising_twice_changes_nothing_and_a_token_never_looks_like_a_number(db: None) -> None:
    once = await tokens.tokenise("call 13812345678")
    assert await tokens.tokenise(once) == once
    assert await PiiToken.all().count() == 1
    token_id = next(iter(tokens.token_ids_in(once)))
    assert token_id.isalpha() and token_id.islower()


async def test_a_forgotten_token_keeps_its_masked_form(db: None) -> None:
    stored = await tokens.tokenise("邮箱 li@example.com")
    assert await tokens.drop_tokens(tokens.token_ids_in(stored)) == 1
    assert await tokens.detokenise(stored) == "邮箱 l***@example.com"


async def test_fit_never_cuts_a_token(db: None) -> None:
    stored = await tokens.tokenise("a" * 50 + " 13812345678")
    assert tokens.fit(stored, 200) == stored
    assert tokens.fit(stored, 55) == ("a" * 50 + " 138*")


async def test_reveal_needs_the_right_and_writes_an_audit_row(db: None) -> None:
    org = await factories.org()
    stored = await tokens.tokenise("电话 13812345678")
    token_id = next(iter(tokens.token_ids_in(stored)))
    admin = await factories.actor(org["people"]["admin"])
    agent = await factories.actor(org["people"]["agent"])
    if not agent.can_reveal:
        with pytest.raises(PermissionDenied):
            await tokens.reveal_token(actor=agent, token_id=token_id, reason="回电", object_type="ticket",
                                      object_id="1")
        assert await AuditLog.filter(action="reveal").count() == 0
    value = await tokens.reveal_token(actor=admin, token_id=token_id, reason="客户要求回电", object_type="ticket",
                                      object_id="1")
    assert value == "13812345678"
    entry = await AuditLog.get(action="reveal")
    assert (entry.object_type, entry.object_id, entry.field, entry.reason) == ("ticket", "1", "phone", "客户要求回电")
    with pytest.raises(NotFound):
        await tokens.reveal_token(actor=admin, token_id="nosuchtoken", reason="x", object_type="ticket",
                                  object_id="1")


async def test_tickets_are_found_by_a_phone_written_in_their_text(db: None, installed: None) -> None:
    await factories.org()
    customer = await factories.customer()
    mentioned = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject="回电 138 1234 5678")
    await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject="别的问题",
                                description="电话 13999998888")
    assert "13812345678" not in (await Ticket.get(id=mentioned.id)).subject
    cond = await tokens.text_filter(value="+86 138-1234-5678")
    assert cond is not None
    assert [t.id for t in await Ticket.filter(cond)] == [mentioned.id]
    assert await tokens.text_filter(value="13700000000") is None


async def test_the_save_hook_tokenises_staff_replies(db: None, installed: None, recording: RecordingAdapter,
                                                      jobs: InProcessQueue) -> None:
    await factories.org()
    account, customer = await factories.channel_customer()
    ticket = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject="报修",
                                         channel_account_id=account.id)
    message = await ticket_service.reply(actor=SYSTEM, ticket_id=ticket.id, text="师傅电话 13912345678，邮件 a@b.cn")
    await jobs.drain()
    assert "13912345678" not in message.text and "a@b.cn" not in message.text
    assert render_tokens(message.text) == "师傅电话 139****5678，邮件 a***@b.cn"
    # the customer gets the clear text
    assert recording.sent[-1]["payload"]["text"] == "师傅电话 13912345678，邮件 a@b.cn"


async def test_outbox_payloads_are_encrypted_at_rest_and_delivered_in_clear(
        db: None, recording: RecordingAdapter, jobs: InProcessQueue) -> None:
    text = await tokens.tokenise("您的联系电话 13812345678 已登记")
    async with atomic():
        row = await outbox.create(channel="test", kind="customer_message", recipient="u-1",
                                  payload={"type": "text", "text": text})
    await jobs.drain()
    assert recording.sent == [{"id": row.id, "recipient": "u-1",
                               "payload": {"type": "text", "text": "您的联系电话 13812345678 已登记"}}]
    conn = Tortoise.get_connection("default")
    _, raw = await conn.execute_query("SELECT payload FROM outbox_message")
    assert "13812345678" not in raw[0]["payload"] and "已登记" not in raw[0]["payload"]
    assert raw[0]["payload"].startswith('"gAAAA')
    stored = await OutboxMessage.get(id=row.id)
    # the row keeps the tokenised text, never the clear value, once sent
    assert (stored.status, stored.payload["text"]) == ("sent", text)


@pytest.mark.sqlite_only
async def test_rows_written_before_encryption_are_still_read(db: None) -> None:
    conn = Tortoise.get_connection("default")
    await conn.execute_query(
        "INSERT INTO outbox_message (channel, kind, recipient, payload, status, attempts, next_attempt_at, "
        "created_at) VALUES ('test', 'customer_message', 'u', '{\"text\": \"旧\"}', 'sent', 1, ?, ?)",
        [datetime(2026, 1, 1).isoformat(), datetime(2026, 1, 1).isoformat()])
    assert (await OutboxMessage.get()).payload == {"text": "旧"}


async def test_staff_views_show_tokens_masked(db: None) -> None:
    from app.tickets import serializers

    org = await factories.org()
    customer = await factories.customer()
    subject, description = await tokens.tokenise_many(["回电 13812345678", "邮箱 zhang@example.com"])
    ticket = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject=subject,
                                         description=description)
    admin = await factories.actor(org["people"]["admin"])
    shown = serializers.ticket(ticket, actor=admin, detail=True)
    assert (shown["subject"], shown["description"]) == ("回电 138****5678", "邮箱 z***@example.com")


async def test_a_value_in_a_ticket_is_revealed_only_within_scope(db: None) -> None:
    org = await factories.org()
    customer = await factories.customer()
    subject = await tokens.tokenise("回电 13812345678")
    ticket = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject=subject,
                                         group_id=org["groups"]["tech"].id)
    other = await tokens.tokenise("别的 13900001111")
    token_id = next(iter(tokens.token_ids_in(subject)))
    admin = await factories.actor(org["people"]["admin"])
    assert await tokens.reveal_in_ticket(actor=admin, ticket_id=ticket.id, token_id=token_id,
                                         reason="回电") == "13812345678"
    assert await AuditLog.filter(action="reveal", object_id=str(ticket.id)).count() == 1
    with pytest.raises(NotFound):  # a token of another text is not this ticket's to reveal
        await tokens.reveal_in_ticket(actor=admin, ticket_id=ticket.id,
                                      token_id=next(iter(tokens.token_ids_in(other))), reason="回电")
    outsider = await factories.actor(org["people"]["agent"])  # 客服部: the tech group's ticket is out of scope
    with pytest.raises(NotFound):
        await tokens.reveal_in_ticket(actor=outsider, ticket_id=ticket.id, token_id=token_id, reason="回电")
    assert await AuditLog.filter(action="reveal").count() == 1
