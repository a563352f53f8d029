"""The listeners keep the rollups current as a ticket lives (created, replied, resolved, rated, reopened); a rebuild
gives the same rows, however often it runs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from app.reports import jobs
from app.reports.models import ReportConversationFact, ReportDaily, ReportDirty, ReportTicketFact
from app.security.scope import SYSTEM
from app.tickets import ratings, states
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import CHINA
from tests import factories


async def _fact(ticket_id: int) -> ReportTicketFact:
    return await ReportTicketFact.get(ticket_id=ticket_id)


async def _daily_rows() -> list[dict[str, Any]]:
    rows = await ReportDaily.all().order_by("day", "channel", "group_id", "agent_id").values()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


async def test_listeners_keep_the_fact_and_the_daily_sums_current(db: None) -> None:
    data = await factories.org()
    agent = data["people"]["agent"]
    admin = await factories.actor(data["people"]["admin"])
    customer = await factories.customer()
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款没到账",
                             group_id=data["groups"]["service"].id, assignee_id=agent.id)
    assert await ReportDirty.filter(ticket_id=t.id).exists()  # the listener marked it, inside the transaction
    await jobs.refresh()
    assert not await ReportDirty.exists()
    fact = await _fact(t.id)
    assert (fact.status, fact.is_open, fact.agent_id, fact.group_id, fact.replies, fact.frt_wall) == (
        "new", True, agent.id, data["groups"]["service"].id, 0, None)
    today = datetime.now(UTC).astimezone(CHINA).date()
    day = await ReportDaily.get(day=today)
    assert (day.created, day.resolved, day.rated) == (1, 0, 0)

    await tickets.reply(actor=admin, ticket_id=t.id, text="您好，正在处理")
    await jobs.refresh()
    fact = await _fact(t.id)
    assert (fact.status, fact.replies, fact.frt_wall is not None) == ("open", 1, True)
    assert (await ReportDaily.get(day=today)).frt_n == 1

    t = await Ticket.get(id=t.id)
    await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=admin)
    await jobs.refresh()
    fact = await _fact(t.id)
    assert (fact.status, fact.is_open, fact.resolved_day) == ("resolved", False, today)
    assert (await ReportDaily.get(day=today)).resolved == 1

    await ratings.record_rating(ticket_id=t.id, score=4, channel="h5", source="h5_page")
    await jobs.refresh()
    fact = await _fact(t.id)
    assert (fact.csat, fact.rated_day) == (4, today)
    day = await ReportDaily.get(day=today)
    assert (day.rated, day.csat_sum, day.csat_positive, day.resolved_rated) == (1, 4, 1, 1)

    t = await Ticket.get(id=t.id)
    await states.transition(ticket_id=t.id, to="open", expected_version=t.version, actor=admin, reason="客户回复")
    await jobs.refresh()
    fact = await _fact(t.id)
    assert (fact.status, fact.is_open, fact.reopened, fact.resolved_day) == ("open", True, 1, None)
    day = await ReportDaily.get(day=today)
    assert (day.created, day.reopened, day.resolved) == (1, 1, 0)


async def test_rebuild_gives_the_same_rows_and_running_twice_changes_nothing(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    customer = await factories.customer()
    for n in range(3):
        t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=f"问题{n}",
                                 group_id=data["groups"]["service"].id, assignee_id=data["people"]["agent"].id)
        await tickets.reply(actor=admin, ticket_id=t.id, text="收到")
        if n:
            t = await Ticket.get(id=t.id)
            await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=admin)
    await jobs.refresh()
    live_facts = await ReportTicketFact.all().order_by("ticket_id").values()
    live_daily = await _daily_rows()

    await ReportDaily.all().delete()
    await ReportTicketFact.filter(ticket_id=live_facts[0]["ticket_id"]).delete()
    await jobs.rebuild(since=None)
    first = await ReportTicketFact.all().order_by("ticket_id").values()
    await jobs.rebuild(since=None)
    await jobs.rebuild(since=date(2020, 1, 1))
    second = await ReportTicketFact.all().order_by("ticket_id").values()

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "computed_at"} for r in rows]

    assert strip(first) == strip(second) == strip(live_facts)
    assert await _daily_rows() == live_daily
    assert len(live_daily) == 1 and live_daily[0]["created"] == 3 and live_daily[0]["resolved"] == 2
    assert not await ReportConversationFact.exists()


async def _group_rows() -> list[dict[str, Any]]:
    from app.reports.models import ReportDailyGroup

    rows = await ReportDailyGroup.all().order_by("day", "channel", "group_id").values()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


def _summed_over_agents(daily: list[dict[str, Any]], keep: tuple[str, ...] = ("day", "channel", "group_id")
                        ) -> list[dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in daily:
        key = tuple(r[k] for k in keep)
        have = out.setdefault(key, dict(zip(keep, key, strict=True)))
        for k, v in r.items():
            if k not in ("day", "channel", "group_id", "agent_id"):
                have[k] = have.get(k, 0) + v
    return [out[k] for k in sorted(out)]


async def _agent_rows() -> list[dict[str, Any]]:
    from app.reports.models import ReportDailyAgent

    rows = await ReportDailyAgent.all().order_by("day", "agent_id").values()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


async def test_the_group_and_agent_sums_are_the_daily_rows_added_up_live_and_rebuilt(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    customer = await factories.customer()
    made = []
    for n, (group, agent) in enumerate((("service", "agent"), ("service", "tech"), ("tech", "tech"),
                                        ("service", None))):
        made.append(await tickets.create(
            actor=SYSTEM, customer_id=customer.id, subject=f"问题{n}", group_id=data["groups"][group].id,
            assignee_id=data["people"][agent].id if agent else None))
        await tickets.reply(actor=admin, ticket_id=made[-1].id, text="收到")
    await jobs.refresh()
    live = await _group_rows()
    assert live == _summed_over_agents(await _daily_rows())
    assert await _agent_rows() == _summed_over_agents(await _daily_rows(), ("day", "agent_id"))
    assert [(r["group_id"], r["created"]) for r in live] == [
        (data["groups"]["service"].id, 3), (data["groups"]["tech"].id, 1)]
    # a ticket moving to another group leaves both groups' sums right
    t = await Ticket.get(id=made[0].id)
    await tickets.update(actor=admin, ticket_id=t.id, expected_version=t.version,
                         changes={"group_id": data["groups"]["tech"].id})
    await jobs.refresh()
    moved = await _group_rows()
    assert moved == _summed_over_agents(await _daily_rows())
    assert [r["created"] for r in moved] == [2, 2]
    by_agent = await _agent_rows()
    assert by_agent == _summed_over_agents(await _daily_rows(), ("day", "agent_id"))
    await jobs.rebuild(since=None)
    assert await _group_rows() == moved
    assert await _agent_rows() == by_agent


async def test_one_refresh_at_a_time_across_processes(db: None) -> None:
    from datetime import timedelta

    from app.reports.models import ReportState
    from app.timeutil import set_clock, utcnow

    data = await factories.org()
    customer = await factories.customer()
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款没到账",
                             group_id=data["groups"]["service"].id)
    now = utcnow()
    # another process's run holds the lease: this one leaves the queue to it
    held = int(now.timestamp()) + jobs.LEASE_SECONDS
    await ReportState.create(key=jobs.REFRESH_LEASE, value=held)
    assert await jobs.reports_refresh({}) == 0
    assert await ReportDirty.filter(ticket_id=t.id).exists()
    # that run died: once its lease has run out, the next run takes over, drains the queue and lets go
    set_clock(lambda: now + timedelta(seconds=jobs.LEASE_SECONDS + 1))
    try:
        assert await jobs.reports_refresh({}) >= 1
    finally:
        set_clock(None)
    assert not await ReportDirty.exists()
    assert (await ReportState.get(key=jobs.REFRESH_LEASE)).value == 0
    assert (await _fact(t.id)).status == "new"


async def _rollup_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row (daily sums, their coarser sums, the counts) without ids, in a fixed order."""
    from app.reports.models import ReportCount, ReportDailyAgent, ReportDailyGroup

    out: dict[str, list[tuple[Any, ...]]] = {}
    for model in (ReportDaily, ReportDailyGroup, ReportDailyAgent, ReportCount):
        rows = await model.all().values()
        out[model.__name__] = sorted(tuple(sorted((k, v) for k, v in r.items() if k != "id")) for r in rows)
    return out


