"""app.notifications.service: where a message to a ticket's customer goes."""

from __future__ import annotations

from app.channels.models import ChannelAccount
from app.customers.models import CustomerIdentity
from app.notifications import service as notify
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests import factories
from tests.sqlcount import count_statements


async def test_messages_to_one_tickets_customer_look_up_where_to_send_once(db: None) -> None:
    await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="target", name="公众号")
    customer = await factories.customer()
    await CustomerIdentity.create(customer=customer, kind="mp_openid", scope="target", value="oTarget")
    created = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款",
                                   channel_account_id=account.id)
    ticket = await Ticket.get(id=created.id)
    with count_statements() as statements:
        first = await notify.customer_target(ticket)
        second = await notify.customer_target(ticket)  # a new ticket's acknowledgement, then its 下班 notice
    assert first == second == ("wechat_mp", account.id, "oTarget")
    assert len(statements) == 2, statements  # the account, the customer's handle: once
    # the same object moved to another customer (a merge) looks again
    other = await factories.customer(name="另一位")
    await CustomerIdentity.create(customer=other, kind="mp_openid", scope="target", value="oOther")
    ticket.customer_id = other.id  # type: ignore[attr-defined]
    assert await notify.customer_target(ticket) == ("wechat_mp", account.id, "oOther")
    # a ticket read afresh looks again too
    assert await notify.customer_target(await Ticket.get(id=created.id)) == ("wechat_mp", account.id, "oTarget")
