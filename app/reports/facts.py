"""Computing the rollup rows from the source tables: ticket facts, conversation facts, daily sums, channel days.

Each function recomputes its rows from scratch and replaces them, so running one twice leaves the same rows. Times
are read from the rows themselves (created_at, resolved_at, message times), never from the clock, so a rebuild of
last month gives what the live jobs gave then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from tortoise.expressions import Q
from tortoise.functions import Count, Sum
from tortoise.models import Model

from app import rows
from app.channels.models import ChannelAccount, InboundEvent
from app.channels.wecom_kf.models import KfSeen
from app.conversations.models import Conversation, Message
from app.outbox.models import OutboxMessage
from app.reports.models import (
    ReportChannelDay,
    ReportConversationFact,
    ReportCount,
    ReportDaily,
    ReportDailyAgent,
    ReportDailyGroup,
    ReportTicketFact,
)
from app.tickets import calendar as bizcal
from app.tickets.models import SlaEvent, SlaPolicy, Ticket, TicketEvent, TicketRating
from app.timeutil import CHINA, utcnow

#: intake reasons (the `created` TicketEvent's data.reason) -> the conversion reason the reports show
REASON_GROUPS = {
    "keyword": "keyword",
    "duration": "duration",
    "message_count": "duration",
    "human_request": "handoff",
    "staff": "staff",
    "api": "api",
    "every_message": "channel",
    "customer": "customer",
}
OPEN_STATUSES = ("new", "open", "pending")
DONE_STATUSES = ("resolved", "closed")
#: outbox rows that carry a message to a customer (staff cards and webhooks are not "delivery" to customers)
CUSTOMER_CHANNELS = ("wechat_mp", "wecom_kf", "email", "webchat")
TRIED = ("sent", "failed", "dead", "unknown", "sending")


def bucket(seconds: int | None) -> int | None:
    """A duration rounded up to its histogram bucket: whole minutes up to an hour, 5 minutes up to a day, hours
    beyond (medians and p90s are nearest-rank over these rounded values)."""
    if seconds is None:
        return None
    if seconds <= 0:
        return 0
    for limit, step in ((3600, 60), (86400, 300)):
        if seconds <= limit:
            return -(-seconds // step) * step
    return -(-seconds // 3600) * 3600


def reason_group(reason: str) -> str:
    """The conversion reason group of an intake reason (bot hand-offs are hand-offs)."""
    if reason.startswith("bot:"):
        return "handoff"
    return REASON_GROUPS.get(reason, "other")


def local_day(dt: datetime) -> date:
    """The Asia/Shanghai date of an instant."""
    return _aware(dt).astimezone(CHINA).date()


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at `start` and the midnight after `end`."""
    lo = datetime.combine(start, time(0), tzinfo=CHINA).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(0), tzinfo=CHINA).astimezone(UTC)
    return lo, hi


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _secs(a: datetime | None, b: datetime | None) -> int | None:
    if a is None or b is None:
        return None
    return max(0, int((_aware(b) - _aware(a)).total_seconds()))


def _biz(cal: bizcal.Calendar, a: datetime | None, b: datetime | None) -> int | None:
    if a is None or b is None:
        return None
    return max(0, int(cal.seconds_between(_aware(a), _aware(b))))


# ---- ticket facts ----------------------------------------------------------------------------------------------


#: a ticket fact as computed: the ReportTicketFact columns by field name (built and written without a model
#: instance, whose construction and bulk_create cost most of a refresh's CPU)
FactRow = dict[str, Any]


async def ticket_facts(ticket_ids: Sequence[int]) -> list[FactRow]:
    """Compute (unsaved) fact rows for the tickets that exist among `ticket_ids`."""
    if not ticket_ids:
        return []
    ids = list(ticket_ids)
    tickets = await Ticket.filter(id__in=ids).values(
        "id", "number", "channel_account_id", "conversation_id", "group_id", "assignee_id", "sla_policy_id",
        "priority", "status", "created_at", "first_responded_at", "resolved_at")
    if not tickets:
        return []
    account_ids = {t["channel_account_id"] for t in tickets if t["channel_account_id"]}
    kinds = dict(await ChannelAccount.filter(id__in=list(account_ids)).values_list("id", "kind")) if account_ids \
        else {}
    policies = {p.id: p for p in await SlaPolicy.all()}
    events: dict[int, list[dict[str, Any]]] = {}
    for e in await TicketEvent.filter(ticket_id__in=ids, kind__in=("created", "status_changed", "assigned")) \
            .order_by("id").values("ticket_id", "kind", "old", "new", "data", "created_at"):
        events.setdefault(e["ticket_id"], []).append(e)
    breaches: dict[int, set[str]] = {}
    escalations: dict[int, int] = {}
    for ticket_id, clock, kind in await SlaEvent.filter(ticket_id__in=ids, kind__not="warning").values_list(
            "ticket_id", "clock", "kind"):
        if kind == "breach":
            breaches.setdefault(ticket_id, set()).add(clock)
        elif str(kind).startswith("escalation"):
            escalations[ticket_id] = escalations.get(ticket_id, 0) + 1
    ratings = {r["ticket_id"]: r for r in await TicketRating.filter(ticket_id__in=ids).values(
        "ticket_id", "score", "at")}
    messages: dict[int, list[tuple[str, str, datetime]]] = {}
    for tid, direction, author, at in await Message.filter(ticket_id__in=ids, direction__in=("in", "out")) \
            .order_by("id").values_list("ticket_id", "direction", "author_kind", "created_at"):
        messages.setdefault(tid, []).append((direction, author, at))
    now = utcnow()
    out: list[FactRow] = []
    for t in tickets:
        cal = await bizcal.for_group(group_id=t["group_id"])
        out.append(_ticket_fact(t, cal=cal, kinds=kinds, policy=policies.get(t["sla_policy_id"] or 0),
                                events=events.get(t["id"], []), breaches=breaches.get(t["id"], set()),
                                escalations=escalations.get(t["id"], 0), rating=ratings.get(t["id"]),
                                messages=messages.get(t["id"], []), now=now))
    return out


