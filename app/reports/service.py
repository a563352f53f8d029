"""The figures of the manager's console, read from the rollup tables (never from the ticket table).

Every section function takes the caller (`Actor`) and a `ReportFilter` (a period of local Asia/Shanghai dates,
optionally a channel, a skill group, an agent) and returns a `Section`: figures, each with the same figure over the
previous period of equal length, chart series and tables. Every chart segment carries a `Drill`, the filter that
lists exactly the tickets (or conversations) behind it.

Definitions (the tests in tests/app/reports/ work each of them out by hand):

- A ticket counts on its created day for volume, conversion, first/next response, SLA and reopening; on its resolved
  day for resolution time and handling time; on its rated day for CSAT average and share of 4-5. The CSAT response
  rate is rated ÷ resolved among the tickets resolved in the period.
- Median and p90 are nearest-rank: sort the n values ascending and take the value at rank ceil(p × n) (1-based),
  p = 0.5 or 0.9. No values: no figure. The values are durations rounded up to their bucket (whole minutes up to an
  hour, 5 minutes up to a day, whole hours beyond: `app.reports.facts.bucket`), so a 90-day period reads a few
  hundred histogram rows instead of every ticket.
- Business seconds are counted by the ticket's group calendar (app/tickets/calendar.py), wall seconds by the clock.
- Next response time of a ticket is the mean of its waits (a customer message after a staff reply, until the next
  staff reply); the median/p90 are over tickets.
- SLA attainment is met ÷ (met + breached) over every clock the ticket's policy sets (a clock still running counts
  in neither).
- 消息接收率 is processed ÷ received, where received counts the callbacks stored (every InboundEvent) and the kf
  messages pulled, and processed the callbacks done or ignored plus the pulled kf messages handled. The outbound
  delivery rate is sent ÷ attempted over customer-bound outbox rows; template receipts (TEMPLATESENDJOBFINISH) give
  their own success ÷ receipts.
- 工单转化率 is conversations that became a ticket ÷ conversations started in the period.
- Changes: `change` = value - previous (a ratio's change is in ratio units, 0.05 = 5 percentage points);
  `change_ratio` = change ÷ previous when previous is not 0.

Scope: an admin sees everything; a lead the tickets of the groups in their scope and the ones assigned to them; an
agent only their own (agent_id is forced to theirs). Channel-level sections (reception, bot) need admin or lead.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, cast

from tortoise.expressions import F, Q, RawSQL
from tortoise.functions import Count, Sum
from tortoise.queryset import QuerySet

from app.channels.models import ChannelAccount, InboundEvent
from app.db import read_connection, reads_replica
from app.errors import BadRequest, PermissionDenied
from app.kb.models import BotQuery
from app.reports.facts import (
    CONV_ALL,
    CONV_BOT,
    CONV_BOT_RESOLVED,
    CONV_CONVERTED,
    CONV_HANDOFF,
    GRAINS,
    HANDOFF_ORDER,
    MEASURES,
    REASON_ORDER,
    SUM_FIELDS,
    bucket_sql,
    day_bounds,
    dim_value,
    next_month,
)
from app.reports.models import (
    ReportChannelDay,
    ReportConversationFact,
    ReportCount,
    ReportDaily,
    ReportDailyAgent,
    ReportDailyGroup,
    ReportTicketFact,
)
from app.security.scope import Actor
from app.staff.models import SkillGroup, Staff
from app.tickets.calendar import WEEKDAY_NAMES
from app.tickets.models import SlaPolicy
from app.timeutil import CHINA, utcnow

MAX_DAYS = 400
DEFAULT_DAYS = 7
#: a callback still pending after this long is listed as lost
LOST_AFTER = timedelta(minutes=10)

CHANNEL_LABELS = {"wechat_mp": "公众号", "wecom_kf": "微信客服", "wecom_app": "企业微信", "email": "邮件",
                  "webchat": "网页聊天", "api": "API", "staff_h5": "员工创建", "customer_h5": "客户 H5",
                  "other": "其他"}
REASON_LABELS = {"keyword": "关键词", "duration": "时长", "handoff": "转人工", "staff": "员工创建", "api": "API",
                 "channel": "渠道策略", "customer": "客户自助", "other": "其他"}
HANDOFF_LABELS = {"human_request": "要求人工", "bot_failed": "多次未答", "angry": "情绪", "vip": "VIP",
                  "intake_complete": "已收集信息", "intake_failed": "信息未收集全"}
CLOCK_LABELS = {"first_response": "首次响应", "next_response": "再次响应", "resolution": "解决"}
CLOCK_FIELDS = {"first_response": "sla_first", "next_response": "sla_next", "resolution": "sla_resolution"}
WEEKDAY_LABELS = [f"周{day}" for day in WEEKDAY_NAMES]
AGE_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("lt1d", "1天内", 0, 1), ("1to3d", "1-3天", 1, 3), ("3to7d", "3-7天", 3, 7), ("gt7d", "7天以上", 7, None))
BASES = ("created", "resolved", "rated")
#: fact measure -> the day its tickets count on
MEASURE_BASIS = dict(MEASURES)


# ---- filters ---------------------------------------------------------------------------------------------------


def _date(params: Mapping[str, str], key: str) -> date | None:
    raw = params.get(key)
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise BadRequest(f"{key} 必须是 YYYY-MM-DD 格式的日期", code="invalid_parameter") from exc


def _int(params: Mapping[str, str], key: str, *, lo: int = 1, hi: int = 2**31 - 1) -> int | None:
    raw = params.get(key)
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError as exc:
        raise BadRequest(f"{key} 必须是整数", code="invalid_parameter") from exc
    if not lo <= value <= hi:
        raise BadRequest(f"{key} 必须在 {lo} 到 {hi} 之间", code="invalid_parameter")
    return value


def _choice(params: Mapping[str, str], key: str, allowed: tuple[str, ...] | frozenset[str]) -> str | None:
    raw = params.get(key)
    if raw in (None, ""):
        return None
    if raw not in allowed:
        raise BadRequest(f"{key} 必须是 {', '.join(sorted(allowed))} 之一", code="invalid_parameter")
    return str(raw)


def _bool(params: Mapping[str, str], key: str) -> bool | None:
    raw = params.get(key)
    if raw in (None, ""):
        return None
    if raw in ("1", "true"):
        return True
    if raw in ("0", "false"):
        return False
    raise BadRequest(f"{key} 必须是 1 或 0", code="invalid_parameter")


def _channel(params: Mapping[str, str]) -> str | None:
    raw = params.get("channel")
    if raw in (None, ""):
        return None
    value = str(raw)
    if len(value) > 32 or not value.replace("_", "").isalnum():
        raise BadRequest("channel 不是已知的渠道", code="invalid_parameter")
    return value


def _period(params: Mapping[str, str], today: date | None) -> tuple[date, date]:
    end = _date(params, "to") or today or utcnow().astimezone(CHINA).date()
    given = _date(params, "from")
    for day in (end, given):
        if day is not None and not 2000 <= day.year <= 2100:
            raise BadRequest("日期必须在 2000 年到 2100 年之间", code="invalid_period")
    start = given or end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise BadRequest("结束日期不能早于开始日期", code="invalid_period")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(f"统计周期最长 {MAX_DAYS} 天", code="invalid_period")
    return start, end


@dataclass(frozen=True)
class ReportFilter:
    """A period of local dates (both inclusive) and optional channel, skill group and agent."""

    start: date
    end: date
    channel: str | None = None
    group_id: int | None = None
    agent_id: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, today: date | None = None) -> ReportFilter:
        """Read from=, to=, channel=, group=, agent= (default: the 7 days ending today); 400 on bad values."""
        start, end = _period(params, today)
        return cls(start=start, end=end, channel=_channel(params), group_id=_int(params, "group"),
                   agent_id=_int(params, "agent"))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> ReportFilter:
        """The period of equal length right before this one."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    def to_params(self) -> dict[str, str]:
        """The query parameters that give this filter back."""
        out = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        if self.channel:
            out["channel"] = self.channel
        if self.group_id is not None:
            out["group"] = str(self.group_id)
        if self.agent_id is not None:
            out["agent"] = str(self.agent_id)
        return out


