"""Outside working hours on a site with the bot on: the bot answers as during the day, and where it would hand the
visitor to a person (nobody is there) the widget is offered the 留言 form instead, prefilled with what the visitor
wrote; the 留言 is the offline form's ticket. The desk's clock is moved (app.timeutil.set_clock), never read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest

from app import queue as jobqueue
from app.channels.webchat import accounts, visitors
from app.conversations.models import Message
from app.kb import bot, understanding
from app.kb import service as kb
from app.kb.config import load_bot_config
from app.kb.models import BotSession
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.settings import Settings
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import set_clock
from tests.app.channels.webchat.conftest import EVENING, ORIGIN, WORKING, Desk, Socket
from tests.app.kb.conftest import ARTICLES

PASSWORD_ANSWER = f"{ARTICLES[1]['body']}\n\n{bot.ANSWER_TAIL}"


def _at(when: datetime) -> Iterator[None]:
    set_clock(lambda: when)
    yield
    set_clock(None)


@pytest.fixture
def evening() -> Iterator[None]:
    yield from _at(EVENING)


@pytest.fixture
def daytime() -> Iterator[None]:
    yield from _at(WORKING)


@pytest.fixture
async def help_desk(db: None, settings: Settings, jobs: jobqueue.InProcessQueue) -> AsyncIterator[Desk]:
    """A site with the bot on, and the knowledge base it answers from."""
    from app.seed import ensure_org

    await ensure_org()
    visitors.visitor_limiter.reset()
    visitors.ip_limiter.reset()
    load_bot_config.cache_clear()
    kb._cache.update(key=None, matcher=None)
    understanding.reset()
    for article in ARTICLES:
        await kb.create(actor=SYSTEM, status="published", **article)
    account = await accounts.upsert_account(key="help", name="帮助中心", origins=[ORIGIN], bot=True)
    yield Desk(account, jobs)
    load_bot_config.cache_clear()


@pytest.fixture
def numbers_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ticket numbers allocated (on MariaDB a number is taken outside the caller's transaction: a ticket opened
    and rolled back would leave a gap in the day's sequence)."""
    from app.tickets import service as ticket_service

    taken: list[str] = []
    allocate = ticket_service.next_numbers  # type: ignore[attr-defined]

    async def spy(*, count: int) -> list[str]:
        taken.extend(await allocate(count=count))
        return taken[-count:]

    monkeypatch.setattr(ticket_service, "next_numbers", spy)
    return taken


async def _ask(desk: Desk, ws: Socket, text: str, client_id: str) -> dict[str, Any]:
    """Send a message; the frame that answers it (ack, or the offer of the 留言 form)."""
    await ws.send({"type": "message", "text": text, "client_id": client_id})
    while True:
        frame = await ws.receive()
        if frame["type"] in ("ack", "leave_message"):
            await desk.jobs.drain()
            return frame


async def _bot_says(ws: Socket) -> str:
    frame = await ws.receive_until("message")
    assert (frame["direction"], frame["author"]) == ("out", "bot")
    return str(frame["text"])


async def test_outside_hours_the_bot_greets_and_answers(help_desk: Desk, evening: None) -> None:
    ws = await help_desk.socket()
    welcome = await ws.hello()
    assert (welcome["online"], welcome["opens_at"], welcome["bot"]) == (False, "12月10日 09:00", True)
    ack = await _ask(help_desk, ws, "密码忘了怎么办", "c1")
    assert ack["type"] == "ack"
    assert await _bot_says(ws) == PASSWORD_ANSWER
    # a reconnecting widget sends it again: stored and answered once
    assert await _ask(help_desk, ws, "密码忘了怎么办", "c1") == ack
    assert await Message.filter(direction="in").count() == 1
    assert await Message.filter(author_kind="bot").count() == 1
    assert await Ticket.all().count() == 0
    await ws.close()


async def test_outside_hours_asking_for_a_person_offers_the_offline_form(
        help_desk: Desk, evening: None, numbers_taken: list[str]) -> None:
    ws = await help_desk.socket()
    await ws.hello()
    await _ask(help_desk, ws, "密码忘了怎么办", "c1")
    assert await _bot_says(ws) == PASSWORD_ANSWER

    offer = await _ask(help_desk, ws, "人工", "c2")
    # the request for a person itself is no part of the question
    assert offer == {"type": "leave_message", "client_id": "c2", "text": "密码忘了怎么办", "opens_at": "12月10日 09:00"}
    # the hand-off did not happen: no ticket, no "转接人工" promise, the request not stored, the bot still in charge
    assert await Ticket.all().count() == 0
    assert bot.HANDOFF_TEXT not in [r.payload.get("text") for r in await OutboxMessage.all()]
    assert [m.text for m in await Message.filter(direction="in").order_by("id")] == ["密码忘了怎么办"]
    assert (await BotSession.get()).mode == "bot"
    # the bot's hand-off was held before intake opened anything: no ticket made and undone, no number used up
    assert numbers_taken == []

    await ws.send({"type": "offline", "name": "李先生", "contact": "li@example.com",
                   "text": "密码忘了怎么办，验证码收不到"})
    done = await ws.receive_until("offline_ok")
    ticket = await Ticket.get()
    assert (done["ticket"], done["opens_at"]) == (ticket.number, "12月10日 09:00")
    assert numbers_taken == [ticket.number] and ticket.number.endswith("-0001")
    assert (ticket.subject, ticket.description) == ("密码忘了怎么办，验证码收不到", "密码忘了怎么办，验证码收不到")
    created = await TicketEvent.get(ticket_id=ticket.id, kind="created")
    assert (ticket.custom_fields["source"], created.data["source"]) == ("webchat", "webchat_offline")
    await ws.close()


async def test_outside_hours_repeated_misses_offer_the_offline_form_with_what_was_asked(
        help_desk: Desk, evening: None, numbers_taken: list[str]) -> None:
    ws = await help_desk.socket()
    await ws.hello()
    assert (await _ask(help_desk, ws, "ＸＹＺ", "c1"))["type"] == "ack"
    assert await _bot_says(ws) == bot.NO_MATCH_TEXT
    offer = await _ask(help_desk, ws, "ＡＢＣ", "c2")
    assert offer == {"type": "leave_message", "client_id": "c2", "text": "ＸＹＺ\nＡＢＣ", "opens_at": "12月10日 09:00"}
    assert await Ticket.all().count() == 0 and numbers_taken == []
    # still the bot's: a later question is answered
    assert (await _ask(help_desk, ws, "密码忘了怎么办", "c3"))["type"] == "ack"
    assert await _bot_says(ws) == PASSWORD_ANSWER
    await ws.close()


async def test_during_working_hours_the_bot_still_hands_off_to_a_person(help_desk: Desk, daytime: None) -> None:
    ws = await help_desk.socket()
    welcome = await ws.hello()
    assert (welcome["online"], welcome["bot"]) == (True, True)
    assert (await _ask(help_desk, ws, "人工", "c1"))["type"] == "ack"
    assert await _bot_says(ws) == bot.HANDOFF_TEXT
    event = await TicketEvent.get(kind="bot_handoff")
    assert event.reason == "human_request"
    await ws.close()


async def test_with_the_bot_off_the_widget_is_told_so(desk: Desk, evening: None) -> None:
    ws = await desk.socket()
    welcome = await ws.hello()
    assert (welcome["online"], welcome["bot"]) == (False, False)
    await ws.close()