def _ticket_fact(t: dict[str, Any], *, cal: bizcal.Calendar, kinds: dict[int, str], policy: SlaPolicy | None,
                 events: list[dict[str, Any]], breaches: set[str], escalations: int, rating: dict[str, Any] | None,
                 messages: list[tuple[str, str, datetime]], now: datetime) -> FactRow:
    created: datetime = _aware(t["created_at"])
    record = next((e["data"] or {} for e in events if e["kind"] == "created"), {})
    reason = str(record.get("reason") or "")
    source = str(record.get("source") or "")
    channel = kinds.get(t["channel_account_id"] or 0) or source or "other"
    reopened = sum(1 for e in events if e["kind"] == "status_changed" and e["old"] in DONE_STATUSES
                   and e["new"] in OPEN_STATUSES)
    agent = t["assignee_id"]
    assigned_at = created
    if agent is not None:
        for e in events:
            if e["kind"] == "assigned" and e["new"] == str(agent):
                assigned_at = _aware(e["created_at"])
    first = t["first_responded_at"]
    done = t["status"] in DONE_STATUSES and t["resolved_at"] is not None
    resolved = _aware(t["resolved_at"]) if done else None
    # next response: each wait starts at a customer message after a staff reply and ends at the next staff reply
    gaps_wall: list[int] = []
    gaps_biz: list[int] = []
    answered_once = False
    waiting: datetime | None = None
    replies = inbound = 0
    for direction, author, at in messages:
        if direction == "in":
            inbound += 1
            if answered_once and waiting is None:
                waiting = at
        elif author == "staff":
            replies += 1
            if waiting is not None:
                gaps_wall.append(_secs(waiting, at) or 0)
                gaps_biz.append(_biz(cal, waiting, at) or 0)
                waiting = None
            answered_once = True

    def clock(target: int | None, name: str, met: bool, running: bool) -> str | None:
        if target is None:
            return None
        if name in breaches:
            return "breached"
        if met:
            return "met"
        return "running" if running else None

    frt_wall, frt_business = _secs(created, first), _biz(cal, created, first)
    nrt_wall = sum(gaps_wall) // len(gaps_wall) if gaps_wall else None
    nrt_business = sum(gaps_biz) // len(gaps_biz) if gaps_biz else None
    resolution_wall, resolution_business = _secs(created, resolved), _biz(cal, created, resolved)
    handling = _secs(assigned_at, resolved) if agent is not None else None
    score = rating["score"] if rating else None
    rated_at = _aware(rating["at"]) if rating else None
    local = created.astimezone(CHINA)
    return dict(
        ticket_id=t["id"], number=t["number"], channel=channel[:32], account_id=t["channel_account_id"],
        conversation_id=t["conversation_id"], group_id=t["group_id"], agent_id=agent,
        policy_id=t["sla_policy_id"], priority=t["priority"], status=t["status"],
        is_open=t["status"] in OPEN_STATUSES, created_at=created, created_day=local.date(),
        created_hour=local.hour, created_weekday=local.isoweekday(),
        first_response_at=first, frt_wall=frt_wall, frt_business=frt_business, nrt_count=len(gaps_wall),
        nrt_wall=nrt_wall, nrt_business=nrt_business,
        resolved_at=resolved, resolved_day=local_day(resolved) if resolved else None,
        resolution_wall=resolution_wall, resolution_business=resolution_business, handling_wall=handling,
        frt_wall_b=bucket(frt_wall), frt_business_b=bucket(frt_business), nrt_wall_b=bucket(nrt_wall),
        nrt_business_b=bucket(nrt_business), resolution_wall_b=bucket(resolution_wall),
        resolution_business_b=bucket(resolution_business), handling_wall_b=bucket(handling),
        reopened=reopened,
        sla_first=clock(policy.first_response_minutes if policy else None, "first_response", first is not None,
                        first is None and not done),
        sla_next=clock(policy.next_response_minutes if policy else None, "next_response", bool(gaps_wall),
                       waiting is not None and not done),
        sla_resolution=clock(policy.resolution_minutes if policy else None, "resolution", done, not done),
        breached=bool(breaches), escalations=escalations, csat=score, rated_at=rated_at,
        rated_day=local_day(rated_at) if rated_at else None, reason=reason[:48], reason_group=reason_group(reason),
        handoff=reason[4:][:32] if reason.startswith("bot:") else None, replies=replies, customer_messages=inbound,
        computed_at=now,
    )