@dataclass(frozen=True)
class Drill:
    """The exact tickets (kind=ticket) or conversations behind a figure or a chart segment."""

    start: date
    end: date
    kind: str = "ticket"
    basis: str = "created"
    channel: str | None = None
    group_id: int | None = None
    agent_id: int | None = None
    reason: str | None = None
    hour: int | None = None
    weekday: int | None = None
    csat: int | None = None
    policy_id: int | None = None
    clock: str | None = None
    sla: str | None = None
    escalated: bool | None = None
    reopened: bool | None = None
    handoff: str | None = None
    backlog: bool | None = None
    age: str | None = None

    @classmethod
    def of(cls, flt: ReportFilter, **extra: Any) -> Drill:
        """The drill of a filter, narrowed by a segment."""
        return cls(start=flt.start, end=flt.end, channel=flt.channel, group_id=flt.group_id,
                   agent_id=flt.agent_id, **extra)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Drill:
        """Read the query parameters `to_params` writes; 400 on bad values."""
        start, end = _period(params, None)
        clock = _choice(params, "clock", tuple(CLOCK_FIELDS))
        return cls(
            start=start, end=end, kind=_choice(params, "kind", ("ticket", "conversation")) or "ticket",
            basis=_choice(params, "basis", BASES) or "created", channel=_channel(params),
            group_id=_int(params, "group"), agent_id=_int(params, "agent"),
            reason=_choice(params, "reason", tuple(REASON_LABELS)), hour=_int(params, "hour", lo=0, hi=23),
            weekday=_int(params, "weekday", lo=1, hi=7), csat=_int(params, "csat", lo=1, hi=5),
            policy_id=_int(params, "policy"), clock=clock, sla=_choice(params, "sla", ("met", "breached")),
            escalated=_bool(params, "escalated"), reopened=_bool(params, "reopened"),
            handoff=_choice(params, "handoff", (*HANDOFF_LABELS, "none")), backlog=_bool(params, "backlog"),
            age=_choice(params, "age", tuple(a[0] for a in AGE_BUCKETS)))

    def to_params(self) -> dict[str, str]:
        """Query parameters (only the set ones) for a link to the list."""
        names = {"start": "from", "end": "to", "group_id": "group", "agent_id": "agent", "policy_id": "policy"}
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "kind" and value == "ticket") or (f.name == "basis" and value == "created"):
                continue
            if isinstance(value, bool):
                value = "1" if value else "0"
            out[names.get(f.name, f.name)] = value.isoformat() if isinstance(value, date) else str(value)
        return out


# ---- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    value: float | None
    previous: float | None
    change: float | None
    change_ratio: float | None
    numerator: float | None = None
    denominator: float | None = None
    drill: Drill | None = None


@dataclass(frozen=True)
class Point:
    key: str
    label: str
    value: float | None
    drill: Drill | None = None
    previous: float | None = None


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    unit: str
    points: tuple[Point, ...]
    kind: str = "bar"


@dataclass(frozen=True)
class Table:
    key: str
    label: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    filter: ReportFilter
    figures: tuple[Figure, ...]
    series: tuple[Series, ...] = ()
    tables: tuple[Table, ...] = ()

    def figure(self, key: str) -> Figure:
        """The figure named `key`."""
        return next(f for f in self.figures if f.key == key)


@dataclass(frozen=True)
class FactRow:
    ticket_id: int | None
    number: str | None
    conversation_id: int | None
    channel: str
    group_id: int | None
    agent_id: int | None
    status: str
    created_at: datetime
    resolved_at: datetime | None
    frt_business: int | None
    resolution_business: int | None
    csat: int | None
    reason: str


@dataclass(frozen=True)
class DrillPage:
    total: int
    rows: tuple[FactRow, ...]


@dataclass(frozen=True)
class LostInbound:
    id: int
    account_id: int | None
    channel: str
    status: str
    attempts: int
    error: str
    received_at: datetime


def to_json(obj: Any) -> Any:
    """Any result of this module as JSON-able data (dates ISO, drills as query parameters)."""
    if isinstance(obj, Drill):
        return obj.to_params()
    if isinstance(obj, ReportFilter):
        return obj.to_params()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return obj


def figure(key: str, label: str, unit: str, value: float | None, previous: float | None, *,
           numerator: float | None = None, denominator: float | None = None, drill: Drill | None = None) -> Figure:
    """A figure with its change from the previous period."""
    change = value - previous if value is not None and previous is not None else None
    ratio = change / previous if change is not None and previous else None
    return Figure(key=key, label=label, unit=unit, value=value, previous=previous, change=change,
                  change_ratio=ratio, numerator=numerator, denominator=denominator, drill=drill)


def ratio(num: float | None, den: float | None) -> float | None:
    """num ÷ den, None when there is nothing to divide by."""
    return None if not den or num is None else num / den


