"""Every figure of the console on the hand-made dataset (tests/app/reports/dataset.py), answers worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.errors import PermissionDenied
from app.reports import service
from app.reports.service import Drill, ReportFilter
from app.security.scope import SYSTEM, Actor
from app.tickets.models import SlaPolicy
from app.timeutil import set_clock
from tests import factories
from tests.app.reports import dataset

FLT = ReportFilter(start=dataset.START, end=dataset.END)


@pytest.fixture
async def org(db: None) -> dict[str, Any]:
    data = await factories.org()
    g1, g2 = data["groups"]["service"].id, data["groups"]["tech"].id
    a1, a2 = data["people"]["agent"].id, data["people"]["tech"].id
    policy = await SlaPolicy.create(name="标准", first_response_minutes=30, resolution_minutes=480)
    ids = await dataset.load(g1=g1, g2=g2, a1=a1, a2=a2, policy_id=policy.id)
    # "now" is the end of the period: backlog ages count from here
    set_clock(lambda: datetime(2026, 11, 16, 0, 0, tzinfo=UTC))
    return {**data, "ids": ids, "g1": g1, "g2": g2, "a1": a1, "a2": a2, "policy": policy.id}


def _fig(section: service.Section, key: str) -> tuple[Any, Any, Any]:
    f = section.figure(key)
    return f.value, f.previous, f.change


def test_nearest_rank_percentile_by_hand() -> None:
    # n = 4: median rank ceil(2) = 2, p90 rank ceil(3.6) = 4; n = 3: ranks 2 and 3; n = 1: rank 1
    assert service.nearest_rank([1200, 60, 600, 300], 0.5) == 300
    assert service.nearest_rank([1200, 60, 600, 300], 0.9) == 1200
    assert service.nearest_rank([7200, 600, 3600], 0.5) == 3600
    assert service.nearest_rank([7200, 600, 3600], 0.9) == 7200
    assert service.nearest_rank([5], 0.9) == 5
    assert service.nearest_rank([], 0.5) is None


def test_buckets_and_the_histogram_percentile_by_hand() -> None:
    from app.reports.facts import bucket

    # whole minutes up to an hour, 5 minutes up to a day, hours beyond (always rounded up)
    assert [bucket(v) for v in (None, 0, 1, 60, 61, 3600, 3601, 4000, 86400, 86401, 90000)] == [
        None, 0, 60, 60, 120, 3600, 3900, 4200, 86400, 90000, 90000]
    # 3 x 60, 1 x 300, 2 x 600: n = 6, median rank 3 -> 60, p90 rank ceil(5.4) = 6 -> 600
    assert service.histogram_rank({600: 2, 60: 3, 300: 1}, 0.5) == 60
    assert service.histogram_rank({600: 2, 60: 3, 300: 1}, 0.9) == 600
    assert service.histogram_rank({}, 0.5) is None


def test_the_previous_period_is_the_equal_length_before() -> None:
    assert FLT.previous() == ReportFilter(start=date(2026, 11, 2), end=date(2026, 11, 8))
    f = service.figure("x", "x", "ratio", 0.75, 0.5)
    assert (f.change, f.change_ratio) == (0.25, 0.5)
    assert service.figure("x", "x", "count", 3, 0).change_ratio is None


async def test_volume_reopened_rate_backlog_heatmap_and_backlog_age(org: dict[str, Any]) -> None:
    s = await service.volume(actor=SYSTEM, flt=FLT)
    assert _fig(s, "created") == (5, 2, 3)
    assert s.figure("created").change_ratio == 1.5
    assert _fig(s, "resolved") == (3, 1, 2)  # T1, T2, T5 resolved in the week; P1 before
    assert _fig(s, "reopened_rate") == (0.2, 0.0, 0.2)  # T2 of 5; none of 2
    assert _fig(s, "backlog") == (2, 1, 1)  # T3, T4 still open; P2
    by_channel = {p.key: p.value for p in next(x for x in s.series if x.key == "by_channel").points}
    assert by_channel == {"email": 1, "wechat_mp": 3, "wecom_kf": 1}
    heat = {p.key: p.value for p in next(x for x in s.series if x.key == "heatmap").points if p.value}
    assert heat == {"2:10": 1, "2:14": 1, "4:9": 1, "6:20": 1, "7:11": 1}
    daily = [p.value for p in next(x for x in s.series if x.key == "daily").points]
    assert daily == [0, 2, 0, 1, 0, 1, 1]
    # now 11-16 08:00 local: T3 (11-12 09:00) waited 3 d 23 h, T4 (11-14 20:00) 1 d 12 h; P2 10 d 22 h
    ages = {p.key: p.value for p in next(x for x in s.series if x.key == "backlog_age").points}
    assert ages == {"lt1d": 0, "1to3d": 1, "3to7d": 1, "gt7d": 1}


async def test_response_and_resolution_times_median_and_p90(org: dict[str, Any]) -> None:
    s = await service.response(actor=SYSTEM, flt=FLT)
    # frt business [60, 300, 600, 1200]: median 300, p90 1200; previous [900, 1800]: 900, 1800
    assert _fig(s, "frt_business_median") == (300, 900, -600)
    assert _fig(s, "frt_business_p90") == (1200, 1800, -600)
    # frt wall [60, 300, 600, 4000]; above an hour durations count in 5-minute buckets: 4000 s -> 4200 s (70 min)
    assert _fig(s, "frt_wall_median") == (300, 900, -600)
    assert _fig(s, "frt_wall_p90") == (4200, 1800, 2400)
    # resolution by resolved day: business [600, 3600, 7200], wall [600, 3600, 90000]; previous [3600]
    assert _fig(s, "resolution_business_median") == (3600, 3600, 0)
    assert _fig(s, "resolution_business_p90") == (7200, 3600, 3600)
    assert _fig(s, "resolution_wall_p90") == (90000, 3600, 86400)
    assert _fig(s, "nrt_business_median") == (None, None, None)
    rows = {r["group"]: r for r in s.tables[0].rows}
    assert rows["客服组"]["frt_business_avg"] == (600 + 1200 + 60) / 3


async def test_satisfaction_average_share_response_rate_by_agent(org: dict[str, Any]) -> None:
    s = await service.satisfaction(actor=SYSTEM, flt=FLT)
    assert _fig(s, "csat_avg") == (4.0, 2.0, 2.0)  # (5 + 3) / 2; P1's 2
    assert _fig(s, "csat_positive_share") == (0.5, 0.0, 0.5)  # the 5 of two ratings
    # resolved in the week: T1, T2 rated, T5 not; previous: P1 rated
    assert s.figure("csat_response_rate").value == pytest.approx(2 / 3)
    assert s.figure("csat_response_rate").previous == 1.0
    assert {p.key: p.value for p in s.series[0].points} == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    by_agent = {r["agent"]: (r["rated"], r["csat_avg"]) for r in s.tables[0].rows}
    assert by_agent == {"客服": (2, 4.0)}


async def test_sla_attainment_breaches_escalations_per_policy(org: dict[str, Any]) -> None:
    s = await service.sla(actor=SYSTEM, flt=FLT)
    # met: T1 2, T2 1, T3 1, T5 2 = 6; breached: T2's first response = 1; previous: met 2 (P1 res, P2 first), 1
    assert s.figure("sla_attainment").value == pytest.approx(6 / 7)
    assert s.figure("sla_attainment").previous == pytest.approx(2 / 3)
    assert _fig(s, "breached") == (1, 1, 0)
    assert _fig(s, "escalations") == (1, 0, 1)
    table = [(r["clock"], r["met"], r["breached"]) for r in s.tables[0].rows]
    assert table == [("首次响应", 3, 1), ("解决", 3, 0)]


async def test_conversion_rate_and_reasons(org: dict[str, Any]) -> None:
    s = await service.conversion(actor=SYSTEM, flt=FLT)
    assert _fig(s, "conversion_rate") == (0.5, 0.0, 0.5)  # 2 of 4 conversations; 0 of 1
    assert _fig(s, "conversations") == (4, 1, 3)
    reasons = {p.key: p.value for p in s.series[0].points if p.value}
    assert reasons == {"keyword": 2, "handoff": 1, "staff": 1, "channel": 1}


async def test_bot_answered_handoffs_and_missed_questions(org: dict[str, Any]) -> None:
    from app.kb.models import BotQuery

    for text, day in (("发票怎么开", "2026-11-10"), ("发票怎么开", "2026-11-13"), ("积分", "2026-11-11"),
                      ("旧问题", "2026-11-03")):
        q = await BotQuery.create(channel="wechat_mp", text=text, outcome="no_match")
        await BotQuery.filter(id=q.id).update(created_at=dataset.at(day, "10:00"))
    await BotQuery.create(channel="wechat_mp", text="答上了", outcome="answered")
    s = await service.bot(actor=SYSTEM, flt=FLT)
    assert _fig(s, "bot_conversations") == (2, 1, 1)
    assert _fig(s, "bot_resolved") == (1, 1, 0)
    assert _fig(s, "bot_resolution_rate") == (0.5, 1.0, -0.5)
    assert _fig(s, "bot_handoffs") == (1, 0, 1)
    assert {p.key: p.value for p in s.series[0].points if p.value} == {"angry": 1}
    assert [(r["text"], r["count"]) for r in s.tables[0].rows] == [("发票怎么开", 2), ("积分", 1)]


async def test_agent_workload_and_handling_time(org: dict[str, Any]) -> None:
    s = await service.agents(actor=SYSTEM, flt=FLT)
    assert _fig(s, "handled") == (3, 1, 2)
    assert _fig(s, "replies") == (5, 0, 5)
    assert s.figure("handling_avg").value == pytest.approx((3000 + 80000 + 500) / 3)
    rows = {r["agent"]: (r["assigned"], r["resolved"], r["replies"]) for r in s.tables[0].rows}
    assert rows == {"客服": (3, 3, 4), "技术": (1, 0, 1)}


async def test_filters_channel_group_agent(org: dict[str, Any]) -> None:
    s = await service.volume(actor=SYSTEM, flt=ReportFilter(start=FLT.start, end=FLT.end, channel="wechat_mp"))
    assert _fig(s, "created") == (3, 2, 1)
    s = await service.volume(actor=SYSTEM, flt=ReportFilter(start=FLT.start, end=FLT.end, group_id=org["g2"]))
    assert _fig(s, "created") == (2, 0, 2)
    s = await service.response(actor=SYSTEM, flt=ReportFilter(start=FLT.start, end=FLT.end, agent_id=org["a1"]))
    assert _fig(s, "frt_business_median") == (600, 900, -300)  # [60, 600, 1200]


async def test_scope_agent_sees_only_their_own_and_lead_their_groups(org: dict[str, Any]) -> None:
    agent: Actor = await factories.actor(org["people"]["agent"])
    s = await service.volume(actor=agent, flt=FLT)
    assert _fig(s, "created") == (3, 2, 1)
    assert s.filter.agent_id == org["a1"]
    with pytest.raises(PermissionDenied):
        await service.volume(actor=agent, flt=ReportFilter(start=FLT.start, end=FLT.end, agent_id=org["a2"]))
    with pytest.raises(PermissionDenied):
        await service.reception(actor=agent, flt=FLT)
    lead = await factories.actor(org["people"]["lead"])
    assert _fig(await service.volume(actor=lead, flt=FLT), "created") == (3, 2, 1)  # G1 only (T3, T4 are G2)
    admin = await factories.actor(org["people"]["admin"])
    assert _fig(await service.volume(actor=admin, flt=FLT), "created") == (5, 2, 3)


async def test_each_segment_drills_to_exactly_its_tickets(org: dict[str, Any]) -> None:
    ids = org["ids"]

    async def drill(**kw: Any) -> list[int]:
        return await service.drill_ticket_ids(actor=SYSTEM, drill=Drill.of(FLT, **kw))

    assert await drill(weekday=2, hour=10) == [ids["T1"]]
    assert await drill(reason="keyword") == [ids["T5"], ids["T1"]]
    assert await drill(basis="rated", csat=5) == [ids["T1"]]
    assert await drill(clock="first_response", sla="breached") == [ids["T2"]]
    assert await drill(escalated=True) == [ids["T2"]]
    assert await drill(reopened=True) == [ids["T2"]]
    assert await drill(backlog=True) == [ids["T4"], ids["T3"]]
    assert await drill(backlog=True, age="gt7d") == []  # P2 was created before the period
    assert await drill(basis="resolved") == [ids["T5"], ids["T2"], ids["T1"]]
    assert await drill(handoff="angry") == [ids["T2"]]
    # every segment's drill round-trips through its query parameters
    s = await service.volume(actor=SYSTEM, flt=FLT)
    for series in s.series:
        for p in series.points:
            assert p.drill is not None and Drill.from_params(p.drill.to_params()) == p.drill
    page = await service.drill_page(actor=SYSTEM, drill=Drill.of(FLT, kind="conversation", handoff="none"))
    assert (page.total, [r.conversation_id for r in page.rows]) == (1, [1])
    agent = await factories.actor(org["people"]["agent"])
    assert await service.drill_ticket_ids(actor=agent, drill=Drill.of(FLT, backlog=True)) == []


async def test_the_count_rollup_and_the_facts_give_the_same_buckets(org: dict[str, Any]) -> None:
    from tortoise.expressions import Q

    from app.reports.facts import MEASURES

    metrics = tuple(m[0] for m in MEASURES)
    for flt in (FLT, FLT.previous(), ReportFilter(start=FLT.start, end=FLT.end, channel="wechat_mp"),
                ReportFilter(start=FLT.start, end=FLT.end, group_id=org["g1"]),
                ReportFilter(start=FLT.start, end=FLT.end, agent_id=org["a1"])):
        rolled = await service.counts(flt, Q(), metrics)
        scanned = await service.counts(flt, Q(ticket_id__gte=1), metrics)  # any scope forces the facts
        assert rolled == scanned
    assert rolled["heat"] == {210: 1, 214: 1, 711: 1}  # T1, T2, T5 of agent A1
    # both paths count with facts.bucket_sql: the buckets themselves are checked against the dataset by hand
    met, breached = org["policy"] * 10, org["policy"] * 10 + 1
    by_hand = {
        FLT: {
            # created: T1 600/600, T2 1200/4000 (4000 -> 4200: 5 minutes past an hour), T3 300/300, T5 60/60
            "frt_business": {60: 1, 300: 1, 600: 1, 1200: 1}, "frt_wall": {60: 1, 300: 1, 600: 1, 4200: 1},
            "nrt_business": {}, "nrt_wall": {},
            # resolved: T1 3600/3600, T2 7200/90000 (hours past a day), T5 600/600; handling 3000, 80000 -> 80100,
            # 500 -> 540
            "resolution_business": {600: 1, 3600: 1, 7200: 1}, "resolution_wall": {600: 1, 3600: 1, 90000: 1},
            "handling_wall": {540: 1, 3000: 1, 80100: 1},
            # weekday * 100 + hour: Tue 10, Tue 14, Thu 9, Sat 20, Sun 11
            "heat": {210: 1, 214: 1, 409: 1, 620: 1, 711: 1},
            "csat": {3: 1, 5: 1},  # rated: T1 5 (11-10), T2 3 (11-12)
            # keyword 0 (T1, T5), handoff 2 (T2 bot:angry), staff 3 (T3), channel 5 (T4 every_message)
            "reason": {0: 2, 2: 1, 3: 1, 5: 1},
            # policy * 10 + 0 met / 1 breached; T3's running resolution clock and T4 (no clocks) count in neither
            "sla_first_response": {met: 3, breached: 1}, "sla_next_response": {}, "sla_resolution": {met: 3},
        },
        FLT.previous(): {
            "frt_business": {900: 1, 1800: 1}, "frt_wall": {900: 1, 1800: 1}, "nrt_business": {}, "nrt_wall": {},
            "resolution_business": {3600: 1}, "resolution_wall": {3600: 1}, "handling_wall": {},
            "heat": {210: 1, 410: 1}, "csat": {2: 1}, "reason": {0: 1, 4: 1},  # P1 api, P2 keyword
            "sla_first_response": {met: 1, breached: 1}, "sla_next_response": {}, "sla_resolution": {met: 1},
        },
    }
    for flt, expected in by_hand.items():
        assert set(expected) == set(metrics)
        for scope in (Q(), Q(ticket_id__gte=1)):
            assert await service.counts(flt, scope, metrics) == expected


async def test_overview_gathers_the_key_figures(org: dict[str, Any]) -> None:
    s = await service.overview(actor=SYSTEM, flt=FLT)
    assert [f.key for f in s.figures] == ["reception_rate", "delivery_rate", "conversion_rate", "csat_avg",
                                          "frt_business_median", "resolution_business_median", "sla_attainment",
                                          "created", "backlog"]
    assert service.format_value(s.figure("conversion_rate")) == "50.0%"
    assert service.format_value(s.figure("frt_business_median")) == "5分钟"
    assert service.format_value(s.figure("reception_rate")) == "—"
    assert service.to_json(s)["figures"][2]["value"] == 0.5


def test_bad_filters_are_400() -> None:
    from app.errors import BadRequest

    for params in ({"from": "2026-13-01"}, {"from": "2026-11-10", "to": "2026-11-01"}, {"group": "x"},
                   {"from": "2020-01-01", "to": "2026-01-01"}, {"channel": "a b"}):
        with pytest.raises(BadRequest):
            ReportFilter.from_params(params)
    for params in ({"hour": "24"}, {"csat": "0"}, {"clock": "x"}, {"age": "old"}, {"reopened": "yes"}):
        with pytest.raises(BadRequest):
            Drill.from_params(params)
    f = ReportFilter.from_params({}, today=date(2026, 11, 15))
    assert (f.start, f.end) == (date(2026, 11, 9), date(2026, 11, 15))
    assert ReportFilter.from_params(f.to_params()) == f
    assert f.end - f.start == timedelta(days=6)


async def test_conversation_figures_are_day_counts_equal_to_the_conversation_facts(org: dict[str, Any]) -> None:
    from app.reports.models import ReportConversationFact, ReportCount

    # hundreds of thousands of conversations in 90 days: the figures read a few count rows per day instead
    assert await ReportCount.filter(metric="conversations", dim="").count() > 0
    for flt in (FLT, FLT.previous(), ReportFilter(start=FLT.start, end=FLT.end, channel="wechat_mp"),
                ReportFilter(start=FLT.start, end=FLT.end, channel="email")):
        q = ReportConversationFact.filter(day__gte=flt.start, day__lte=flt.end,
                                          **({"channel": flt.channel} if flt.channel else {}))
        assert await service._conversion_numbers(flt) == (await q.filter(ticket_id__not_isnull=True).count(),
                                                          await q.count())
        assert await service._bot_numbers(flt) == {
            "bot": await q.filter(bot_messages__gt=0).count(), "resolved": await q.filter(bot_resolved=True).count(),
            "handoffs": await q.filter(handoff__not_isnull=True).count()}
    assert (await service._conversion_numbers(FLT), await service._bot_numbers(FLT)) == (
        (2, 4), {"bot": 2, "resolved": 1, "handoffs": 1})


async def test_a_leads_scope_is_read_as_disjoint_parts_that_add_up_to_the_one_or(org: dict[str, Any]) -> None:
    from app.reports.models import ReportDaily, ReportTicketFact

    lead = await factories.actor(org["people"]["lead"])
    _, scope = service.scoped(lead, FLT)
    parts = service.scope_parts(scope)
    assert len(parts) == 2
    # one of the lead's group's tickets assigned to the lead counts once, not once per part
    fact = await ReportTicketFact.filter(group_id=org["g1"]).order_by("ticket_id").first()
    assert fact is not None
    await ReportTicketFact.filter(ticket_id=fact.ticket_id).update(agent_id=lead.staff_id)
    other = await ReportTicketFact.filter(group_id=org["g2"]).order_by("ticket_id").first()
    assert other is not None
    await ReportTicketFact.filter(ticket_id=other.ticket_id).update(agent_id=lead.staff_id)
    await ReportDaily.all().delete()
    from app.reports import facts

    await facts.recompute_days(FLT.start - timedelta(days=30), FLT.end)
    by_or = await ReportTicketFact.filter(scope, created_day__gte=FLT.start, created_day__lte=FLT.end).count()
    by_parts = [await ReportTicketFact.filter(p, created_day__gte=FLT.start, created_day__lte=FLT.end).count()
                for p in parts]
    assert sum(by_parts) == by_or and all(by_parts)
    assert (await service.daily_sums(FLT, scope))[None]["created"] == by_or
    whole = await service.counts(FLT, scope, ("frt_wall", "heat"))
    assert sum(whole["heat"].values()) == by_or


async def test_whole_months_are_read_from_month_rows_and_give_the_same_buckets(org: dict[str, Any]) -> None:
    from tortoise.expressions import Q

    from app.reports.facts import MEASURES
    from app.reports.models import ReportCount

    assert await ReportCount.filter(dim="month", day=date(2026, 11, 1)).exists()
    metrics = tuple(m[0] for m in MEASURES)
    for start, end in ((date(2026, 10, 15), date(2026, 11, 30)), (date(2026, 11, 1), date(2026, 11, 30)),
                       (date(2026, 10, 1), date(2026, 12, 31)), (date(2026, 11, 1), date(2026, 11, 12)),
                       (date(2026, 10, 20), date(2026, 12, 5))):
        flt = ReportFilter(start=start, end=end)
        assert await service.counts(flt, Q(), metrics) == await service.counts(flt, Q(ticket_id__gte=1), metrics)
    # the month rows follow a ticket's change like the day rows
    nov = ReportFilter(start=date(2026, 11, 1), end=date(2026, 11, 30))
    before = sum((await service.counts(nov, Q(), ("heat",)))["heat"].values())
    from app.reports import facts
    from app.reports.models import ReportTicketFact

    gone = await ReportTicketFact.filter(created_day__gte=FLT.start, created_day__lte=FLT.end).first()
    assert gone is not None
    await ReportTicketFact.filter(ticket_id=gone.ticket_id).delete()
    await facts.recompute_count_days([gone.created_day])
    assert sum((await service.counts(nov, Q(), ("heat",)))["heat"].values()) == before - 1


def _bucket_by_hand(fact: dict[str, Any], metric: str) -> int | None:
    """A fact's bucket of a metric, the rules of the module docstring written out here (not facts.bucket_sql, which
    builds the rows under test); None when the fact counts in no bucket."""
    if metric == "heat":
        return int(fact["created_weekday"]) * 100 + int(fact["created_hour"])
    if metric == "csat":
        return None if fact["csat"] is None else int(fact["csat"])
    if metric == "reason":
        order = ("keyword", "duration", "handoff", "staff", "api", "channel", "customer", "other")
        return order.index(fact["reason_group"]) if fact["reason_group"] in order else 7
    if metric.startswith("sla_"):
        outcome = fact[{"sla_first_response": "sla_first", "sla_next_response": "sla_next",
                        "sla_resolution": "sla_resolution"}[metric]]
        return None if outcome not in ("met", "breached") else int(fact["policy_id"] or 0) * 10 + (
            outcome == "breached")
    value = fact[f"{metric}_b"]
    return None if value is None else int(value)


async def _coarse_expected() -> dict[tuple[str, str, date, str, int], int]:
    """The week and month rows worked out from the facts themselves (no day rows in between)."""
    from app.reports.facts import MEASURES, week_start
    from app.reports.models import ReportTicketFact

    out: dict[tuple[str, str, date, str, int], int] = {}
    for fact in await ReportTicketFact.all().values():
        for metric, basis in MEASURES:
            day, b = fact[f"{basis}_day"], _bucket_by_hand(fact, metric)
            if day is None or b is None:
                continue
            slices = [("week", "month", ""), ("ch_w", "ch_m", fact["channel"])]
            if fact["group_id"] is not None:
                slices.append(("group_w", "group_m", str(fact["group_id"])))
                slices.append(("gch_w", "gch_m", f"{fact['group_id']}:{fact['channel']}"))
            for week_dim, month_dim, value in slices:
                for key in ((week_dim, value, week_start(day), metric, b),
                            (month_dim, value, day.replace(day=1), metric, b)):
                    out[key] = out.get(key, 0) + 1
    return out


async def _coarse_rows() -> dict[tuple[str, str, date, str, int], int]:
    from app.reports.facts import MEASURES
    from app.reports.models import ReportCount

    rows = await ReportCount.filter(dim__in=("week", "month", "group_w", "group_m", "ch_w", "ch_m", "gch_w", "gch_m"),
                                    metric__in=[m[0] for m in MEASURES]).values_list(
        "dim", "dim_value", "day", "metric", "bucket", "n")
    out: dict[tuple[str, str, date, str, int], int] = {}
    for dim, value, day, metric, b, n in rows:
        key = (str(dim), str(value), day, str(metric), int(b))
        assert key not in out, key  # one row per key
        out[key] = int(n)
    return out


async def test_week_and_month_rows_are_the_facts_summed_live_and_after_a_rebuild(org: dict[str, Any]) -> None:
    from app.reports import facts
    from app.reports.models import ReportTicketFact

    built = await _coarse_rows()
    # T1 and T2 (Tue 11-10) are in the week of Mon 11-09 and in November, for the desk and for G1
    assert built[("week", "", date(2026, 11, 9), "heat", 2 * 100 + 10)] == 1
    assert built[("group_w", str(org["g1"]), date(2026, 11, 9), "frt_wall", 600)] == 1
    assert built[("group_m", str(org["g1"]), date(2026, 11, 1), "csat", 5)] == 1
    assert built == await _coarse_expected()
    # live: a ticket moves to the other group, another one goes away; the days are recomputed as the refresh does
    t1 = await ReportTicketFact.get(ticket_id=org["ids"]["T1"])
    await ReportTicketFact.filter(ticket_id=t1.ticket_id).update(group_id=org["g2"])
    p1 = await ReportTicketFact.get(ticket_id=org["ids"]["P1"])
    await ReportTicketFact.filter(ticket_id=p1.ticket_id).delete()
    assert p1.resolved_day is not None and p1.rated_day is not None
    await facts.recompute_count_days([t1.created_day, p1.created_day, p1.resolved_day, p1.rated_day])
    live = await _coarse_rows()
    assert live == await _coarse_expected() != built
    assert ("group_w", str(org["g1"]), date(2026, 11, 9), "frt_wall", 600) not in live
    assert live[("group_w", str(org["g2"]), date(2026, 11, 9), "frt_wall", 600)] == 1
    # a rebuild gives the same rows; a rebuild of a few days re-sums their weeks and months (it repairs them)
    await facts.recompute_days(date(2026, 10, 1), date(2026, 12, 31))
    assert await _coarse_rows() == live
    from app.reports.models import ReportCount

    await ReportCount.filter(dim="group_m", day=date(2026, 11, 1)).update(n=99)
    await ReportCount.filter(dim="week", day=date(2026, 11, 9)).delete()
    await facts.recompute_days(date(2026, 11, 10), date(2026, 11, 11))
    assert await _coarse_rows() == live


async def test_a_period_is_read_as_months_weeks_and_edge_days_with_the_same_buckets(org: dict[str, Any]) -> None:
    from tortoise.expressions import Q

    from app.reports.facts import MEASURES

    # Sat 10-17 .. Wed 11-25: no whole month inside; the Mondays 10-19 .. 11-16 start whole weeks (the last ends Sun
    # 11-22); Sat 10-17 .. Sun 10-18 and Mon 11-23 .. Wed 11-25 are single days.
    # Wed 09-02 .. Mon 11-30: October and November whole; in September the weeks of 09-07 .. 09-21 and the days
    # 09-02 .. 09-06 and 09-28 .. 09-30
    assert service.period_cover(date(2026, 10, 17), date(2026, 11, 25)) == (
        [], [date(2026, 10, 19), date(2026, 10, 26), date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)],
        [(date(2026, 10, 17), date(2026, 10, 18)), (date(2026, 11, 23), date(2026, 11, 25))])
    assert service.period_cover(date(2026, 9, 2), date(2026, 11, 30)) == (
        [date(2026, 10, 1), date(2026, 11, 1)], [date(2026, 9, 7), date(2026, 9, 14), date(2026, 9, 21)],
        [(date(2026, 9, 2), date(2026, 9, 6)), (date(2026, 9, 28), date(2026, 9, 30))])
    metrics = tuple(m[0] for m in MEASURES)
    groups = [org["g1"], org["g2"]]
    for start, end in ((date(2026, 11, 9), date(2026, 11, 15)), (date(2026, 11, 2), date(2026, 11, 16)),
                       (date(2026, 10, 17), date(2026, 11, 25)), (date(2026, 9, 2), date(2026, 11, 30))):
        flt = ReportFilter(start=start, end=end)
        for g in ([org["g1"]], groups):
            # a group scope reads the group rows; the extra filter makes it group the facts instead
            assert await service.counts(flt, Q(group_id__in=g), metrics) == await service.counts(
                flt, Q(group_id__in=g, ticket_id__gte=1), metrics)
        from app.reports.models import ReportTicketFact

        # a channel over the desk reads the channel rows, over groups the (group, channel) rows: the same buckets
        channels = [str(c) for c in await ReportTicketFact.all().distinct().values_list("channel", flat=True)]
        assert len(set(channels)) >= 2
        for channel in sorted(set(channels)):
            narrow = replace(flt, channel=channel)
            for scope in (Q(), Q(group_id__in=[org["g1"]]), Q(group_id__in=groups)):
                assert service._count_slice(narrow, scope) is not None
                assert await service.counts(narrow, scope, metrics) == await service.counts(
                    narrow, scope & Q(ticket_id__gte=1), metrics)


async def test_percentiles_in_sql_are_the_nearest_ranks_of_the_histogram(org: dict[str, Any]) -> None:
    from tortoise.expressions import Q

    from app.reports.facts import MEASURES
    from app.reports.models import ReportTicketFact

    # the nearest rank in per mille: of 10 values the p90 is the 9th, of 11 the 10th (ceil(9.9)), of 1 the 1st
    assert service.histogram_rank({1: 8, 2: 1, 3: 1}, 0.9) == 2
    assert service.histogram_rank({1: 9, 2: 1, 3: 1}, 0.9) == 2
    assert service.histogram_rank({7: 1}, 0.9) == 7
    metrics = [m[0] for m in MEASURES if m[0] not in ("reason", "sla_first_response", "sla_next_response",
                                                       "sla_resolution")]
    channels = sorted({str(c) for c in await ReportTicketFact.all().values_list("channel", flat=True)})
    scopes = (Q(), Q(group_id__in=[org["g1"]]), Q(group_id__in=[org["g1"]]) | Q(agent_id=org["a2"]),
              Q(agent_id=org["a1"]))
    checked = 0
    for start, end in ((FLT.start, FLT.end), (date(2026, 9, 2), date(2026, 11, 30))):
        for flt in (ReportFilter(start=start, end=end),
                    *(ReportFilter(start=start, end=end, channel=c) for c in channels),
                    ReportFilter(start=start, end=end, agent_id=org["a1"])):
            for scope in scopes:
                hists = await service.counts(flt, scope, tuple(metrics))
                for metric in metrics:
                    got = await service.percentiles(flt, scope, metric, (1, 500, 900, 1000))
                    assert got == {p: service.histogram_rank(hists[metric], p / 1000) for p in (1, 500, 900, 1000)}
                    checked += got[500] is not None
    assert checked > 50  # most combinations have tickets: the comparison is not of empty histograms