async def save_ticket_facts(ticket_ids: Sequence[int]) -> tuple[list[FactRow], list[FactRow]]:
    """Recompute and replace the facts of `ticket_ids` (a deleted ticket loses its fact); returns (old, new)."""
    ids = list(dict.fromkeys(ticket_ids))
    old: list[FactRow] = await ReportTicketFact.filter(ticket_id__in=ids).values()
    new = await ticket_facts(ids)
    await ReportTicketFact.filter(ticket_id__in=ids).delete()
    await rows.insert_rows(ReportTicketFact, new)
    return old, new


#: fact columns that no daily sum or count reads (the fact tables themselves serve the views and exports that show
#: them): a fact that changed in these alone is rewritten and moves no rollup row. A customer's every further message
#: changes them, and in a burst each refresh recounted the whole day for a batch of such messages
UNROLLED_TICKET = frozenset({"computed_at", "customer_messages"})
UNROLLED_CONVERSATION = frozenset({"computed_at", "messages_in", "messages_out"})


def _same(old: dict[str, Any] | None, new: dict[str, Any] | None, unrolled: frozenset[str]) -> bool:
    """Whether two facts of one ticket or conversation agree on every rolled-up column (None: no fact)."""
    if old is None or new is None:
        return old is new
    return all(old.get(k) == v for k, v in new.items() if k not in unrolled)


def moved(old: Iterable[FactRow], new: Iterable[FactRow]) -> tuple[list[FactRow], list[FactRow]]:
    """Of `save_ticket_facts`'s (old, new): those of the tickets whose rolled-up columns changed (a fact written or
    removed counts), the ones whose daily sums and counts need recomputing."""
    before = {f["ticket_id"]: f for f in old}
    after = {f["ticket_id"]: f for f in new}
    changed = [i for i in dict.fromkeys([*before, *after]) if not _same(before.get(i), after.get(i), UNROLLED_TICKET)]
    return [before[i] for i in changed if i in before], [after[i] for i in changed if i in after]


# ---- conversation facts ------------------------------------------------------------------------------------------


async def save_conversation_facts(conversation_ids: Sequence[int]) -> set[date]:
    """Recompute and replace the facts of `conversation_ids`; returns the days whose counts the change moves."""
    ids = list(dict.fromkeys(conversation_ids))
    if not ids:
        return set()
    old = {r["conversation_id"]: r for r in await ReportConversationFact.filter(conversation_id__in=ids).values()}
    convs = await Conversation.filter(id__in=ids).values("id", "channel_account_id", "customer_id", "started_at")
    account_ids = {c["channel_account_id"] for c in convs if c["channel_account_id"]}
    kinds = dict(await ChannelAccount.filter(id__in=list(account_ids)).values_list("id", "kind")) if account_ids \
        else {}
    counts: dict[int, dict[str, int]] = {}
    for conv_id, direction, author, n in await Message.filter(conversation_id__in=ids).annotate(
            n=Count("id")).group_by("conversation_id", "direction", "author_kind").values_list(
            "conversation_id", "direction", "author_kind", "n"):
        tally = counts.setdefault(conv_id, {"in": 0, "out": 0, "bot": 0})
        if direction == "in":
            tally["in"] += n
        elif direction == "out":
            tally["out"] += n
            if author == "bot":
                tally["bot"] += n
    first_ticket: dict[int, dict[str, Any]] = {}
    row: dict[str, Any]
    for row in await Ticket.filter(conversation_id__in=ids).order_by("id").values(
            "id", "number", "conversation_id", "group_id", "assignee_id"):
        first_ticket.setdefault(row["conversation_id"], row)
    reasons = dict(await TicketEvent.filter(
        ticket_id__in=[t["id"] for t in first_ticket.values()], kind="created").values_list("ticket_id", "data")) \
        if first_ticket else {}
    now = utcnow()
    new: dict[int, dict[str, Any]] = {}
    for c in convs:
        n = counts.get(c["id"], {"in": 0, "out": 0, "bot": 0})
        t = first_ticket.get(c["id"])
        reason = str((reasons.get(t["id"]) or {}).get("reason") or "") if t else ""
        started = _aware(c["started_at"])
        new[c["id"]] = dict(
            conversation_id=c["id"], channel=kinds.get(c["channel_account_id"] or 0, "other"),
            account_id=c["channel_account_id"], customer_id=c["customer_id"], started_at=started,
            day=local_day(started), messages_in=n["in"], messages_out=n["out"], bot_messages=n["bot"],
            ticket_id=t["id"] if t else None, ticket_number=t["number"] if t else None, reason=reason[:48],
            reason_group=reason_group(reason) if t else "", handoff=reason[4:][:32] if reason.startswith("bot:")
            else None, group_id=t["group_id"] if t else None, agent_id=t["assignee_id"] if t else None,
            bot_resolved=t is None and n["bot"] > 0, computed_at=now)
    await ReportConversationFact.filter(conversation_id__in=ids).delete()
    if new:
        await ReportConversationFact.bulk_create([ReportConversationFact(**r) for r in new.values()])
    return {f["day"] for i in ids if not _same(old.get(i), new.get(i), UNROLLED_CONVERSATION)
            for f in (old.get(i), new.get(i)) if f is not None}


