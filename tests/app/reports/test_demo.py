"""The demo month: traffic on every channel through the real flows, on the moved clock, the same every time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import tortoise.timezone as tortoise_tz
from tortoise import Tortoise

from app.channels.models import InboundEvent
from app.kb.models import BotQuery
from app.outbox.models import OutboxMessage
from app.reports import jobs
from app.reports.demo import demo_clock, seed_month
from app.reports.models import ReportTicketFact
from app.seed import seed_demo
from app.settings import Settings
from app.setup import setup
from app.tickets.models import Ticket, TicketEvent, TicketRating
from app.timeutil import CHINA, utcnow

END = datetime(2026, 11, 30, 20, 0, tzinfo=CHINA).astimezone(UTC)


async def _month(days: int) -> dict[str, object]:
    setup()
    await seed_demo()  # the organisation, workflow, articles and the four sample tickets
    summary = await seed_month(days=days, end=END, per_day=9)
    await jobs.rebuild(since=None)
    return summary.as_dict()


async def test_a_week_of_traffic_reaches_every_figure(db: None) -> None:
    summary = await _month(7)
    assert summary["errors"] == 0
    first = datetime(2026, 11, 24, tzinfo=CHINA).astimezone(UTC)
    month = Ticket.filter(created_at__gte=first, created_at__lte=END)
    assert await month.count() == summary["tickets"] and summary["tickets"] >= 30
    created = [t.created_at for t in await month]
    assert min(created) >= first and max(created) <= END  # the moved clock, also in auto_now_add columns
    facts = await ReportTicketFact.filter(created_at__gte=first)
    assert {f.channel for f in facts} >= {"wechat_mp", "wecom_kf", "email", "webchat"}
    assert len({f.created_weekday for f in facts}) == 7 and len({f.created_hour for f in facts}) >= 8
    reasons = Counter(f.reason_group for f in facts)
    assert {"keyword", "handoff", "staff", "channel"} <= set(reasons)
    handoffs = Counter(await TicketEvent.filter(kind="bot_handoff").values_list("reason", flat=True))
    assert len(handoffs) >= 2
    assert await BotQuery.filter(outcome="answered").exists()  # the bot answered some without a person
    assert await TicketRating.filter(source="bot_survey").exists() and await TicketRating.filter(
        source="h5_page").exists()
    assert any(f.reopened for f in facts) and any(f.is_open for f in facts) and any(f.frt_wall for f in facts)
    assert await InboundEvent.filter(status="done").count() == summary["messages"]
    # the four sample tickets are written on today's clock, after this month's END: their rows are not the month's
    statuses: set[Any] = set(await OutboxMessage.filter(created_at__lte=END).values_list("status", flat=True))
    assert "pending" not in statuses and "sent" in statuses  # settled: nothing goes out when the desk starts


async def test_the_same_seed_writes_the_same_month(db: None, settings: Settings) -> None:
    first = await _month(3)
    rows = [(t.number, t.subject, t.status, t.created_at) for t in await Ticket.all().order_by("id")]
    from tests.conftest import fresh_database

    await Tortoise.close_connections()
    await fresh_database(settings)
    assert await _month(3) == first
    assert [(t.number, t.subject, t.status, t.created_at) for t in await Ticket.all().order_by("id")][4:] == rows[4:]


def test_the_clock_is_given_back() -> None:
    real = tortoise_tz.now
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with demo_clock(start) as move:
        assert utcnow() == start and tortoise_tz.now() == start
        move(start + timedelta(hours=1))
        move(start)  # never backwards
        assert utcnow() == start + timedelta(hours=1)
    assert tortoise_tz.now is real and abs(utcnow() - datetime.now(UTC)) < timedelta(seconds=5)