def nearest_rank(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile: the ceil(p × n)-th smallest value (1-based); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def format_value(f: Figure) -> str:
    """A figure as people read it on a card."""
    if f.value is None:
        return "—"
    if f.unit == "ratio":
        return f"{f.value * 100:.1f}%"
    if f.unit == "seconds":
        minutes = int(f.value) // 60
        return f"{minutes // 60}小时{minutes % 60}分" if minutes >= 60 else f"{minutes}分钟"
    if f.unit == "score":
        return f"{f.value:.2f}"
    return str(int(f.value))


# ---- scope -------------------------------------------------------------------------------------------------------


def _is_agent(actor: Actor) -> bool:
    return actor.group_ids is not None and actor.role not in ("admin", "lead")


def scoped(actor: Actor, flt: ReportFilter) -> tuple[ReportFilter, Q]:
    """The filter an actor may use (an agent's is forced to themselves) and the row filter of their scope."""
    if actor.group_ids is None:
        return flt, Q()
    if _is_agent(actor):
        if flt.agent_id is not None and flt.agent_id != actor.staff_id:
            raise PermissionDenied("坐席只能查看自己的数据", code="reports_own_only")
        return replace(flt, agent_id=actor.staff_id if actor.staff_id is not None else -1), Q()
    groups = list(actor.group_ids) if actor.group_ids else [-1]
    if actor.staff_id is None:
        return flt, Q(group_id__in=groups)
    # two disjoint parts, each read by its own (group_id, day) / (agent_id, day) index: as one OR the database
    # reads the whole period's rows and filters them
    return flt, ScopeUnion(Q(group_id__in=groups), Q(agent_id=actor.staff_id) & (
        Q(group_id__not_in=groups) | Q(group_id__isnull=True)))


class ScopeUnion(Q):
    """A scope made of disjoint parts (a lead: their groups' rows, plus their own rows in other groups). As a Q it
    is their OR; the rollup readers run one query per part and add them up."""

    def __init__(self, *parts: Q) -> None:
        super().__init__(*parts, join_type="OR")
        self.parts = parts


def scope_parts(scope: Q) -> tuple[Q, ...]:
    """The disjoint parts of a scope (itself when it is one)."""
    return scope.parts if isinstance(scope, ScopeUnion) else (scope,)


def _q_columns(q: Q) -> set[str]:
    """The columns a Q filters on."""
    out = {key.split("__")[0] for key in q.filters}
    for child in q.children:
        out |= _q_columns(child)
    return out


def _add_sums(into: dict[Any, dict[str, int]], more: dict[Any, dict[str, int]]) -> dict[Any, dict[str, int]]:
    for key, sums in more.items():
        have = into.setdefault(key, dict.fromkeys(SUM_FIELDS, 0))
        for f in SUM_FIELDS:
            have[f] += sums[f]
    return into


def _require_lead(actor: Actor) -> None:
    if _is_agent(actor):
        raise PermissionDenied("只有管理员和组长可以查看渠道数据", code="reports_admin_only")


def _dims(flt: ReportFilter | Drill) -> Q:
    q = Q()
    if flt.channel:
        q &= Q(channel=flt.channel)
    if flt.group_id is not None:
        q &= Q(group_id=flt.group_id)
    if flt.agent_id is not None:
        q &= Q(agent_id=flt.agent_id)
    return q


def _fact_q(flt: ReportFilter | Drill, scope: Q, basis: str = "created") -> Q:
    day = f"{basis}_day"
    period: dict[str, Any] = {f"{day}__gte": flt.start, f"{day}__lte": flt.end}
    return Q(**period) & _dims(flt) & scope


async def daily_sums(flt: ReportFilter, scope: Q, group_by: str | None = None) -> dict[Any, dict[str, int]]:
    """Sums of the daily rows in the period (one entry under None, or one per value of `group_by`)."""
    parts = scope_parts(scope)
    if len(parts) > 1:
        union: dict[Any, dict[str, int]] = {}
        for more in await asyncio.gather(*(daily_sums(flt, part, group_by) for part in parts)):
            _add_sums(union, more)
        return union
    # without an agent in the filter, the scope or the grouping, the agents' rows are read added up already
    # without an agent in the filter, the scope or the grouping, the agents' rows are read added up already; the whole
    # desk's rows per agent (no channel, group or scope) are read added up over channels and groups
    columns = _q_columns(scope)
    table: type[ReportDaily] | type[ReportDailyGroup] | type[ReportDailyAgent] = ReportDaily
    if group_by != "agent_id" and flt.agent_id is None and "agent_id" not in columns:
        table = ReportDailyGroup
    elif group_by in (None, "day", "agent_id") and flt.channel is None and flt.group_id is None and not columns:
        table = ReportDailyAgent
    q = table.filter(Q(day__gte=flt.start, day__lte=flt.end) & _dims(flt) & scope)
    sums = {f"s_{f}": Sum(f) for f in SUM_FIELDS}
    if group_by is None:
        rows = await q.annotate(**sums).values(*sums)
        return {None: {f: int((rows[0] if rows else {}).get(f"s_{f}") or 0) for f in SUM_FIELDS}}
    out: dict[Any, dict[str, int]] = {}
    for row in await q.annotate(**sums).group_by(group_by).values(group_by, *sums):
        out[row[group_by]] = {f: int(row.get(f"s_{f}") or 0) for f in SUM_FIELDS}
    return out


async def _period_sums(flt: ReportFilter, scope: Q) -> tuple[dict[str, int], dict[str, int]]:
    """The period's sums and the previous period's, read side by side."""
    cur, prev = await asyncio.gather(daily_sums(flt, scope), daily_sums(flt.previous(), scope))
    return cur[None], prev[None]


def period_cover(start: date, end: date) -> tuple[list[date], list[date], list[tuple[date, date]]]:
    """start..end as the calendar months inside it, the ISO weeks (Monday first) inside what is left, and the
    ranges of single days left at the edges (at most six days each side of a week)."""
    months = []
    month = start if start.day == 1 else next_month(start)
    while next_month(month) - timedelta(days=1) <= end:
        months.append(month)
        month = next_month(month)
    rest = [(start, end)] if not months else [(start, months[0] - timedelta(days=1)), (next_month(months[-1]), end)]
    weeks: list[date] = []
    days: list[tuple[date, date]] = []
    for lo, hi in rest:
        if lo > hi:
            continue
        week = lo + timedelta(days=-lo.weekday() % 7)
        inside = []
        while week + timedelta(days=6) <= hi:
            inside.append(week)
            week += timedelta(days=7)
        if not inside:
            days.append((lo, hi))
            continue
        weeks += inside
        if lo < inside[0]:
            days.append((lo, inside[0] - timedelta(days=1)))
        if inside[-1] + timedelta(days=7) <= hi:
            days.append((inside[-1] + timedelta(days=7), hi))
    return months, weeks, days


def _grain_rows_q(start: date, end: date, dims: tuple[str, str, str], values: list[str]) -> Q:
    """A slice's count rows of start..end (facts.GRAINS: day, week and month dims): month rows for the calendar
    months inside, week rows for the weeks inside the rest, day rows for the days at the edges."""
    day_dim, week_dim, month_dim = dims
    months, weeks, days = period_cover(start, end)
    parts = [Q(dim=month_dim, dim_value__in=values, day__in=months)] if months else []
    if weeks:
        parts.append(Q(dim=week_dim, dim_value__in=values, day__in=weeks))
    parts += [Q(dim=day_dim, dim_value__in=values, day__gte=lo, day__lte=hi) for lo, hi in days]
    return _any_q(parts)


def _any_q(parts: list[Q]) -> Q:
    q = parts[0]
    for other in parts[1:]:
        q |= other
    return q


def _count_slice(flt: ReportFilter, part: Q) -> tuple[str, list[str]] | None:
    """The ReportCount slice (dim, values) that answers this filter within one scope part: the whole desk, skill
    groups (a group filter, a lead's groups), a channel, or groups' channel; None when the facts must (an agent: those
    days' facts are few and indexed)."""
    if flt.agent_id is not None or part.children:
        return None
    if not part.filters:
        groups = None if flt.group_id is None else [flt.group_id]
    elif set(part.filters) == {"group_id__in"}:
        groups = [int(g) for g in part.filters["group_id__in"]]
        if flt.group_id is not None:
            groups = [g for g in groups if g == flt.group_id]
        groups = groups or [-1]
    else:
        return None
    if groups is None:
        return ("", [""]) if flt.channel is None else ("channel", [flt.channel])
    if flt.channel is None:
        return "group", [dim_value(g) for g in groups]
    return "gch", [dim_value(g, flt.channel) for g in groups]


def _histogram_sources(flt: ReportFilter, scope: Q) -> Iterator[Q | Callable[[str], Q]]:
    """Where each part of the scope reads its histograms: the filter of its count rows when a rollup slice holds the
    part (`_count_slice`), else the filter of its ticket facts, given the day they count on (`_fact_q`)."""
    for part in scope_parts(scope):
        dim = _count_slice(flt, part)
        if dim is None:
            yield partial(_fact_q, flt, part)
        else:
            # whole calendar months from their month rows, whole weeks from week rows, the days at the edges
            yield _grain_rows_q(flt.start, flt.end, next(g for g in GRAINS if g[0] == dim[0]), dim[1])


def _bucket_rows(source: Q | Callable[[str], Q], metric: str) -> QuerySet[Any]:
    """A metric's tickets per bucket (b, a_n) from one `_histogram_sources` source: its count rows summed, or its
    facts grouped by the bucket `bucket_sql` defines (b is NULL for the facts it leaves out)."""
    if isinstance(source, Q):
        return ReportCount.filter(source, metric=metric).annotate(b=F("bucket"), a_n=Sum("n")).group_by("b")
    expr, condition = bucket_sql(metric)
    return ReportTicketFact.filter(source(MEASURE_BASIS[metric])).annotate(
        b=RawSQL(f"CASE WHEN {condition} THEN {expr} END"), a_n=Count("ticket_id")).group_by("b")


async def counts(flt: ReportFilter, scope: Q, metrics: tuple[str, ...]) -> dict[str, dict[int, int]]:
    """Tickets per bucket of each metric in the period (histograms, the heat map, CSAT, reasons, SLA outcomes):
    from the count rollup when it holds the slice, else grouped from the facts (the same buckets either way)."""
    out: dict[str, dict[int, int]] = {m: {} for m in metrics}
    queries: list[Any] = []
    jobs: list[str] = []
    for source in _histogram_sources(flt, scope):
        # a query per metric, run side by side: each one range of the count rows' covering index, or of the facts'
        # (group | agent, day, ...) indexes (app.reports.models)
        for metric in metrics if isinstance(source, Q) else [m for m in MEASURE_BASIS if m in out]:
            queries.append(_bucket_rows(source, metric).values_list("b", "a_n"))
            jobs.append(metric)
    # side by side on the pool's connections rather than one after another
    for metric, rows in zip(jobs, await asyncio.gather(*queries), strict=True):
        hist = out[metric]
        for b, n in rows:
            if b is not None:
                hist[int(b)] = hist.get(int(b), 0) + int(n or 0)
    return out


def histogram_rank(hist: dict[int, int], p: float) -> float | None:
    """The nearest-rank percentile of the values a histogram counts (bucket -> how many); ``p`` is taken in per
    mille, as `percentiles` takes it in SQL (0.9 * n in floating point can round past a whole rank)."""
    n = sum(hist.values())
    if not n:
        return None
    rank = max(1, -(-round(p * 1000) * n // 1000))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return None


#: the percentiles the dashboards show, per mille (median and p90)
MEDIAN, P90 = 500, 900


async def percentiles(flt: ReportFilter, scope: Q, metric: str, ranks: tuple[int, ...] = (MEDIAN, P90)
                      ) -> dict[int, float | None]:
    """Nearest-rank percentiles (per mille) of one measure's tickets in the period, worked out in the database: the
    same histogram `counts` reads (count rows where a slice holds the part, else the facts), but of its hundreds of
    buckets only the ranks' ones come back (parsing the rows was most of a section's time)."""
    # values inlined by tortoise's own quoting: the statement is one string around these subqueries
    parts = [_bucket_rows(source, metric).values("b", "a_n").sql(params_inline=True)
             for source in _histogram_sources(flt, scope)]
    wanted = " UNION ALL ".join(f"SELECT {int(r)} AS pm" for r in ranks)
    union = " UNION ALL ".join(parts)
    sql = ("SELECT r.pm AS pm, MIN(c.b) AS b FROM (SELECT g.b, SUM(g.n) OVER (ORDER BY g.b) AS cum, "
           f"SUM(g.n) OVER () AS total FROM (SELECT u.b, SUM(u.a_n) AS n FROM ({union}) u WHERE u.b IS NOT NULL "
           f"GROUP BY u.b) g) c JOIN ({wanted}) r ON c.cum * 1000 >= r.pm * c.total GROUP BY r.pm")
    rows = await read_connection().execute_query_dict(sql)
    found = {int(row["pm"]): float(row["b"]) for row in rows if row["b"] is not None}
    return {r: found.get(r) for r in ranks}


def _narrow(flt: ReportFilter, dim: str, value: Any) -> ReportFilter:
    """The filter narrowed to one group or agent (a table row's drill)."""
    return replace(flt, group_id=value or None) if dim == "group_id" else replace(flt, agent_id=value or None)


async def _names() -> tuple[dict[int, str], dict[int, str]]:
    groups = dict(await SkillGroup.all().values_list("id", "name"))
    staff = dict(await Staff.all().values_list("id", "name"))
    return groups, staff


# ---- sections ----------------------------------------------------------------------------------------------------


async def overview(*, actor: Actor, flt: ReportFilter) -> Section:
    """The key figures of the period (the weekly card sends these), read with a dozen queries."""
    flt, scope = scoped(actor, flt)
    prev_flt = flt.previous()
    figs: list[Figure] = []
    # every read at once: the section's time is its slowest query, not their sum
    ((cur, prev), backlog, pbacklog, daily), (frt, pfrt, res, pres) = await asyncio.gather(
        asyncio.gather(_period_sums(flt, scope), _backlog(flt, scope), _backlog(prev_flt, scope),
                       _daily_series(flt, scope)),
        asyncio.gather(*(percentiles(f, scope, metric, (MEDIAN,)) for metric in ("frt_business", "resolution_business")
                         for f in (flt, prev_flt))))
    if not _is_agent(actor):
        rec, prec, (c, t), (pc, pt) = await asyncio.gather(
            _reception_numbers(flt), _reception_numbers(prev_flt), _conversion_numbers(flt),
            _conversion_numbers(prev_flt))
        figs += [
            figure("reception_rate", "消息接收率", "ratio", ratio(rec["processed"], rec["received"]),
                   ratio(prec["processed"], prec["received"]), numerator=rec["processed"],
                   denominator=rec["received"]),
            figure("delivery_rate", "消息送达率", "ratio", ratio(rec["out_sent"], rec["out_attempted"]),
                   ratio(prec["out_sent"], prec["out_attempted"]), numerator=rec["out_sent"],
                   denominator=rec["out_attempted"]),
            figure("conversion_rate", "工单转化率", "ratio", ratio(c, t), ratio(pc, pt), numerator=c, denominator=t),
        ]
    figs += [
        figure("csat_avg", "满意度平均分", "score", ratio(cur["csat_sum"], cur["rated"]),
               ratio(prev["csat_sum"], prev["rated"]), numerator=cur["csat_sum"], denominator=cur["rated"],
               drill=Drill.of(flt, basis="rated")),
        figure("frt_business_median", "首次响应时长（工作时间，中位数）", "seconds",
               frt[MEDIAN], pfrt[MEDIAN],
               drill=Drill.of(flt)),
        figure("resolution_business_median", "解决时长（工作时间，中位数）", "seconds",
               res[MEDIAN], pres[MEDIAN],
               drill=Drill.of(flt, basis="resolved")),
        figure("sla_attainment", "SLA 达成率", "ratio", ratio(cur["sla_met"], cur["sla_met"] + cur["sla_breached"]),
               ratio(prev["sla_met"], prev["sla_met"] + prev["sla_breached"]), numerator=cur["sla_met"],
               denominator=cur["sla_met"] + cur["sla_breached"]),
        figure("created", "新建工单", "count", cur["created"], prev["created"], drill=Drill.of(flt)),
        figure("backlog", "本期未解决", "count", backlog, pbacklog, drill=Drill.of(flt, backlog=True)),
    ]
    return Section(key="overview", title="概览", filter=flt, figures=tuple(figs), series=(daily,))


async def _daily_series(flt: ReportFilter, scope: Q) -> Series:
    by_day = await daily_sums(flt, scope, "day")
    daily = []
    day = flt.start
    while day <= flt.end:
        daily.append(Point(key=day.isoformat(), label=f"{day.month}/{day.day}",
                           value=by_day.get(day, {}).get("created", 0),
                           drill=Drill.of(replace(flt, start=day, end=day))))
        day += timedelta(days=1)
    return Series(key="daily", label="每日新建工单", unit="count", points=tuple(daily), kind="line")


async def _reception_numbers(flt: ReportFilter) -> dict[str, int]:
    q = Q(day__gte=flt.start, day__lte=flt.end)
    if flt.channel:
        q &= Q(channel=flt.channel)
    names = ("received", "processed", "failed", "pending", "out_attempted", "out_sent", "out_failed", "receipts",
             "receipts_ok")
    rows = await ReportChannelDay.filter(q).annotate(**{f"s_{n}": Sum(n) for n in names}).values(
        *[f"s_{n}" for n in names])
    return {n: int((rows[0] if rows else {}).get(f"s_{n}") or 0) for n in names}


async def reception(*, actor: Actor, flt: ReportFilter) -> Section:
    """消息接收率 and the outbound delivery rate (per channel account; group and agent do not apply)."""
    _require_lead(actor)
    cur, prev = await _reception_numbers(flt), await _reception_numbers(flt.previous())
    figs = (
        figure("reception_rate", "消息接收率", "ratio", ratio(cur["processed"], cur["received"]),
               ratio(prev["processed"], prev["received"]), numerator=cur["processed"], denominator=cur["received"]),
        figure("received", "接收消息数", "count", cur["received"], prev["received"]),
        figure("failed", "处理失败数", "count", cur["failed"], prev["failed"]),
        figure("delivery_rate", "消息送达率", "ratio", ratio(cur["out_sent"], cur["out_attempted"]),
               ratio(prev["out_sent"], prev["out_attempted"]), numerator=cur["out_sent"],
               denominator=cur["out_attempted"]),
        figure("template_delivery_rate", "模板消息送达回执成功率", "ratio", ratio(cur["receipts_ok"], cur["receipts"]),
               ratio(prev["receipts_ok"], prev["receipts"]), numerator=cur["receipts_ok"],
               denominator=cur["receipts"]),
    )
    q = Q(day__gte=flt.start, day__lte=flt.end) & (Q(channel=flt.channel) if flt.channel else Q())
    accounts = dict(await ChannelAccount.all().values_list("id", "name"))
    rows = []
    for row in await ReportChannelDay.filter(q).annotate(
            r=Sum("received"), p=Sum("processed"), f=Sum("failed"), a=Sum("out_attempted"), s=Sum("out_sent")
    ).group_by("account_id", "channel").order_by("account_id").values("account_id", "channel", "r", "p", "f", "a",
                                                                       "s"):
        rows.append({"account": accounts.get(row["account_id"], "未知账号"),
                     "channel": CHANNEL_LABELS.get(row["channel"], row["channel"]), "received": int(row["r"] or 0),
                     "processed": int(row["p"] or 0), "failed": int(row["f"] or 0),
                     "reception_rate": ratio(row["p"], row["r"]), "attempted": int(row["a"] or 0),
                     "sent": int(row["s"] or 0), "delivery_rate": ratio(row["s"], row["a"])})
    table = Table(key="by_account", label="按渠道账号", columns=(
        ("account", "账号"), ("channel", "渠道"), ("received", "接收"), ("processed", "已处理"), ("failed", "失败"),
        ("reception_rate", "接收率"), ("attempted", "发送尝试"), ("sent", "已发送"), ("delivery_rate", "送达率")),
        rows=tuple(rows))
    return Section(key="reception", title="消息接收率", filter=flt, figures=figs, tables=(table,))


@reads_replica
async def lost_inbound(*, actor: Actor, flt: ReportFilter, limit: int = 100) -> tuple[LostInbound, ...]:
    """Callbacks that failed, or still wait after ten minutes, received in the period (newest first)."""
    _require_lead(actor)
    lo, hi = day_bounds(flt.start, flt.end)
    stuck = utcnow() - LOST_AFTER
    q = Q(received_at__gte=lo, received_at__lt=hi) & (Q(status="failed") | Q(status="pending", received_at__lt=stuck))
    kinds = dict(await ChannelAccount.all().values_list("id", "kind"))
    rows = await InboundEvent.filter(q).order_by("-id").limit(limit).values(
        "id", "channel_account_id", "status", "attempts", "error", "received_at")
    out = [LostInbound(id=r["id"], account_id=r["channel_account_id"], channel=kinds.get(r["channel_account_id"], ""),
                       status=r["status"], attempts=r["attempts"], error=(r["error"] or "")[:300],
                       received_at=r["received_at"]) for r in rows]
    return tuple(o for o in out if not flt.channel or o.channel == flt.channel)


async def _conversation_counts(flt: ReportFilter, metric: str) -> dict[int, int]:
    """A conversation count metric of the period (facts.CONV_* buckets, or hand-off reasons), whole desk or one
    channel: day rows of the count rollup, not the conversations."""
    dim = ("channel", flt.channel) if flt.channel else ("", "")
    out: dict[int, int] = {}
    for b, n in await ReportCount.filter(dim=dim[0], dim_value=dim[1], metric=metric, day__gte=flt.start,
                                         day__lte=flt.end).annotate(a_n=Sum("n")).group_by("bucket").values_list(
            "bucket", "a_n"):
        out[int(b)] = int(n or 0)
    return out


async def _conversion_numbers(flt: ReportFilter) -> tuple[int, int]:
    by = await _conversation_counts(flt, "conversations")
    return by.get(CONV_CONVERTED, 0), by.get(CONV_ALL, 0)


async def conversion(*, actor: Actor, flt: ReportFilter) -> Section:
    """工单转化率 (conversations that became tickets ÷ conversations) and tickets by conversion reason."""
    _require_lead(actor)
    flt, scope = scoped(actor, flt)
    (c, t), (pc, pt) = await _conversion_numbers(flt), await _conversion_numbers(flt.previous())
    figs = (figure("conversion_rate", "工单转化率", "ratio", ratio(c, t), ratio(pc, pt), numerator=c, denominator=t),
            figure("conversations", "会话数", "count", t, pt),
            figure("converted", "转为工单的会话", "count", c, pc))
    by = (await counts(flt, scope, ("reason",)))["reason"]
    points = tuple(Point(key=k, label=label, value=by.get(REASON_ORDER.index(k), 0), drill=Drill.of(flt, reason=k))
                   for k, label in REASON_LABELS.items())
    return Section(key="conversion", title="工单转化率", filter=flt, figures=figs,
                   series=(Series(key="by_reason", label="按转化原因（工单数）", unit="count", points=points,
                                  kind="pie"),))


async def satisfaction(*, actor: Actor, flt: ReportFilter) -> Section:
    """客户满意度: average, share of 4-5, response rate; distribution; by agent and by group."""
    flt, scope = scoped(actor, flt)
    (cur, prev), dists, (groups, staff), by_agent, by_group = await asyncio.gather(
        _period_sums(flt, scope), counts(flt, scope, ("csat",)), _names(), daily_sums(flt, scope, "agent_id"),
        daily_sums(flt, scope, "group_id"))
    rated_drill = Drill.of(flt, basis="rated")
    figs = (
        figure("csat_avg", "满意度平均分", "score", ratio(cur["csat_sum"], cur["rated"]),
               ratio(prev["csat_sum"], prev["rated"]), numerator=cur["csat_sum"], denominator=cur["rated"],
               drill=rated_drill),
        figure("csat_positive_share", "满意（4-5分）占比", "ratio", ratio(cur["csat_positive"], cur["rated"]),
               ratio(prev["csat_positive"], prev["rated"]), numerator=cur["csat_positive"], denominator=cur["rated"]),
        figure("csat_response_rate", "评价率", "ratio", ratio(cur["resolved_rated"], cur["resolved"]),
               ratio(prev["resolved_rated"], prev["resolved"]), numerator=cur["resolved_rated"],
               denominator=cur["resolved"]),
    )
    dist = dists["csat"]
    points = tuple(Point(key=str(s), label=f"{s}分", value=int(dist.get(s, 0)),
                         drill=Drill.of(flt, basis="rated", csat=s)) for s in range(1, 6))
    tables = []
    for dim, label, names, key, sums in (("agent_id", "按坐席", staff, "agent", by_agent),
                                         ("group_id", "按技能组", groups, "group", by_group)):
        rows = []
        for k, s in sorted(sums.items(), key=lambda kv: kv[0] or 0):
            if not s["rated"] and not s["resolved"]:
                continue
            rows.append({key: names.get(k, "未分配") if k else "未分配", "rated": s["rated"],
                         "csat_avg": ratio(s["csat_sum"], s["rated"]),
                         "csat_positive_share": ratio(s["csat_positive"], s["rated"]),
                         "csat_response_rate": ratio(s["resolved_rated"], s["resolved"]),
                         "drill": Drill.of(_narrow(flt, dim, k), basis="rated")})
        tables.append(Table(key=f"by_{key}", label=label, columns=(
            (key, "坐席" if key == "agent" else "技能组"), ("rated", "评价数"), ("csat_avg", "平均分"),
            ("csat_positive_share", "满意占比"), ("csat_response_rate", "评价率")), rows=tuple(rows)))
    return Section(key="satisfaction", title="客户满意度", filter=flt, figures=figs,
                   series=(Series(key="distribution", label="评分分布", unit="count", points=points),),
                   tables=tuple(tables))


TIME_FIGURES = (("frt", "首次响应", "created", "frt"), ("nrt", "再次响应", "created", "nrt"),
                ("resolution", "解决", "resolved", "resolution"))


async def _times(flt: ReportFilter, scope: Q) -> dict[str, float | None]:
    keys = [(key, clock, f"{column}_{clock}") for key, _, _, column in TIME_FIGURES for clock in ("business", "wall")]
    ranked = await asyncio.gather(*(percentiles(flt, scope, metric) for _, _, metric in keys))
    out: dict[str, float | None] = {}
    for (key, clock, _), got in zip(keys, ranked, strict=True):
        out[f"{key}_{clock}_median"] = got[MEDIAN]
        out[f"{key}_{clock}_p90"] = got[P90]
    return out


async def response(*, actor: Actor, flt: ReportFilter) -> Section:
    """First response, next response and resolution time: business and wall seconds, median and p90."""
    flt, scope = scoped(actor, flt)
    cur, prev, (groups, staff), by_group, by_agent = await asyncio.gather(
        _times(flt, scope), _times(flt.previous(), scope), _names(), daily_sums(flt, scope, "group_id"),
        daily_sums(flt, scope, "agent_id"))
    figs = []
    for key, label, basis, _ in TIME_FIGURES:
        for clock, clock_label in (("business", "工作时间"), ("wall", "自然时间")):
            for stat, stat_label in (("median", "中位数"), ("p90", "P90")):
                name = f"{key}_{clock}_{stat}"
                figs.append(figure(name, f"{label}时长（{clock_label}，{stat_label}）", "seconds", cur[name],
                                   prev[name], drill=Drill.of(flt, basis=basis)))
    tables = []
    for dim, label, names, key, sums in (("group_id", "按技能组", groups, "group", by_group),
                                         ("agent_id", "按坐席", staff, "agent", by_agent)):
        rows = []
        for k, s in sorted(sums.items(), key=lambda kv: kv[0] or 0):
            rows.append({key: names.get(k, "未分配") if k else "未分配", "created": s["created"],
                         "frt_business_avg": ratio(s["frt_business_sum"], s["frt_n"]),
                         "resolved": s["resolved"],
                         "resolution_business_avg": ratio(s["resolution_business_sum"], s["resolved"]),
                         "drill": Drill.of(_narrow(flt, dim, k))})
        tables.append(Table(key=f"by_{key}", label=label, columns=(
            (key, "坐席" if key == "agent" else "技能组"), ("created", "新建"),
            ("frt_business_avg", "平均首次响应（工作时间）"), ("resolved", "已解决"),
            ("resolution_business_avg", "平均解决时长（工作时间）")), rows=tuple(rows)))
    return Section(key="response", title="响应与解决时长", filter=flt, figures=tuple(figs), tables=tuple(tables))


async def sla(*, actor: Actor, flt: ReportFilter) -> Section:
    """SLA attainment per policy and clock, breaches and escalations (tickets created in the period)."""
    flt, scope = scoped(actor, flt)
    cur, prev = await _period_sums(flt, scope)
    figs = (
        figure("sla_attainment", "SLA 达成率", "ratio", ratio(cur["sla_met"], cur["sla_met"] + cur["sla_breached"]),
               ratio(prev["sla_met"], prev["sla_met"] + prev["sla_breached"]), numerator=cur["sla_met"],
               denominator=cur["sla_met"] + cur["sla_breached"]),
        figure("breached", "超时工单", "count", cur["breached"], prev["breached"],
               drill=Drill.of(flt, sla="breached")),
        figure("escalations", "升级次数", "count", cur["escalations"], prev["escalations"],
               drill=Drill.of(flt, escalated=True)),
    )
    policies = dict(await SlaPolicy.all().values_list("id", "name"))
    outcomes = await counts(flt, scope, tuple(f"sla_{clock}" for clock in CLOCK_FIELDS))
    per: dict[tuple[int, str], list[int]] = {}
    for clock in CLOCK_FIELDS:
        for b, n in outcomes[f"sla_{clock}"].items():
            per.setdefault((b // 10, clock), [0, 0])[b % 10] += n
    rows = []
    for (policy_id, clock), (met, breached) in sorted(per.items(), key=lambda kv: (
            kv[0][0], list(CLOCK_FIELDS).index(kv[0][1]))):
        if not policy_id:
            continue
        rows.append({"policy": policies.get(policy_id, str(policy_id)), "clock": CLOCK_LABELS[clock], "met": met,
                     "breached": breached, "attainment": ratio(met, met + breached),
                     "drill": Drill.of(flt, policy_id=policy_id, clock=clock, sla="breached")})
    return Section(key="sla", title="SLA 达成", filter=flt, figures=figs, tables=(Table(
        key="by_policy", label="按 SLA 策略与时钟", columns=(("policy", "策略"), ("clock", "时钟"), ("met", "达成"),
                                                          ("breached", "超时"), ("attainment", "达成率")),
        rows=tuple(rows)),))


async def _backlog(flt: ReportFilter, scope: Q) -> int:
    # created_at over the period's local days is created_day in the period: read through the (is_open, group | agent,
    # created_at, ...) indexes (the (group_id, channel, day) ones need a channel before the day)
    lo, hi = day_bounds(flt.start, flt.end)
    return sum(await asyncio.gather(*(ReportTicketFact.filter(
        Q(is_open=True, created_at__gte=lo, created_at__lt=hi) & _dims(flt) & part).count()
        for part in scope_parts(scope))))


async def _aged(flt: ReportFilter, scope: Q, now: datetime, lo: int, hi: int | None) -> int:
    """Open tickets created between `hi` and `lo` days ago (the backlog's age buckets)."""
    q = Q(created_at__lte=now - timedelta(days=lo))
    if hi is not None:
        q &= Q(created_at__gt=now - timedelta(days=hi))
    return sum(await asyncio.gather(*(ReportTicketFact.filter(Q(is_open=True) & _dims(flt) & part & q).count()
                                      for part in scope_parts(scope))))


async def volume(*, actor: Actor, flt: ReportFilter) -> Section:
    """Tickets created and resolved, reopened rate, backlog; by channel, by day, a weekday × hour heat map, backlog
    age."""
    flt, scope = scoped(actor, flt)
    now = utcnow()
    (cur, prev), backlog, pbacklog, by_channel, daily, heats, *aged = await asyncio.gather(
        _period_sums(flt, scope), _backlog(flt, scope), _backlog(flt.previous(), scope),
        daily_sums(flt, scope, "channel"), _daily_series(flt, scope), counts(flt, scope, ("heat",)),
        *(_aged(flt, scope, now, lo, hi) for _, _, lo, hi in AGE_BUCKETS))
    figs = (
        figure("created", "新建工单", "count", cur["created"], prev["created"], drill=Drill.of(flt)),
        figure("resolved", "已解决工单", "count", cur["resolved"], prev["resolved"],
               drill=Drill.of(flt, basis="resolved")),
        figure("reopened_rate", "重开率", "ratio", ratio(cur["reopened"], cur["created"]),
               ratio(prev["reopened"], prev["created"]), numerator=cur["reopened"], denominator=cur["created"],
               drill=Drill.of(flt, reopened=True)),
        figure("backlog", "本期未解决", "count", backlog, pbacklog, drill=Drill.of(flt, backlog=True)),
    )
    channel_points = tuple(Point(key=k, label=CHANNEL_LABELS.get(k, k), value=v["created"],
                                 drill=Drill.of(replace(flt, channel=k)))
                           for k, v in sorted(by_channel.items()) if v["created"])
    heat = heats["heat"]
    heat_points = tuple(Point(key=f"{w}:{h}", label=f"{WEEKDAY_LABELS[w - 1]} {h}时", value=heat.get(w * 100 + h, 0),
                              drill=Drill.of(flt, weekday=w, hour=h)) for w in range(1, 8) for h in range(24))
    ages = [Point(key=key, label=label, value=n, drill=Drill.of(flt, backlog=True, age=key))
            for (key, label, _, _), n in zip(AGE_BUCKETS, aged, strict=True)]
    return Section(key="volume", title="工单量", filter=flt, figures=figs, series=(
        daily,
        Series(key="by_channel", label="按渠道", unit="count", points=channel_points),
        Series(key="heatmap", label="星期 × 小时", unit="count", points=heat_points, kind="heatmap"),
        Series(key="backlog_age", label="积压工单（当前未解决）按等待时长", unit="count", points=tuple(ages)),
    ))


async def _bot_numbers(flt: ReportFilter) -> dict[str, int]:
    by = await _conversation_counts(flt, "conversations")
    return {"bot": by.get(CONV_BOT, 0), "resolved": by.get(CONV_BOT_RESOLVED, 0), "handoffs": by.get(CONV_HANDOFF, 0)}


@reads_replica
async def missed_questions(*, actor: Actor, flt: ReportFilter, limit: int = 50) -> tuple[tuple[str, int], ...]:
    """The questions the bot could not answer in the period, most asked first."""
    _require_lead(actor)
    lo, hi = day_bounds(flt.start, flt.end)
    q = BotQuery.filter(created_at__gte=lo, created_at__lt=hi, outcome="no_match")
    if flt.channel:
        q = q.filter(channel=flt.channel)
    rows = await q.annotate(n=Count("id")).group_by("text").order_by("-n", "text").limit(limit).values_list(
        "text", "n")
    return tuple((str(t), int(n)) for t, n in rows)


async def bot(*, actor: Actor, flt: ReportFilter) -> Section:
    """The bot: conversations it answered without a person, hand-offs and why, the questions it missed."""
    _require_lead(actor)
    cur, prev = await _bot_numbers(flt), await _bot_numbers(flt.previous())
    figs = (
        figure("bot_conversations", "机器人接待会话", "count", cur["bot"], prev["bot"]),
        figure("bot_resolved", "机器人独立解决", "count", cur["resolved"], prev["resolved"],
               drill=Drill.of(flt, kind="conversation", handoff="none")),
        figure("bot_resolution_rate", "机器人解决率", "ratio", ratio(cur["resolved"], cur["bot"]),
               ratio(prev["resolved"], prev["bot"]), numerator=cur["resolved"], denominator=cur["bot"]),
        figure("bot_handoffs", "转人工", "count", cur["handoffs"], prev["handoffs"]),
    )
    by = await _conversation_counts(flt, "handoff")
    points = tuple(Point(key=k, label=label, value=by.get(HANDOFF_ORDER.index(k), 0), drill=Drill.of(flt, handoff=k))
                   for k, label in HANDOFF_LABELS.items())
    missed = await missed_questions(actor=actor, flt=flt, limit=20)
    return Section(key="bot", title="机器人", filter=flt, figures=figs, series=(
        Series(key="handoff_reasons", label="转人工原因", unit="count", points=points, kind="pie"),), tables=(
        Table(key="missed", label="未能回答的问题", columns=(("text", "问题"), ("count", "次数")),
              rows=tuple({"text": t, "count": n} for t, n in missed)),))


async def agents(*, actor: Actor, flt: ReportFilter) -> Section:
    """Agent workload and handling time."""
    flt, scope = scoped(actor, flt)
    (cur, prev), (_, staff), by_agent = await asyncio.gather(_period_sums(flt, scope), _names(),
                                                             daily_sums(flt, scope, "agent_id"))
    figs = (
        figure("handled", "解决工单", "count", cur["resolved"], prev["resolved"],
               drill=Drill.of(flt, basis="resolved")),
        figure("replies", "回复数", "count", cur["replies"], prev["replies"]),
        figure("handling_avg", "平均处理时长", "seconds", ratio(cur["handling_sum"], cur["handling_n"]),
               ratio(prev["handling_sum"], prev["handling_n"])),
    )
    rows = []
    for k, s in sorted(by_agent.items(), key=lambda kv: kv[0] or 0):
        if not k:
            continue
        rows.append({"agent": staff.get(k, str(k)), "assigned": s["created"], "resolved": s["resolved"],
                     "replies": s["replies"], "frt_business_avg": ratio(s["frt_business_sum"], s["frt_n"]),
                     "handling_avg": ratio(s["handling_sum"], s["handling_n"]),
                     "csat_avg": ratio(s["csat_sum"], s["rated"]), "drill": Drill.of(replace(flt, agent_id=k))})
    return Section(key="agents", title="坐席工作量", filter=flt, figures=figs, tables=(Table(
        key="by_agent", label="按坐席", columns=(
            ("agent", "坐席"), ("assigned", "新建并分配"), ("resolved", "解决"), ("replies", "回复"),
            ("frt_business_avg", "平均首次响应"), ("handling_avg", "平均处理时长"), ("csat_avg", "满意度")),
        rows=tuple(rows)),))


SectionFn = Callable[..., Awaitable[Section]]
SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "概览"), ("reception", "消息接收率"), ("conversion", "工单转化率"), ("satisfaction", "客户满意度"),
    ("response", "响应与解决时长"), ("sla", "SLA 达成"), ("volume", "工单量"), ("bot", "机器人"),
    ("agents", "坐席工作量"))
_FUNCTIONS: dict[str, SectionFn] = {"overview": overview, "reception": reception, "conversion": conversion,
                                     "satisfaction": satisfaction, "response": response, "sla": sla,
                                     "volume": volume, "bot": bot, "agents": agents}


@reads_replica
async def section(*, actor: Actor, flt: ReportFilter, name: str) -> Section:
    """One section by its key (SECTIONS)."""
    return await _FUNCTIONS[name](actor=actor, flt=flt)


# ---- drill-down --------------------------------------------------------------------------------------------------


def drill_q(drill: Drill, scope: Q) -> Q:
    """The fact filter of a drill (ticket facts, or conversation facts for kind=conversation)."""
    if drill.kind == "conversation":
        q = Q(day__gte=drill.start, day__lte=drill.end) & _dims(drill) & scope
        if drill.handoff == "none":
            q &= Q(bot_resolved=True)
        elif drill.handoff:
            q &= Q(handoff=drill.handoff)
        if drill.reason:
            q &= Q(reason_group=drill.reason)
        return q
    q = _fact_q(drill, scope, drill.basis)
    if drill.reason:
        q &= Q(reason_group=drill.reason)
    if drill.hour is not None:
        q &= Q(created_hour=drill.hour)
    if drill.weekday is not None:
        q &= Q(created_weekday=drill.weekday)
    if drill.csat is not None:
        q &= Q(csat=drill.csat)
    if drill.policy_id is not None:
        q &= Q(policy_id=drill.policy_id)
    if drill.sla:
        if drill.clock:
            q &= Q(**{CLOCK_FIELDS[drill.clock]: drill.sla})
        else:
            q &= Q(sla_first=drill.sla) | Q(sla_next=drill.sla) | Q(sla_resolution=drill.sla)
    if drill.escalated is not None:
        q &= Q(escalations__gt=0) if drill.escalated else Q(escalations=0)
    if drill.reopened is not None:
        q &= Q(reopened__gt=0) if drill.reopened else Q(reopened=0)
    if drill.handoff and drill.handoff != "none":
        q &= Q(handoff=drill.handoff)
    if drill.backlog is not None:
        q &= Q(is_open=drill.backlog)
    if drill.age:
        _, _, lo, hi = next(a for a in AGE_BUCKETS if a[0] == drill.age)
        now = utcnow()
        q &= Q(created_at__lte=now - timedelta(days=lo))
        if hi is not None:
            q &= Q(created_at__gt=now - timedelta(days=hi))
        if drill.backlog is None:
            q &= Q(is_open=True)
    return q


def drill_scope(actor: Actor, drill: Drill) -> tuple[Drill, Q]:
    """The drill an actor may use (an agent's narrowed to themselves) and the row filter of their scope."""
    flt, scope = scoped(actor, ReportFilter(start=drill.start, end=drill.end, channel=drill.channel,
                                            group_id=drill.group_id, agent_id=drill.agent_id))
    if drill.kind == "conversation":
        _require_lead(actor)
    return replace(drill, agent_id=flt.agent_id), scope


@reads_replica
async def drill_ticket_ids(*, actor: Actor, drill: Drill, limit: int | None = None) -> list[int]:
    """The ids of exactly the tickets behind a drill (the caller's scope applied), newest first."""
    drill, scope = drill_scope(actor, drill)
    if drill.kind == "conversation":
        query = ReportConversationFact.filter(drill_q(drill, scope), ticket_id__not_isnull=True).order_by(
            "-conversation_id")
        ids = await (query.limit(limit) if limit else query).values_list("ticket_id", flat=True)
        return [int(cast(Any, i)) for i in ids]
    tq = ReportTicketFact.filter(drill_q(drill, scope)).order_by("-ticket_id")
    return [int(cast(Any, i)) for i in await (tq.limit(limit) if limit else tq).values_list("ticket_id", flat=True)]


@reads_replica
async def drill_page(*, actor: Actor, drill: Drill, limit: int = 50, offset: int = 0) -> DrillPage:
    """One page of the tickets (or conversations) behind a drill, newest first, with the total."""
    drill, scope = drill_scope(actor, drill)
    if drill.kind == "conversation":
        cq = ReportConversationFact.filter(drill_q(drill, scope))
        total = await cq.count()
        rows = [FactRow(ticket_id=c.ticket_id, number=c.ticket_number, conversation_id=c.conversation_id,
                        channel=c.channel, group_id=c.group_id, agent_id=c.agent_id,
                        status="bot_resolved" if c.bot_resolved else ("ticket" if c.ticket_id else "open"),
                        created_at=c.started_at, resolved_at=None, frt_business=None, resolution_business=None,
                        csat=None, reason=c.reason)
                for c in await cq.order_by("-conversation_id").offset(offset).limit(limit)]
        return DrillPage(total=total, rows=tuple(rows))
    tq = ReportTicketFact.filter(drill_q(drill, scope))
    total = await tq.count()
    facts = await tq.order_by("-ticket_id").offset(offset).limit(limit)
    return DrillPage(total=total, rows=tuple(FactRow(
        ticket_id=f.ticket_id, number=f.number, conversation_id=f.conversation_id, channel=f.channel,
        group_id=f.group_id, agent_id=f.agent_id, status=f.status, created_at=f.created_at,
        resolved_at=f.resolved_at, frt_business=f.frt_business, resolution_business=f.resolution_business,
        csat=f.csat, reason=f.reason) for f in facts))