# ---- daily sums ----------------------------------------------------------------------------------------------------

Key = tuple[date, str, int, int]
SUM_FIELDS = ("created", "reopened", "replies", "frt_n", "frt_business_sum", "frt_wall_sum", "sla_met",
              "sla_breached", "breached", "escalations", "resolved", "resolution_business_sum", "resolution_wall_sum",
              "handling_n", "handling_sum", "resolved_rated", "rated", "csat_sum", "csat_positive")


def fact_keys(facts: Iterable[FactRow]) -> set[Key]:
    """The daily-sum keys a set of facts contributes to (created, resolved and rated day)."""
    keys: set[Key] = set()
    for f in facts:
        for day in (f["created_day"], f["resolved_day"], f["rated_day"]):
            if day is not None:
                keys.add((day, f["channel"], f["group_id"] or 0, f["agent_id"] or 0))
    return keys


def _group_q(key: Key, day_field: str) -> Q:
    day, channel, group_id, agent_id = key
    match: dict[str, Any] = {day_field: day, "channel": channel, "group_id": group_id or None,
                             "agent_id": agent_id or None}
    return Q(**match)


async def _sums(q_created: Q, q_resolved: Q, q_rated: Q) -> dict[Key, dict[str, int]]:
    by: dict[Key, dict[str, int]] = {}

    def slot(row: dict[str, Any], day_field: str) -> dict[str, int]:
        key = (row[day_field], row["channel"], row["group_id"] or 0, row["agent_id"] or 0)
        return by.setdefault(key, dict.fromkeys(SUM_FIELDS, 0))

    # annotation names never equal a column name (tortoise resolves a filter on one through the annotation)
    created_annotations: dict[str, Any] = {
        "a_created": Count("ticket_id"), "a_reopened": Count("ticket_id", _filter=Q(reopened__gt=0)),
        "a_replies": Sum("replies"), "a_frt_n": Count("frt_business"), "a_frt_business_sum": Sum("frt_business"),
        "a_frt_wall_sum": Sum("frt_wall"), "a_breached": Count("ticket_id", _filter=Q(breached=True)),
        "a_escalations": Sum("escalations"),
        "m1": Count("ticket_id", _filter=Q(sla_first="met")), "m2": Count("ticket_id", _filter=Q(sla_next="met")),
        "m3": Count("ticket_id", _filter=Q(sla_resolution="met")),
        "b1": Count("ticket_id", _filter=Q(sla_first="breached")),
        "b2": Count("ticket_id", _filter=Q(sla_next="breached")),
        "b3": Count("ticket_id", _filter=Q(sla_resolution="breached")),
    }
    for row in await ReportTicketFact.filter(q_created).annotate(**created_annotations).group_by(
            "created_day", "channel", "group_id", "agent_id").values(
            "created_day", "channel", "group_id", "agent_id", *created_annotations):
        s = slot(row, "created_day")
        for f in ("created", "reopened", "replies", "frt_n", "frt_business_sum", "frt_wall_sum", "breached",
                  "escalations"):
            s[f] = int(row[f"a_{f}"] or 0)
        s["sla_met"] = int(row["m1"] or 0) + int(row["m2"] or 0) + int(row["m3"] or 0)
        s["sla_breached"] = int(row["b1"] or 0) + int(row["b2"] or 0) + int(row["b3"] or 0)
    for row in await ReportTicketFact.filter(q_resolved).annotate(
            a_resolved=Count("ticket_id"), rbs=Sum("resolution_business"), rws=Sum("resolution_wall"),
            hn=Count("handling_wall"), hs=Sum("handling_wall"), rr=Count("csat"),
    ).group_by("resolved_day", "channel", "group_id", "agent_id").values(
            "resolved_day", "channel", "group_id", "agent_id", "a_resolved", "rbs", "rws", "hn", "hs", "rr"):
        s = slot(row, "resolved_day")
        s["resolved"], s["resolution_business_sum"], s["resolution_wall_sum"] = (
            int(row["a_resolved"] or 0), int(row["rbs"] or 0), int(row["rws"] or 0))
        s["handling_n"], s["handling_sum"], s["resolved_rated"] = (
            int(row["hn"] or 0), int(row["hs"] or 0), int(row["rr"] or 0))
    for row in await ReportTicketFact.filter(q_rated).annotate(
            a_rated=Count("ticket_id"), cs=Sum("csat"), cp=Count("ticket_id", _filter=Q(csat__gte=4)),
    ).group_by("rated_day", "channel", "group_id", "agent_id").values(
            "rated_day", "channel", "group_id", "agent_id", "a_rated", "cs", "cp"):
        s = slot(row, "rated_day")
        s["rated"], s["csat_sum"], s["csat_positive"] = int(row["a_rated"] or 0), int(row["cs"] or 0), int(
            row["cp"] or 0)
    return by


