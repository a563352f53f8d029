"""The bot inside conversations.ingest, on a test channel with the bot switched on (exact outbox rows, tickets)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from app import intake
from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations import service as conversations
from app.conversations.models import Message
from app.customers import service as customers
from app.kb import bot
from app.kb.models import BotQuery, BotSession, Survey
from app.outbox.models import OutboxMessage
from app.security.crypto import decrypt_field
from app.security.scope import SYSTEM
from app.tickets import states
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow

_ids = itertools.count(1)


@pytest.fixture
async def account(db: None, recording: Any, articles: list[Any]) -> ChannelAccount:
    return await ChannelAccount.create(kind="test", key="test", name="测试", config={"bot": True})


async def say(account: ChannelAccount, text: str, *, user: str = "u-1", **data: Any) -> conversations.Outcome:
    msg = InboundMessage(channel="test", channel_account_id=account.id, sender_kind="test_id", sender_id=user,
                         msg_type="text", provider_msg_id=f"m{next(_ids)}", created_at=utcnow(), text=text,
                         data=data)
    return await intake.receive(inbound=msg, account=account)


async def sent() -> list[dict[str, Any]]:
    rows = await OutboxMessage.filter(channel="test").order_by("id")
    return [r.payload for r in rows]


async def test_a_confident_match_is_answered_at_once(account: ChannelAccount, articles: list[Any]) -> None:
    out = await say(account, "密码忘了怎么办")
    assert out.ticket is None
    assert await sent() == [{"type": "text", "article_id": articles[1].id, "author": "bot",
                             "text": f"{articles[1].body}\n\n{bot.ANSWER_TAIL}"}]
    assert await BotQuery.filter(outcome="answered").count() == 1


async def test_an_unsure_match_offers_a_menu_and_the_choice_is_answered(account: ChannelAccount,
                                                                        articles: list[Any]) -> None:
    await say(account, "钱和发票")
    menu = (await sent())[0]
    assert menu["type"] == "menu" and menu["head"] == bot.MENU_HEAD
    ids = [c["id"] for c in menu["choices"]]
    assert ids == [f"kb:{articles[2].id}", f"kb:{articles[0].id}", f"kb:{articles[3].id}", "handoff"]
    assert menu["text"].splitlines() == [bot.MENU_HEAD, "1. 发票怎么开", "2. 如何申请退款", "3. 快递多久能到",
                                         "4. 以上都不是，转人工", f"请回复序号。{bot.MENU_TAIL}"]
    # kf sends the click id; the Official Account's numbered text works the same
    await say(account, "发票怎么开", menu_id=f"kb:{articles[2].id}")
    assert (await sent())[1]["article_id"] == articles[2].id
    assert await BotQuery.filter(outcome="chosen").count() == 1


async def test_two_misses_hand_off_with_the_transcript(account: ChannelAccount) -> None:
    await say(account, "ＸＹＺ")
    assert (await sent())[-1]["text"] == bot.NO_MATCH_TEXT
    out = await say(account, "ＡＢＣ")
    assert out.created_ticket and out.ticket is not None
    ticket = out.ticket
    transcript = [(m.direction, m.author_kind, m.text)
                  for m in await Message.filter(ticket_id=ticket.id).order_by("id")]
    assert transcript == [("in", "customer", "ＸＹＺ"), ("out", "bot", bot.NO_MATCH_TEXT), ("in", "customer", "ＡＢＣ"),
                          ("out", "bot", bot.HANDOFF_TEXT)]
    event = await TicketEvent.get(ticket_id=ticket.id, kind="bot_handoff")
    assert (event.reason, event.data["attempts"]) == ("bot_failed", [{"q": "ＸＹＺ", "outcome": "no_match"},
                                                                     {"q": "ＡＢＣ", "outcome": "no_match"}])
    assert (await BotSession.get(customer_id=ticket.customer_id)).mode == "human"  # type: ignore[attr-defined]
    # with a person on the case the bot keeps out
    later = await say(account, "密码忘了")
    assert later.ticket is not None and later.ticket.id == ticket.id


@pytest.mark.parametrize(("text", "reason"), [("转人工", "human_request"), ("你们这什么垃圾服务", "angry")])
async def test_asking_for_a_person_or_anger_hands_off(account: ChannelAccount, text: str, reason: str) -> None:
    out = await say(account, text)
    assert out.created_ticket
    assert (await TicketEvent.get(ticket_id=out.ticket.id, kind="bot_handoff")).reason == reason  # type: ignore[union-attr]


async def test_vip_customers_go_straight_to_a_person(account: ChannelAccount) -> None:
    customer = await customers.resolve_identity(kind="test_id", scope="test", value="vip-1")
    customer.vip_level = 2
    await customer.save()
    out = await say(account, "密码忘了", user="vip-1")
    assert (await TicketEvent.get(ticket_id=out.ticket.id, kind="bot_handoff")).reason == "vip"  # type: ignore[union-attr]


async def test_a_refund_asks_for_the_order_number_and_files_a_complete_ticket(account: ChannelAccount) -> None:
    assert (await say(account, "我要退款")).ticket is None
    assert (await sent())[-1]["text"] == bot.PROMPTS["order_no"]
    await say(account, "不知道")
    assert (await sent())[-1]["text"] == bot.RETRY_PROMPTS["order_no"]
    out = await say(account, "AB12345678")
    ticket = await Ticket.get(id=out.ticket.id)  # type: ignore[union-attr]
    assert (ticket.category, ticket.order_no, ticket.custom_fields["problem_type"]) == ("退款", "AB12345678", "退款")
    assert (await TicketEvent.get(ticket_id=ticket.id, kind="bot_handoff")).reason == "intake_complete"


async def test_a_repair_asks_address_then_phone_one_at_a_time(account: ChannelAccount) -> None:
    await say(account, "空调坏了要报修")
    assert (await sent())[-1]["text"] == bot.PROMPTS["address"]
    await say(account, "广东省深圳市南山区科技园路1号301")
    assert (await sent())[-1]["text"] == bot.PROMPTS["phone"]
    session = await BotSession.get()
    assert session.intake["fields"] == {"address": "广东省深圳市南山区科技园路1号301"}
    out = await say(account, "138-1234-5678")
    ticket = await Ticket.get(id=out.ticket.id)  # type: ignore[union-attr]
    assert ticket.custom_fields["address"] == "广东省深圳市南山区科技园路1号301"
    assert decrypt_field(ticket.phone_enc or "") == "+8613812345678"


def test_intake_validation() -> None:
    assert bot.validate("order_no", "订单号：AB12345678") == "AB12345678"
    assert bot.validate("order_no", "123") is None
    assert bot.validate("phone", "12345") is None
    assert bot.validate("address", "家里") is None


async def test_after_resolution_the_customer_rates_the_service(account: ChannelAccount) -> None:
    out = await say(account, "转人工")
    ticket = await Ticket.get(id=out.ticket.id)  # type: ignore[union-attr]
    await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version, actor=SYSTEM)
    await say(account, "1")
    assert (await Ticket.get(id=ticket.id)).status == "closed"
    assert (await sent())[-1]["text"] == bot.SURVEY_RATING
    await say(account, "5分")
    assert (await sent())[-1]["text"] == bot.SURVEY_COMMENT
    await say(account, "处理很快")
    assert (await sent())[-1]["text"] == bot.SURVEY_THANKS
    survey = await Survey.get(ticket_id=ticket.id)
    assert (survey.solved, survey.rating, survey.comment, survey.state) == (True, 5, "处理很快", "done")
    events = [e.data for e in await TicketEvent.filter(ticket_id=ticket.id, kind="survey").order_by("id")]
    assert events[-1] == {"solved": True, "rating": 5, "comment": "处理很快", "staff_id": None}


async def test_the_survey_rating_is_the_ticket_rating_and_a_later_page_rating_replaces_it(
        account: ChannelAccount) -> None:
    # observation 6: the chat's 5 and the page's 2 were two ratings staff never saw
    from app.tickets import ratings
    from app.tickets.models import TicketRating

    out = await say(account, "转人工")
    ticket = await Ticket.get(id=out.ticket.id)  # type: ignore[union-attr]
    await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version, actor=SYSTEM)
    await say(account, "1")
    await say(account, "5")
    rating = await TicketRating.get(ticket_id=ticket.id)
    assert (rating.score, rating.comment, rating.channel, rating.source, rating.history) == (
        5, "", "test", "bot_survey", [])
    await say(account, "处理很快")
    rating = await TicketRating.get(ticket_id=ticket.id)
    assert (rating.score, rating.comment, rating.history) == (5, "处理很快", [])  # the comment joins its score
    await ratings.record_rating(ticket_id=ticket.id, score=2, comment="", channel="h5", source="h5_page")
    rating = await TicketRating.get(ticket_id=ticket.id)
    assert (rating.score, rating.source) == (2, "h5_page")
    assert [(h["score"], h["comment"], h["source"]) for h in rating.history] == [(5, "处理很快", "bot_survey")]
    assert await TicketRating.all().count() == 1
