"""Many messages of one customer at once (issue 11, finding 10: 35 deadlocks, error 1213, on MariaDB).

Each message's transaction read the conversation, inserted the message (a foreign-key check takes a shared lock on
the conversation and ticket rows), then updated those rows (an exclusive lock): two such transactions each held the
shared lock the other needed to upgrade. Intake now takes the customer's lock first, so one customer's messages pass
one at a time and every later lock is taken in the same order.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app import intake
from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.models import Conversation, Message
from app.tickets.models import Ticket
from tests import factories

pytestmark = pytest.mark.mysql

OPENID = "oConcurrentCustomer000000001"


def _deadlock(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "1213" in text or "Deadlock" in text


async def test_twenty_messages_of_one_customer_at_once_store_without_deadlock(mysql_db: None) -> None:
    await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="concurrent", name="公众号")
    inbound = [InboundMessage(channel="wechat_mp", channel_account_id=account.id, sender_kind="mp_openid",
                              sender_id=OPENID, msg_type="text", provider_msg_id=f"msg-{i}",
                              created_at=datetime.now(UTC), text=f"我要投诉，第 {i} 条")
               for i in range(20)]
    results = await asyncio.gather(*(intake.receive(inbound=m, account=account) for m in inbound),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    deadlocks = [e for e in errors if _deadlock(e)]
    print(f"\ndeadlocks: {len(deadlocks)}, other errors: {len(errors) - len(deadlocks)}", *errors[:1])
    assert deadlocks == [] and errors == []
    assert await Message.filter(direction="in").count() == 20
    assert await Conversation.all().count() == 1
    conversation_ids = {m.conversation_id for m in await Message.filter(direction="in")}  # type: ignore[attr-defined]
    assert conversation_ids == {(await Conversation.get()).id}
    # one at a time, so the first message opens the ticket and the other nineteen join it
    assert await Ticket.all().count() == 1
    assert await Message.filter(direction="in", ticket_id=None).count() == 0