async def _store(keys: Iterable[Key], sums: dict[Key, dict[str, int]], *, clear: bool = True) -> None:
    keys = set(keys) | set(sums)
    for day in {k[0] for k in keys} if clear else ():
        day_keys = [k for k in keys if k[0] == day]
        q = Q()
        for k in day_keys:
            q |= Q(channel=k[1], group_id=k[2], agent_id=k[3])
        await ReportDaily.filter(q, day=day).delete()
    rows = [ReportDaily(day=k[0], channel=k[1], group_id=k[2], agent_id=k[3], **v) for k, v in sums.items()
            if any(v.values())]
    if rows:
        await ReportDaily.bulk_create(rows)
    if clear:
        await _store_groups(keys)


#: the coarser daily sums kept beside ReportDaily: (table, the key columns it keeps)
COARSE: tuple[tuple[type[ReportDailyGroup] | type[ReportDailyAgent], tuple[str, ...]], ...] = (
    (ReportDailyGroup, ("day", "channel", "group_id")), (ReportDailyAgent, ("day", "agent_id")))
_KEY_INDEX = {"day": 0, "channel": 1, "group_id": 2, "agent_id": 3}


async def _store_groups(keys: set[Key]) -> None:
    """Recompute the coarser sums (per day, channel and group; per day and agent) of these keys from ReportDaily."""
    for table, columns in COARSE:
        grains = {tuple(k[_KEY_INDEX[c]] for c in columns) for k in keys}
        for day in sorted({g[0] for g in grains}):
            q = Q()
            for grain in (g for g in grains if g[0] == day):
                match: dict[str, Any] = dict(zip(columns[1:], grain[1:], strict=True))
                q |= Q(**match)
            await table.filter(q, day=day).delete()
            await _sum_coarse(ReportDaily.filter(q, day=day), table)


async def _sum_coarse(query: Any, only: type[Model] | None = None) -> None:
    sums = {f"s_{f}": Sum(f) for f in SUM_FIELDS}
    for table, columns in COARSE:
        if only is not None and table is not only:
            continue
        rows = [table(**{c: r[c] for c in columns}, **{f: int(r[f"s_{f}"] or 0) for f in SUM_FIELDS})
                for r in await query.annotate(**sums).group_by(*columns).values(*columns, *sums)]
        if rows:
            await table.bulk_create(rows, batch_size=5000)  # type: ignore[arg-type]


async def recompute_keys(keys: set[Key]) -> None:
    """Recompute the daily sums of these (day, channel, group, agent) keys from the ticket facts."""
    if not keys:
        return
    sums: dict[Key, dict[str, int]] = {}
    for chunk in _chunks(sorted(keys), 50):
        qs_c = [_group_q(k, "created_day") for k in chunk]
        qs_r = [_group_q(k, "resolved_day") for k in chunk]
        qs_t = [_group_q(k, "rated_day") for k in chunk]
        q_c, q_r, q_t = _any(qs_c), _any(qs_r), _any(qs_t)
        for key, value in (await _sums(q_c, q_r, q_t)).items():
            if key in keys:
                sums[key] = value
    await _store(keys, sums)


async def recompute_days(start: date, end: date) -> None:
    """Recompute every daily sum and count of the local days start..end (rebuild), a month per round."""
    lo = start
    while lo <= end:
        hi = min(end, lo + timedelta(days=30))
        sums = await _sums(Q(created_day__gte=lo, created_day__lte=hi), Q(resolved_day__gte=lo, resolved_day__lte=hi),
                           Q(rated_day__gte=lo, rated_day__lte=hi))
        await ReportDaily.filter(day__gte=lo, day__lte=hi).delete()
        for table, _ in COARSE:
            await table.filter(day__gte=lo, day__lte=hi).delete()
        await _store((), sums, clear=False)
        await _sum_coarse(ReportDaily.filter(day__gte=lo, day__lte=hi))
        await recompute_counts(lo, hi, live=False)
        lo = hi + timedelta(days=1)


def _any(qs: list[Q]) -> Q:
    q = qs[0]
    for other in qs[1:]:
        q |= other
    return q


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ---- counts (histograms and distributions) ----------------------------------------------------------------------

#: the conversion reason groups, numbered for ReportCount.bucket
REASON_ORDER = ("keyword", "duration", "handoff", "staff", "api", "channel", "customer", "other")
CLOCK_COLUMNS = (("first_response", "sla_first"), ("next_response", "sla_next"), ("resolution", "sla_resolution"))
OUTCOMES = ("met", "breached")
#: dim -> the fact columns its value is made of. The whole desk, each skill group, each channel and each (group,
#: channel) are rolled up (a lead's groups over 90 days: about a third as many bucket rows as facts, read from one
#: covering index); an agent's tickets are read from the facts' covering indexes (a few a day)
DIMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ()), ("group", ("group_id",)), ("channel", ("channel",)), ("gch", ("group_id", "channel")))


