"""The bot's hand-off: the ticket's description is the extractive summary of the customer's messages, while
extraction still reads every message."""

from __future__ import annotations

from typing import Any

import pytest

from app.channels.models import ChannelAccount
from app.kb import bot
from app.tickets.models import Ticket
from tests.app.kb.test_bot import say


@pytest.fixture
async def account(db: None, recording: Any) -> ChannelAccount:
    return await ChannelAccount.create(kind="test", key="test", name="测试", config={"bot": True})


async def test_handoff_description_is_the_summary_and_fields_come_from_every_message(account: ChannelAccount) -> None:
    await say(account, "我买的扫地机器人充不进电了，订单 2026112512345678。在吗？")
    out = await say(account, "转人工")
    assert out.created_ticket and out.ticket is not None
    ticket = await Ticket.get(id=out.ticket.id)
    assert ticket.description == "我买的扫地机器人充不进电了，订单 2026112512345678"
    assert ticket.order_no == "2026112512345678"
    assert bot.HANDOFF_TEXT not in ticket.description
