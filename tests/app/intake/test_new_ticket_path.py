"""What the new-ticket path writes when it skips work (issue 15): the SLA policy intake picks is the one the SLA
listener would pick, a new conversation counts its first message without a second write, and a ticket created in
the caller's transaction rolls back with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app import intake
from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.models import Conversation, Message
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets import sla
from app.tickets.models import SlaPolicy, Ticket
from app.uow import atomic
from tests import factories
from tests.sqlcount import count_statements


def _text(account: ChannelAccount, sender: str, text: str, msg_id: str) -> InboundMessage:
    return InboundMessage(channel="wechat_mp", channel_account_id=account.id, sender_kind="mp_openid",
                          sender_id=sender, msg_type="text", provider_msg_id=msg_id, created_at=datetime.now(UTC),
                          text=text)


async def test_the_policy_intake_picks_is_the_one_the_sla_listener_would_pick(db: None) -> None:
    data = await factories.org()
    sla.invalidate()
    standard = await SlaPolicy.create(name="标准", first_response_minutes=240, resolution_minutes=2880, position=3)
    vip = await SlaPolicy.create(name="VIP", vip_min=1, first_response_minutes=30, resolution_minutes=480, position=2)
    mp = await SlaPolicy.create(name="公众号", channel="wechat_mp", first_response_minutes=60, position=1)
    service = await SlaPolicy.create(name="客服组加急", priority="urgent", group_id=data["groups"]["service"].id,
                                     first_response_minutes=10, position=0)
    account = await ChannelAccount.create(kind="wechat_mp", key="policies", name="公众号")
    plain = await factories.customer(name="普通客户")
    rich = await factories.customer(name="VIP 客户")
    rich.vip_level = 2
    await rich.save()
    opened = [
        await intake.staff_ticket(actor=SYSTEM, customer=plain, subject="咨询", assign_to_self=False),
        await intake.staff_ticket(actor=SYSTEM, customer=rich, subject="咨询", assign_to_self=False),
        await intake.staff_ticket(actor=SYSTEM, customer=plain, subject="系统宕机", priority="urgent",
                                  group_id=data["groups"]["service"].id, assign_to_self=False),
    ]
    with count_statements() as statements:
        opened.append(await intake.customer_ticket(customer=plain, account=account, subject="退款",
                                                   description="退款没到"))
    # the listener no longer reads the customer's VIP level nor the ticket's channel back
    assert not any('FROM "customer"' in s or "FROM `customer`" in s for s in statements), statements
    assert not any("channel_account__kind" in s for s in statements), statements
    chosen = [t.sla_policy_id for t in opened]  # type: ignore[attr-defined]
    assert chosen == [standard.id, vip.id, service.id, mp.id]
    for ticket in opened:
        stored = await Ticket.get(id=ticket.id)
        # the listener's own choice on the stored ticket (what it looked up before intake passed the policy)
        assert (await sla.select_policy(ticket=stored)).id == stored.sla_policy_id  # type: ignore[union-attr,attr-defined]
        assert stored.sla_state and stored.first_response_due is not None


async def test_no_policy_leaves_the_ticket_without_clocks(db: None) -> None:
    await factories.org()
    sla.invalidate()
    customer = await factories.customer()
    ticket = await intake.staff_ticket(actor=SYSTEM, customer=customer, subject="咨询", assign_to_self=False)
    stored = await Ticket.get(id=ticket.id)
    assert stored.sla_policy_id is None and not stored.sla_state  # type: ignore[attr-defined]


async def test_a_first_message_is_counted_when_its_conversation_is_created(db: None) -> None:
    await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="counting", name="公众号")
    with count_statements() as first:
        await intake.receive(inbound=_text(account, "oCounting", "在吗", "m-1"), account=account)
    conv = await Conversation.get()
    assert conv.message_count == 1 and conv.last_inbound_at is not None and conv.last_message_at is not None
    assert not any(s.startswith("UPDATE") and "conversation" in s for s in first), first
    await intake.receive(inbound=_text(account, "oCounting", "有人吗", "m-2"), account=account)
    again = await Conversation.get()
    assert again.message_count == 2 and again.last_inbound_at >= conv.last_inbound_at  # type: ignore[operator]
    assert await Message.filter(conversation_id=conv.id).count() == 2


async def test_a_first_contact_asks_for_live_tickets_by_id_and_still_joins_one_opened_meanwhile(db: None) -> None:
    # a first contact's customer was created for the message, yet another channel that learned the same unionid a
    # moment earlier may have opened a ticket for them: it is joined, not doubled
    await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="first", name="公众号")
    fresh = await factories.customer(name="新客户")
    with count_statements() as none_yet:
        outcome = await intake.receive(inbound=_text(account, "oFirst", "在吗", "f-1"), account=account,
                                       customer=fresh, first_contact=True)
    assert outcome.ticket is None and await Ticket.filter(customer_id=fresh.id).count() == 0
    reads = [s for s in none_yet if re.search(r"FROM [`\"]ticket[`\"]", s)]
    assert len(reads) == 1 and re.match(r"SELECT [`\"]id[`\"] FROM", reads[0]), none_yet
    raced = await factories.customer(name="刚从企业微信来")
    opened = await tickets.create(actor=SYSTEM, customer_id=raced.id, subject="企业微信里先开的工单")
    joined = await intake.receive(inbound=_text(account, "oRaced", "订单号 2025112512345678 退款还没到账", "f-2"),
                                  account=account, customer=raced, first_contact=True)
    assert joined.ticket is not None and joined.ticket.id == opened.id and not joined.created_ticket
    assert await Ticket.filter(customer_id=raced.id).count() == 1


async def test_a_duplicate_first_message_leaves_no_conversation_behind(db: None) -> None:
    await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="dupes", name="公众号")
    other = await factories.customer(name="另一位")
    # the provider id is taken (by another customer's row here), so the store fails and the whole
    # transaction, with the conversation it created counting the message, rolls back
    await Message.create(customer=other, channel_account=account, direction="in", author_kind="customer",
                         provider_msg_id="m-dup", msg_type="text", text="先到的")
    outcome = await intake.receive(inbound=_text(account, "oDuplicate", "我要投诉", "m-dup"), account=account)
    assert outcome.duplicate
    assert await Conversation.all().count() == 0


async def test_a_ticket_created_inside_a_transaction_rolls_back_with_it(db: None) -> None:
    await factories.org()
    customer = await factories.customer()
    with pytest.raises(RuntimeError):
        async with atomic():
            await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="跟着回滚")
            raise RuntimeError("the caller fails after the create")
    assert await Ticket.all().count() == 0
    alone = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="自己的事务")
    assert (await Ticket.get(id=alone.id)).subject == "自己的事务"


async def test_a_routed_ticket_is_inserted_with_its_clocks_running(db: None) -> None:
    await factories.org()
    sla.invalidate()
    policy = await SlaPolicy.create(name="标准", first_response_minutes=240, resolution_minutes=2880, warn_ratio=0.8,
                                    position=0)
    account = await ChannelAccount.create(kind="wechat_mp", key="clocks", name="公众号")
    customer = await factories.customer()
    with count_statements() as statements:
        ticket = await intake.customer_ticket(customer=customer, account=account, subject="退款",
                                              description="退款没到")
    # the clocks go into the ticket's INSERT: no UPDATE of the row it just wrote, no savepoint around one
    assert not any(s.startswith("UPDATE") and "sla_state" in s for s in statements), statements
    assert not any(s.startswith("SAVEPOINT") for s in statements), statements
    stored = await Ticket.get(id=ticket.id)
    assert stored.sla_policy_id == policy.id  # type: ignore[attr-defined]
    assert set(stored.sla_state) == {sla.FIRST, sla.RESOLUTION}
    first, resolution = stored.sla_state[sla.FIRST], stored.sla_state[sla.RESOLUTION]
    assert (first["target"], resolution["target"], first["done"]) == (240 * 60, 2880 * 60, [])
    assert stored.first_response_due == datetime.fromisoformat(first["due"])
    assert stored.resolution_due == datetime.fromisoformat(resolution["due"])
    assert stored.next_response_due is None
    assert stored.sla_next_check_at == datetime.fromisoformat(first["warn_at"])
    # the object the caller holds is the row
    assert (ticket.sla_state, ticket.first_response_due, ticket.sla_next_check_at) == (
        stored.sla_state, stored.first_response_due, stored.sla_next_check_at)