def dim_value(*values: object) -> str:
    """ReportCount.dim_value of a slice: its columns' values joined ("12:wecom_kf" for a group's channel)."""
    return ":".join(str(v) for v in values)


#: (metric, the day a ticket counts on) of every fact measure; `bucket_sql` gives each one's buckets
MEASURES: tuple[tuple[str, str], ...] = (
    ("frt_business", "created"), ("frt_wall", "created"), ("nrt_business", "created"), ("nrt_wall", "created"),
    ("resolution_business", "resolved"), ("resolution_wall", "resolved"), ("handling_wall", "resolved"),
    ("heat", "created"), ("csat", "rated"), ("reason", "created"),
    *((f"sla_{clock}", "created") for clock, _ in CLOCK_COLUMNS))


def bucket_sql(metric: str) -> tuple[str, str]:
    """(bucket expression, condition) of a measure in SQL over report_ticket_fact: the one definition of its
    buckets, read by a rebuild of the count rows and by the views that group the facts themselves."""
    if metric == "heat":
        return "created_weekday * 100 + created_hour", "created_weekday IS NOT NULL"
    if metric == "csat":
        return "csat", "csat IS NOT NULL"
    if metric == "reason":
        cases = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(REASON_ORDER))
        return f"CASE reason_group {cases} ELSE 7 END", "1 = 1"
    for clock, column in CLOCK_COLUMNS:
        if metric == f"sla_{clock}":
            outcomes = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(OUTCOMES))
            listed = ", ".join(f"'{name}'" for name in OUTCOMES)
            return f"COALESCE(policy_id, 0) * 10 + CASE {column} {outcomes} END", f"{column} IN ({listed})"
    return f"{metric}_b", f"{metric}_b IS NOT NULL"


def _dim_value_sql(dim_columns: tuple[str, ...], mysql: bool) -> str:
    """dim_value() in SQL: the columns as text joined by ':'."""
    if not dim_columns:
        return "''"
    parts = [f"CAST({c} AS CHAR)" if c.endswith("_id") else c for c in dim_columns]
    if len(parts) == 1:
        return parts[0]
    if mysql:  # MariaDB's || is OR unless PIPES_AS_CONCAT
        return "CONCAT(" + ", ':', ".join(parts) + ")"
    return " || ':' || ".join(parts)