async def _inbound(ticket_id: int | None, conv_id: int, text: str = "还有一个问题") -> None:
    from app.conversations.models import Message

    await Message.create(ticket_id=ticket_id, conversation_id=conv_id, direction="in", author_kind="customer",
                         text=text)


async def test_a_customers_further_message_rewrites_the_facts_and_moves_no_rollup(db: None) -> None:
    from app.channels.models import ChannelAccount
    from app.conversations.models import Conversation
    from tests.sqlcount import count_statements

    data = await factories.org()
    account = await ChannelAccount.create(kind="wechat_mp", key="mp1", name="公众号")
    customer = await factories.customer()
    conv = await Conversation.create(customer_id=customer.id, channel_account_id=account.id)
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款没到账",
                             group_id=data["groups"]["service"].id, conversation_id=conv.id,
                             channel_account_id=account.id, record={"source": "wechat_mp", "reason": "keyword"})
    await _inbound(t.id, conv.id, "退款没到账")
    await jobs.refresh()
    before = await _rollup_rows()
    assert before["ReportCount"] and before["ReportDaily"]

    # a burst's follow-up: one more customer message on the open ticket changes no figure any rollup sums or counts
    await _inbound(t.id, conv.id)
    with count_statements() as statements:
        await jobs.refresh()
    assert ((await _fact(t.id)).customer_messages,
            (await ReportConversationFact.get(conversation_id=conv.id)).messages_in) == (2, 2)
    assert [s for s in statements if "report_count" in s or "report_daily" in s] == []
    assert await _rollup_rows() == before
    await jobs.rebuild()  # what the rollups are when everything is summed again
    assert await _rollup_rows() == before

    # a message that does move a figure still moves it: the bot speaks in a conversation without a ticket
    conv2 = await Conversation.create(customer_id=customer.id, channel_account_id=account.id)
    await _inbound(None, conv2.id, "营业时间？")
    await jobs.refresh()
    from app.conversations.models import Message

    await Message.create(conversation_id=conv2.id, direction="out", author_kind="bot", text="9点到18点")
    await jobs.refresh()
    live = await _rollup_rows()
    assert live != before
    await jobs.rebuild()
    assert await _rollup_rows() == live


async def test_a_refresh_ends_once_it_has_caught_up_while_messages_keep_coming(db: None, monkeypatch: Any) -> None:
    from app.conversations.models import Conversation, Message
    from app.reports import facts
    from app.reports.models import ReportState

    customer = await factories.customer()
    conv = await Conversation.create(customer_id=customer.id)
    await _inbound(None, conv.id, "第一条")
    calls = 0
    save = facts.save_conversation_facts

    async def save_while_messages_arrive(ids: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 20:  # a burst: a message arrives while every batch is being worked on
            await _inbound(None, conv.id, f"第{calls + 1}条")
        return await save(ids)

    monkeypatch.setattr(facts, "save_conversation_facts", save_while_messages_arrive)
    await jobs.refresh()
    # the run stopped after the batch that was not full; what came meanwhile waits for the next run
    assert calls == 1
    first = await Message.all().order_by("id").first()
    assert first is not None
    assert (await ReportState.get(key=jobs.WATERMARK)).value == first.id
    monkeypatch.setattr(facts, "save_conversation_facts", save)
    await jobs.refresh()
    assert (await ReportConversationFact.get(conversation_id=conv.id)).messages_in == 2