async def recompute_counts(start: date, end: date, *, live: bool | None = None) -> None:
    """Recompute the ReportCount rows of the local days start..end from the ticket facts (one grouped query per
    measure; the slices are summed here). The week and month rows: a few days (the live refresh) move them by the
    difference between the days' old and new rows; a longer range, or a rebuild (live=False), re-sums every week and
    month it overlaps."""
    if live is None:
        live = (end - start).days < LIVE_DAYS
    old = await ReportCount.filter(dim__in=[g[0] for g in GRAINS], day__gte=start, day__lte=end).values_list(
        "dim", "dim_value", "day", "metric", "bucket", "n") if live else []
    await ReportCount.filter(dim__in=DAY_DIMS, day__gte=start, day__lte=end).delete()
    conn = ReportCount._meta.db
    mysql = conn.capabilities.dialect == "mysql"
    counts_table, facts_table = ReportCount._meta.db_table, ReportTicketFact._meta.db_table
    # counted in the database: a year of a million tickets is millions of (slice, day, bucket) rows, which cost
    # minutes to build as objects here and seconds as INSERT ... SELECT. Literals only: dims, metrics and columns are
    # this module's constants and days are dates (no placeholder style is common to MariaDB and SQLite)
    for metric, basis in MEASURES:
        day_col = f"{basis}_day"
        bucket, condition = bucket_sql(metric)
        for dim, dim_columns in DIMS:
            present = "".join(f" AND {c} IS NOT NULL" for c in dim_columns)
            await conn.execute_query(
                f"INSERT INTO {counts_table} (dim, dim_value, day, metric, bucket, n) "
                f"SELECT '{dim}', {_dim_value_sql(dim_columns, mysql)}, {day_col}, '{metric}', {bucket}, COUNT(*) "
                f"FROM {facts_table} WHERE {day_col} >= '{start.isoformat()}' AND {day_col} <= '{end.isoformat()}' "
                f"AND {condition}{present} GROUP BY 2, 3, 5")
    totals: dict[tuple[str, str, date, str, int], int] = {}
    await _conversation_counts(start, end, totals)
    if totals:
        await ReportCount.bulk_create([ReportCount(dim=k[0], dim_value=k[1], day=k[2], metric=k[3], bucket=k[4], n=n)
                                       for k, n in totals.items()], batch_size=5000)
    if live:
        new = await ReportCount.filter(dim__in=DAY_DIMS, day__gte=start, day__lte=end).values_list(
            "dim", "dim_value", "day", "metric", "bucket", "n")
        await _shift_grains(old, {(str(d), str(v), day, str(m), int(b)): int(n) for d, v, day, m, b, n in new})
    else:
        await _recompute_months(start, end)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def week_start(day: date) -> date:
    """The Monday of `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


#: the coarser count rows kept beside the day rows of a slice: (day-row dim, week dim, month dim). A week row's day is
#: its Monday, a month row's the 1st; both are sums of the slice's day rows (bucket by bucket), so a 90-day histogram
#: reads two month rows, a few week rows and at most six days at each edge per bucket instead of 90 day rows
GRAINS: tuple[tuple[str, str, str], ...] = (("", "week", "month"), ("group", "group_w", "group_m"),
                                            ("channel", "ch_w", "ch_m"), ("gch", "gch_w", "gch_m"))
#: the dims of day rows (counted from the facts and, for "" and "channel", the conversation facts)
DAY_DIMS = tuple(g[0] for g in GRAINS)
#: recomputing fewer days than this (the live refresh) shifts the week and month rows by the days' change
LIVE_DAYS = 7

CountKey = tuple[str, str, date, str, int]


def _coarse_keys(key: CountKey) -> list[CountKey]:
    dim, value, day, metric, b = key
    for day_dim, week_dim, month_dim in GRAINS:
        if dim == day_dim:
            return [(week_dim, value, week_start(day), metric, b), (month_dim, value, day.replace(day=1), metric, b)]
    return []


async def _shift_grains(old: Any, new: dict[CountKey, int]) -> None:
    """Move the week and month rows by (the days' new rows - their old rows): a live refresh changes a few buckets
    of a day, and re-summing a month of every group's day rows would cost a second per refresh."""
    delta: dict[CountKey, int] = {}
    for key, n in new.items():
        for coarse in _coarse_keys(key):
            delta[coarse] = delta.get(coarse, 0) + n
    for dim, value, day, metric, b, n in old:
        for coarse in _coarse_keys((dim, value, day, metric, int(b))):
            delta[coarse] = delta.get(coarse, 0) - int(n)
    by_slice: dict[tuple[str, date, str], dict[tuple[str, int], int]] = {}
    for (dim, value, first, metric, b), d in delta.items():
        if d:
            by_slice.setdefault((dim, first, metric), {})[(value, b)] = d
    stale: list[int] = []
    rows: list[ReportCount] = []
    for (dim, first, metric), changes in by_slice.items():
        have = {(v, int(b)): (i, int(n)) for i, v, b, n in await ReportCount.filter(
            dim=dim, day=first, metric=metric, dim_value__in=sorted({v for v, _ in changes}),
            bucket__in=sorted({b for _, b in changes})).values_list("id", "dim_value", "bucket", "n")}
        for (value, b), d in changes.items():
            row_id, n = have.get((value, b), (None, 0))
            if row_id is not None:
                stale.append(row_id)
            if n + d:
                rows.append(ReportCount(dim=dim, dim_value=value, day=first, metric=metric, bucket=b, n=n + d))
    if stale:
        await ReportCount.filter(id__in=stale).delete()
    if rows:
        await ReportCount.bulk_create(rows, batch_size=5000)


async def _recompute_months(start: date, end: date) -> None:
    """Re-sum the week and month rows (GRAINS) of every week and month that overlaps start..end from their day rows,
    in the database (a month of a slice's day rows is hundreds of thousands of rows at a million tickets a year)."""
    months = []
    month = start.replace(day=1)
    while month <= end:
        months.append(month)
        month = next_month(month)
    weeks = []
    week = week_start(start)
    while week <= end:
        weeks.append(week)
        week += timedelta(days=7)
    conn = ReportCount._meta.db
    table = ReportCount._meta.db_table
    for day_dim, week_dim, month_dim in GRAINS:
        for dim, firsts, after in ((month_dim, months, next_month), (week_dim, weeks, lambda d: d + timedelta(days=7))):
            await ReportCount.filter(dim=dim, day__in=firsts).delete()
            for first in firsts:
                # literals only: dims are this module's constants and days are dates (no placeholder style is
                # common to MariaDB and SQLite)
                await conn.execute_query(
                    f"INSERT INTO {table} (dim, dim_value, day, metric, bucket, n) "
                    f"SELECT '{dim}', dim_value, '{first.isoformat()}', metric, bucket, SUM(n) FROM {table} "
                    f"WHERE dim = '{day_dim}' AND day >= '{first.isoformat()}' AND day < '{after(first).isoformat()}' "
                    "GROUP BY dim_value, metric, bucket")


#: bucket numbers of the "conversations" count metric
CONV_ALL, CONV_CONVERTED, CONV_BOT, CONV_BOT_RESOLVED, CONV_HANDOFF = range(5)
#: the bot's hand-off reasons, numbered for the "handoff" count metric (anything else: the last number)
HANDOFF_ORDER = ("human_request", "bot_failed", "angry", "vip", "intake_complete", "intake_failed", "other")


async def _conversation_counts(start: date, end: date, totals: dict[tuple[str, str, date, str, int], int]) -> None:
    """The conversation figures (conversations, converted, bot, bot-resolved, hand-offs and their reasons) per day,
    over the whole desk and per channel: the only slices conversation figures have. A 90-day period has hundreds of
    thousands of conversations; these are a few rows a day."""
    grouped = ("day", "channel", "bot_resolved", "handoff")
    for r in await ReportConversationFact.filter(day__gte=start, day__lte=end).annotate(
            a_n=Count("conversation_id"), a_converted=Count("ticket_id"),
            a_bot=Count("conversation_id", _filter=Q(bot_messages__gt=0))).group_by(*grouped).values(
            *grouped, "a_n", "a_converted", "a_bot"):
        n = int(r["a_n"])
        values = {CONV_ALL: n, CONV_CONVERTED: int(r["a_converted"] or 0), CONV_BOT: int(r["a_bot"] or 0),
                  CONV_BOT_RESOLVED: n if r["bot_resolved"] else 0, CONV_HANDOFF: n if r["handoff"] else 0}
        handoff = r["handoff"]
        for dim, dim_value in (("", ""), ("channel", str(r["channel"]))):
            for b, v in values.items():
                if v:
                    key = (dim, dim_value, r["day"], "conversations", b)
                    totals[key] = totals.get(key, 0) + v
            if handoff:
                b = HANDOFF_ORDER.index(handoff) if handoff in HANDOFF_ORDER else len(HANDOFF_ORDER) - 1
                key = (dim, dim_value, r["day"], "handoff", b)
                totals[key] = totals.get(key, 0) + n


async def recompute_count_days(days: Iterable[date]) -> None:
    """Recompute the counts of these days (one pass per run of consecutive days)."""
    ordered = sorted(set(days))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + timedelta(days=1):
            j += 1
        await recompute_counts(ordered[i], ordered[j])
        i = j + 1


# ---- channel days ----------------------------------------------------------------------------------------------


def _slotter(by: dict[int, dict[str, int]]) -> Callable[[int | None], dict[str, int]]:
    def slot(account_id: int | None) -> dict[str, int]:
        return by.setdefault(account_id or 0, {
            "received": 0, "processed": 0, "failed": 0, "pending": 0, "out_attempted": 0, "out_sent": 0,
            "out_failed": 0, "receipts": 0, "receipts_ok": 0})
    return slot


async def recompute_channel_days(start: date, end: date) -> None:
    """Recompute the inbound/outbound counts per channel account for the local days start..end."""
    kinds = dict(await ChannelAccount.all().values_list("id", "kind"))
    await ReportChannelDay.filter(day__gte=start, day__lte=end).delete()
    # a rebuild from a date long ago starts at the first day anything was received or sent (ids grow with time)
    firsts = [await InboundEvent.all().order_by("received_at").first().values_list("received_at", flat=True),
              await KfSeen.all().order_by("id").first().values_list("created_at", flat=True),
              await OutboxMessage.all().order_by("id").first().values_list("created_at", flat=True)]
    known = [local_day(cast(datetime, f)) for f in firsts if f is not None]
    if not known:
        return
    start = max(start, min(known))
    kf_accounts = dict(await ChannelAccount.filter(kind="wecom_kf").values_list("key", "id"))
    day = start
    while day <= end:
        lo, hi = day_bounds(day, day)
        by: dict[int, dict[str, int]] = {}
        slot = _slotter(by)

        for account_id, status, n in await InboundEvent.filter(received_at__gte=lo, received_at__lt=hi).annotate(
                n=Count("id")).group_by("channel_account_id", "status").values_list(
                "channel_account_id", "status", "n"):
            s = slot(account_id)
            s["received"] += n
            if status in ("done", "ignored"):
                s["processed"] += n
            elif status == "failed":
                s["failed"] += n
            else:
                s["pending"] += n
        for open_kfid, n in await KfSeen.filter(created_at__gte=lo, created_at__lt=hi).annotate(
                n=Count("id")).group_by("open_kfid").values_list("open_kfid", "n"):
            s = slot(kf_accounts.get(open_kfid))
            s["received"] += n
            s["processed"] += n
        for account_id, status, kind, receipt, n in await OutboxMessage.filter(
                created_at__gte=lo, created_at__lt=hi, channel__in=CUSTOMER_CHANNELS).annotate(
                n=Count("id")).group_by("channel_account_id", "status", "kind", "delivery_state").values_list(
                "channel_account_id", "status", "kind", "delivery_state", "n"):
            s = slot(account_id)
            if status in TRIED:
                s["out_attempted"] += n
            if status == "sent":
                s["out_sent"] += n
            if status in ("failed", "dead"):
                s["out_failed"] += n
            if kind == "template_message" and receipt:
                s["receipts"] += n
                if receipt == "success":
                    s["receipts_ok"] += n
        await ReportChannelDay.filter(day=day).delete()
        rows = [ReportChannelDay(day=day, account_id=a, channel=kinds.get(a, "") if a else "", **v)
                for a, v in by.items()]
        if rows:
            await ReportChannelDay.bulk_create(rows)
        day += timedelta(days=1)
