"""Dashboard queries over a large seeded dataset on MariaDB, beside the same figures computed by scanning the ticket
table; rollup throughput beside the rate tickets are created.

    python -m bench.reports [--tickets 1000000] [--messages-per-ticket 5] [--days 365] [--repeat 30] [--scan-repeat 5]
                            [--reuse [--recompute]] [--seed-only] [--database gongdan_bench_reports]
                            [--buffer-pool-mb 4096] [--output bench/results/reports.json]

Builds a database of its own (`gongdan_bench_reports`, schema from the models). The seeder writes tab-separated files
(/tmp/<database>/) and loads them with LOAD DATA LOCAL INFILE, every production index in place: N tickets over
`--days` days (a year's growth, quiet weekends, the desk's hours), weighted channels, 20 skill groups of uneven size
with 10 agents each (one ticket in 20 goes to an agent of another group), lognormal first responses and resolutions,
SLA outcomes from the business-time durations, reopenings, ratings, the intake reason on each `created` event,
N × `--messages-per-ticket` messages, and the ticket and conversation facts (plus conversations the bot finished).
1M tickets / 5M messages: about 8 minutes to write the files, 5 to load them, then the daily sums and counts.
`--reuse` keeps a database an earlier run seeded with as many tickets (new tables created, the report tables'
indexes brought to the models', `--recompute` rebuilds the daily sums and counts from the facts).
Then:

1. rebuild: ticket facts recomputed from the source rows by `app.reports.facts.save_ticket_facts` (tickets/s);
2. dashboards, for a 90-day period in four views (the admin's whole desk; a lead of three mid-sized groups plus
   their own tickets; that lead with a channel filter; that lead with an agent filter): every section function
   `--repeat` times (p50/p99 ms, whole sections: every figure, series and table with its previous period), and three
   single figures (created count, first-response median, CSAT average) from the rollups beside the same figures
   computed by scanning the ticket table in the same run, with a check that both give the same numbers;
3. throughput: tickets created through `app.tickets.service.create` with the report listener (the intake rate one
   process makes), then `app.reports.jobs.refresh` draining those events (events/s); also the seeded year's busiest
   hour in messages per second. The load average is printed with each view (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomysql
from tortoise import Tortoise

from app.db import MODEL_MODULES
from app.reports import facts
from app.reports.service import histogram_rank
from app.security.scope import SYSTEM, Actor
from app.tickets import calendar as bizcal
from app.timeutil import CHINA, set_clock

DB = "gongdan_bench_reports"
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # noon in Shanghai
GROUPS = 20
AGENTS = 200
CHANNEL_WEIGHTS = (("wechat_mp", 35), ("wecom_kf", 30), ("webchat", 15), ("email", 10), ("api", 10))
REASON_WEIGHTS = (("keyword", 22), ("duration", 12), ("human_request", 25), ("bot:angry", 4), ("bot:bot_failed", 8),
                  ("bot:vip", 2), ("staff", 12), ("api", 8), ("every_message", 7))
#: local hour of day -> relative ticket volume (a Chinese desk: the morning and afternoon peaks, quiet nights)
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 14, 20, 24, 22, 14, 16, 22, 22, 20, 16, 12, 10, 9, 7, 4, 2)


@dataclass
class Config:
    tickets: int = 1_000_000
    messages_per_ticket: int = 5
    days: int = 365
    repeat: int = 30
    scan_repeat: int = 5
    create: int = 300
    rebuild_sample: int = 5000
    mysql: str = "mysql://root:@127.0.0.1:3306/"
    database: str = DB
    output: Path | None = None
    workdir: Path = Path("/tmp")
    reuse: bool = False
    recompute: bool = False
    seed_only: bool = False
    #: InnoDB buffer pool for the run (MiB; 0: leave the server's), given back afterwards
    buffer_pool_mb: int = 4096
    extra: dict[str, Any] = field(default_factory=dict)


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


async def _prepare(cfg: Config) -> None:
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        # asked first: DROP ... IF EXISTS of a missing database is a warning (an error under pytest)
        await cur.execute(f"SHOW DATABASES LIKE '{cfg.database}'")
        if await cur.fetchall():
            await cur.execute(f"DROP DATABASE {cfg.database}")
        await cur.execute(f"CREATE DATABASE {cfg.database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    await Tortoise.init(db_url=f"{cfg.mysql}{cfg.database}?maxsize=8", modules={"gongdan": MODEL_MODULES},
                        _enable_global_fallback=True)
    await Tortoise.generate_schemas()


async def _reused(cfg: Config) -> dict[str, Any] | None:
    """Open a database seeded by an earlier run with as many tickets (None: seed afresh). New tables are created
    and the report tables' indexes brought to the models' (what the migration will do)."""
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"SHOW DATABASES LIKE '{cfg.database}'")
        exists = bool(await cur.fetchall())
    conn.close()
    if not exists:
        return None
    await Tortoise.init(db_url=f"{cfg.mysql}{cfg.database}?maxsize=8", modules={"gongdan": MODEL_MODULES},
                        _enable_global_fallback=True)
    db = Tortoise.get_connection("default")
    try:
        n = (await db.execute_query_dict("SELECT COUNT(*) AS n FROM report_ticket_fact"))[0]["n"]
    except Exception:
        n = 0
    if n < cfg.tickets:
        await Tortoise.close_connections()
        return None
    await Tortoise.generate_schemas(safe=True)
    await _sync_indexes()
    messages = (await db.execute_query_dict("SELECT COUNT(*) AS n FROM message"))[0]["n"]
    return {"tickets": int(n), "messages": int(messages), "reused": True}


async def _sync_indexes() -> None:
    """Add the report tables' model indexes the database lacks and drop the ones the models no longer have."""
    import re

    from tortoise.utils import get_schema_sql

    db = Tortoise.get_connection("default")
    wanted: dict[str, dict[str, str]] = {}
    table = ""
    for line in get_schema_sql(db, safe=False).splitlines():
        m = re.match(r"CREATE TABLE `(\w+)`", line)
        if m:
            table = m.group(1)
            continue
        m = re.match(r"\s*(UNIQUE )?KEY `(\w+)` \(([^)]*)\)", line)
        if m and table.startswith("report_"):
            wanted.setdefault(table, {})[m.group(2)] = f"{m.group(1) or ''}INDEX `{m.group(2)}` ({m.group(3)})"
    for table, indexes in wanted.items():
        have = {r["Key_name"] for r in await db.execute_query_dict(f"SHOW INDEX FROM {table}")} - {"PRIMARY"}
        for name in have - set(indexes):
            print(f"  drop index {table}.{name}", flush=True)
            await db.execute_script(f"ALTER TABLE {table} DROP INDEX `{name}`")
        for name in set(indexes) - have:
            print(f"  add {table}: {indexes[name]}", flush=True)
            await db.execute_script(f"ALTER TABLE {table} ADD {indexes[name]}")


async def drop(cfg: Config) -> None:
    """Drop the bench database."""
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"SHOW DATABASES LIKE '{cfg.database}'")
        if await cur.fetchall():
            await cur.execute(f"DROP DATABASE {cfg.database}")
    conn.close()


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, datetime):
        return _ts(value)
    return str(value)


async def _load(cfg: Config, table: str, columns: str, path: Path) -> None:
    """LOAD DATA LOCAL INFILE: the server's bulk path (indexes and constraints stay as in production). In pieces of
    about 8 MB: aiomysql sends a file in 16 MB packets, which the server's max_allowed_packet (16 MB) refuses."""
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", db=cfg.database,
                                  local_infile=True, charset="utf8mb4", autocommit=True)
    piece = path.with_suffix(".part")
    try:
        with path.open("rb") as src:
            while True:
                chunk = src.read(8 * 1024 * 1024)
                if not chunk:
                    break
                chunk += src.readline()  # whole lines only
                piece.write_bytes(chunk)
                async with conn.cursor() as cur:
                    await cur.execute(f"LOAD DATA LOCAL INFILE '{piece}' INTO TABLE {table} CHARACTER SET utf8mb4 "
                                      f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({columns})")
    finally:
        conn.close()
        piece.unlink(missing_ok=True)


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...], k: int) -> list[str]:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs], k=k)


async def seed(cfg: Config) -> dict[str, Any]:
    """Write every source and fact row to tab-separated files, then LOAD DATA them; returns counts and seconds."""
    from app.channels.models import ChannelAccount
    from app.customers.models import Customer
    from app.staff.models import Department, SkillGroup, Staff
    from app.tickets.models import SlaPolicy

    started = time.perf_counter()
    await Department.create(id=1, name="公司", path="/1/")
    groups = [await SkillGroup.create(name=f"组{g}", department_id=1) for g in range(GROUPS)]
    agents = [await Staff.create(userid=f"a{i}", name=f"坐席{i}", department_id=1) for i in range(AGENTS)]
    policy = await SlaPolicy.create(name="标准", first_response_minutes=60, resolution_minutes=1440)
    accounts = {c: await ChannelAccount.create(kind=c, key=f"acc-{c}", name=c) for c, _ in CHANNEL_WEIGHTS}
    customer = await Customer.create(name="客户")
    cal = await bizcal.default_calendar()
    rng = random.Random(12)
    n = cfg.tickets
    out = cfg.workdir / cfg.database
    out.mkdir(parents=True, exist_ok=True)
    cols = {
        "ticket": "id,number,subject,description,status,priority,category,custom_fields,customer_id,tags,version,"
                  "created_at,updated_at,last_activity_at,sla_state,sla_breached,group_id,assignee_id,"
                  "first_responded_at,resolved_at,sla_policy_id,channel_account_id",
        "ticket_event": "ticket_id,kind,actor_kind,old,new,reason,data,created_at",
        "message": "id,ticket_id,customer_id,direction,author_kind,msg_type,text,media,data,created_at,staff_id,"
                   "channel_account_id",
        "ticket_rating": "ticket_id,score,comment,channel,source,staff_id,ref,at,history",
        "sla_event": "ticket_id,clock,due_at,kind,group_id,data,at",
        "report_ticket_fact": (
            "ticket_id,number,channel,account_id,conversation_id,group_id,agent_id,policy_id,priority,status,is_open,"
            "created_at,created_day,created_hour,created_weekday,first_response_at,frt_wall,frt_business,nrt_count,"
            "nrt_wall,nrt_business,resolved_at,resolved_day,resolution_wall,resolution_business,handling_wall,"
            "reopened,sla_first,sla_next,sla_resolution,breached,escalations,csat,rated_at,rated_day,reason,"
            "reason_group,handoff,replies,customer_messages,frt_wall_b,frt_business_b,nrt_wall_b,nrt_business_b,"
            "resolution_wall_b,resolution_business_b,handling_wall_b,computed_at"),
        "report_conversation_fact": (
            "conversation_id,channel,account_id,customer_id,started_at,day,messages_in,messages_out,bot_messages,"
            "ticket_id,ticket_number,reason,reason_group,handoff,group_id,agent_id,bot_resolved,computed_at"),
    }
    files = {t: (out / f"{t}.tsv").open("w", encoding="utf-8") for t in cols}

    def row(table: str, *values: Any) -> None:
        files[table].write("\t".join(_tsv(v) for v in values) + "\n")

    def secs(a: datetime | None, b: datetime | None, business: bool = False) -> int | None:
        if a is None or b is None:
            return None
        return int(cal.seconds_between(a, b)) if business else int((b - a).total_seconds())

    # when tickets arrive: a year of growth (0.7 -> 1.3), quieter weekends, the desk's hours (local time)
    local_start = (NOW - timedelta(days=cfg.days)).astimezone(CHINA).replace(minute=0, second=0, microsecond=0)
    slots = [local_start + timedelta(hours=h) for h in range(cfg.days * 24)]
    weights = [(0.7 + 0.6 * h / len(slots)) * (0.5 if s.isoweekday() > 5 else 1.0) * HOUR_WEIGHTS[s.hour]
               for h, s in enumerate(slots)]
    picked = sorted(rng.choices(range(len(slots)), weights=weights, k=n))
    channels = _weighted(rng, CHANNEL_WEIGHTS, n)
    reasons = _weighted(rng, REASON_WEIGHTS, n)
    group_weights = [1.0 / (g + 2) for g in range(GROUPS)]  # a few big queues, many small ones
    ticket_groups = rng.choices(range(GROUPS), weights=group_weights, k=n)
    per_group = AGENTS // GROUPS
    counts = {"tickets": 0, "messages": 0, "ratings": 0, "breaches": 0, "conversations": 0}
    msg_id = 0
    conv_id = n
    now_ts = NOW
    for i in range(1, n + 1):
        created = slots[picked[i - 1]].astimezone(UTC) + timedelta(seconds=rng.randint(0, 3599))
        if created > now_ts - timedelta(minutes=5):
            created = now_ts - timedelta(minutes=5 + rng.randint(0, 600))
        channel = channels[i - 1]
        g = ticket_groups[i - 1]
        group = groups[g].id
        # an agent works in their own group's queue; one ticket in 20 goes to a colleague of another group
        ga = g if rng.random() < 0.95 else rng.randrange(GROUPS)
        agent = agents[ga * per_group + rng.randrange(per_group)].id if rng.random() < 0.94 else None
        first = None
        if agent is not None and rng.random() < 0.97:
            first = created + timedelta(seconds=int(min(172800, max(20, rng.lognormvariate(6.8, 1.3)))))
        share = 0.985 if created < now_ts - timedelta(days=7) else 0.6
        resolved = None
        if first is not None and rng.random() < share:
            resolved = first + timedelta(seconds=int(min(30 * 86400, max(120, rng.lognormvariate(9.6, 1.4)))))
            if resolved > now_ts:
                resolved = None
        if first is not None and first > now_ts:
            first, resolved = None, None
        status = "resolved" if resolved else ("open" if first else "new")
        reason = reasons[i - 1]
        frt_w, frt_b = secs(created, first), secs(created, first, True)
        res_w, res_b = secs(created, resolved), secs(created, resolved, True)
        sla_first = ("breached" if (frt_b or 0) > 3600 else "met") if first else (
            "breached" if secs(created, now_ts, True) or 0 > 3600 else "running")
        sla_res = ("breached" if (res_b or 0) > 86400 else "met") if resolved else "running"
        breached = "breached" in (sla_first, sla_res)
        number = f"B-{i:09d}"
        last = resolved or first or created
        row("ticket", i, number, "报表压测", "", status, "normal", "", "{}", customer.id, "[]", 1, created, last, last,
            "{}", int(breached), group, agent, first, resolved, policy.id, accounts[channel].id)
        row("ticket_event", i, "created", "system", None, "new", "",
            json.dumps({"source": channel, "reason": reason}, ensure_ascii=False), created)
        reopened = 1 if resolved and rng.random() < 0.05 else 0
        if reopened and resolved is not None:
            row("ticket_event", i, "status_changed", "customer", "resolved", "open", "", "{}", resolved)
        moment = created
        answered, waiting = False, None
        gaps: list[tuple[int, int]] = []
        replies = inbound = 0
        for k in range(cfg.messages_per_ticket):
            staff_turn = k % 2 == 1 and agent is not None
            if staff_turn and k == 1 and first is not None:
                moment = first
            else:
                moment = moment + timedelta(seconds=rng.randint(60, 3600))
            msg_id += 1
            row("message", msg_id, i, customer.id, "out" if staff_turn else "in", "staff" if staff_turn else "customer",
                "text", "…", "[]", "{}", moment, agent if staff_turn else None, accounts[channel].id)
            if staff_turn:
                replies += 1
                if waiting is not None:
                    gaps.append((secs(waiting, moment) or 0, secs(waiting, moment, True) or 0))
                    waiting = None
                answered = True
            else:
                inbound += 1
                if answered and waiting is None:
                    waiting = moment
        counts["messages"] += cfg.messages_per_ticket
        score, rated = None, None
        if resolved and rng.random() < 0.35:
            score = rng.choice((1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5))
            rated = resolved + timedelta(seconds=rng.randint(60, 7200))
            if rated > now_ts:
                score, rated = None, None
            else:
                row("ticket_rating", i, score, "", "h5", "h5_page", agent, "", rated, "[]")
                counts["ratings"] += 1
        if sla_first == "breached":
            due = created + timedelta(hours=1)
            row("sla_event", i, "first_response", due, "breach", group, "{}", due)
            counts["breaches"] += 1
        if sla_res == "breached":
            due = created + timedelta(hours=24)
            row("sla_event", i, "resolution", due, "breach", group, "{}", due)
            counts["breaches"] += 1
        local = created.astimezone(CHINA)
        nrt_w = sum(gp[0] for gp in gaps) // len(gaps) if gaps else None
        nrt_b = sum(gp[1] for gp in gaps) // len(gaps) if gaps else None
        handling = res_w if agent else None
        handoff = reason[4:] if reason.startswith("bot:") else ("human_request" if reason == "human_request" else None)
        conversation = None if reason in ("staff", "api") else i
        row("report_ticket_fact", i, number, channel, accounts[channel].id, conversation, group, agent, policy.id,
            "normal", status, int(status != "resolved"), created, local.date().isoformat(), local.hour,
            local.isoweekday(), first, frt_w, frt_b, len(gaps), nrt_w, nrt_b, resolved,
            facts.local_day(resolved).isoformat() if resolved else None, res_w, res_b, handling, reopened, sla_first,
            None, sla_res, int(breached), 0, score, rated, facts.local_day(rated).isoformat() if rated else None,
            reason, facts.reason_group(reason), handoff, replies, inbound, facts.bucket(frt_w), facts.bucket(frt_b),
            facts.bucket(nrt_w), facts.bucket(nrt_b), facts.bucket(res_w), facts.bucket(res_b),
            facts.bucket(handling), NOW)
        if conversation is not None:
            bot = 2 if handoff else 0
            row("report_conversation_fact", conversation, channel, accounts[channel].id, customer.id, created,
                local.date().isoformat(), inbound, replies + bot, bot, i, number, reason, facts.reason_group(reason),
                handoff, group, agent, 0, NOW)
            counts["conversations"] += 1
        # conversations the bot finished on its own (no ticket): about one per ticket from the chat channels
        if channel in ("wechat_mp", "wecom_kf", "webchat") and rng.random() < 0.8:
            conv_id += 1
            row("report_conversation_fact", conv_id, channel, accounts[channel].id, customer.id, created,
                local.date().isoformat(), 2, 2, 2, None, None, "", "", None, None, None, 1, NOW)
            counts["conversations"] += 1
        counts["tickets"] += 1
    for f in files.values():
        f.close()
    generated = time.perf_counter() - started
    for table, columns in cols.items():
        t0 = time.perf_counter()
        await _load(cfg, table, columns, out / f"{table}.tsv")
        print(f"  loaded {table} in {time.perf_counter() - t0:.1f} s", flush=True)
    for done in out.glob("*.tsv"):
        done.unlink()
    return {**counts, "generate_seconds": round(generated, 1),
            "seconds": round(time.perf_counter() - started, 1)}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


async def _timed(fn: Any, repeat: int) -> dict[str, float]:
    samples = []
    await fn()  # warm the caches once, as a dashboard that is open keeps them warm
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(samples), 2), "p99_ms": round(_pct(samples, 0.99), 2),
            "max_ms": round(max(samples), 2)}


async def _views(cfg: Config) -> dict[str, tuple[Actor, dict[str, Any]]]:
    """The dashboards people open: the admin's whole desk; a lead of three mid-sized groups (plus their own
    tickets); that lead narrowed to one channel; that lead narrowed to one agent."""
    from app.staff.models import SkillGroup, Staff

    groups = [g.id for g in await SkillGroup.all().order_by("id")]
    staff = [s.id for s in await Staff.all().order_by("id")]
    per_group = max(1, len(staff) // max(1, len(groups)))
    mine = groups[3:6] if len(groups) >= 6 else groups[:1]
    lead_id = staff[groups.index(mine[0]) * per_group] if len(staff) > per_group * groups.index(mine[0]) \
        else staff[0]
    lead = Actor(kind="staff", staff_id=lead_id, role="lead", group_ids=frozenset(mine), name="组长")
    colleague = staff[min(len(staff) - 1, groups.index(mine[-1]) * per_group + 1)]
    return {"admin": (SYSTEM, {}),
            "lead": (lead, {}),
            "lead_channel": (lead, {"channel": "wecom_kf"}),
            "lead_agent": (lead, {"agent_id": colleague})}


def _scan_where(actor: Actor, dims: dict[str, Any], accounts: dict[str, list[int]]) -> tuple[str, list[Any]]:
    """The ticket-table filter of a view (the scope and filters the rollups apply, on the source columns)."""
    where, args = [], []
    if actor.group_ids is not None:
        ids = ",".join(str(g) for g in sorted(actor.group_ids)) or "-1"
        where.append(f"(t.group_id IN ({ids}) OR t.assignee_id = %s)")
        args.append(actor.staff_id or -1)
    if dims.get("channel"):
        where.append("t.channel_account_id IN (" + (",".join(str(a) for a in accounts.get(dims["channel"], []))
                                                     or "-1") + ")")
    if dims.get("agent_id") is not None:
        where.append("t.assignee_id = %s")
        args.append(dims["agent_id"])
    return "".join(f" AND {w}" for w in where), args


async def dashboards(cfg: Config) -> dict[str, Any]:
    """Every section for the last 90 days in each view (rollups) beside the same figures from the ticket table."""
    from app.channels.models import ChannelAccount
    from app.reports import service
    from app.reports.service import ReportFilter

    end = NOW.astimezone(CHINA).date()
    base = ReportFilter(start=end - timedelta(days=89), end=end)
    out: dict[str, Any] = {"period": [base.start.isoformat(), base.end.isoformat()], "views": {}}
    conn = Tortoise.get_connection("default")
    lo = datetime.combine(base.start, datetime.min.time(), tzinfo=CHINA).astimezone(UTC)
    hi = datetime.combine(base.end + timedelta(days=1), datetime.min.time(), tzinfo=CHINA).astimezone(UTC)
    accounts: dict[str, list[int]] = {}
    for acc_id, kind in await ChannelAccount.all().values_list("id", "kind"):
        accounts.setdefault(str(kind), []).append(int(acc_id))
    for view, (actor, dims) in (await _views(cfg)).items():
        flt = replace(base, **dims)
        res: dict[str, Any] = {"filter": flt.to_params(), "sections": {}, "scan": {}, "agree": {}}
        for name, _ in service.SECTIONS:
            if name in ("reception", "bot") and view != "admin":
                continue  # channel-level sections: no group or agent applies, the admin's figures
            res["sections"][name] = await _timed(
                lambda n=name, a=actor, f=flt: service.section(actor=a, flt=f, name=n), cfg.repeat)
        where, wargs = _scan_where(actor, dims, accounts)
        args = [_ts(lo), _ts(hi), *wargs]

        async def scan_created(where: str = where, args: list[Any] = args) -> Any:
            return (await conn.execute_query_dict(
                f"SELECT COUNT(*) AS n FROM ticket t WHERE t.created_at >= %s AND t.created_at < %s{where}",
                args))[0]["n"]

        async def scan_frt_median(where: str = where, args: list[Any] = args) -> Any:
            # the same figure: the nearest-rank median of the durations rounded up to their buckets (facts.bucket)
            rows = await conn.execute_query_dict(
                "SELECT v, COUNT(*) AS n FROM (SELECT CASE WHEN d <= 0 THEN 0 WHEN d <= 3600 THEN CEIL(d / 60) * 60 "
                "WHEN d <= 86400 THEN CEIL(d / 300) * 300 ELSE CEIL(d / 3600) * 3600 END AS v FROM ("
                "SELECT TIMESTAMPDIFF(SECOND, t.created_at, t.first_responded_at) AS d FROM ticket t "
                f"WHERE t.created_at >= %s AND t.created_at < %s AND t.first_responded_at IS NOT NULL{where}) AS x"
                ") AS y GROUP BY v", args)
            return histogram_rank({int(r["v"]): int(r["n"]) for r in rows}, 0.5)

        async def scan_csat(where: str = where, args: list[Any] = args) -> Any:
            row = (await conn.execute_query_dict(
                "SELECT AVG(r.score) AS v FROM ticket t JOIN ticket_rating r ON r.ticket_id = t.id "
                f"WHERE r.at >= %s AND r.at < %s{where}", args))[0]
            return float(row["v"]) if row["v"] is not None else None

        sflt, scope = service.scoped(actor, flt)

        async def rollup_created(f: ReportFilter = sflt, s: Any = scope) -> Any:
            return (await service.daily_sums(f, s))[None]["created"]

        async def rollup_frt_median(f: ReportFilter = sflt, s: Any = scope) -> Any:
            return histogram_rank((await service.counts(f, s, ("frt_wall",)))["frt_wall"], 0.5)

        async def rollup_csat(f: ReportFilter = sflt, s: Any = scope) -> Any:
            sums = (await service.daily_sums(f, s))[None]
            return service.ratio(sums["csat_sum"], sums["rated"])

        res["figure"] = {}
        for key, fn, rfn in (("created_count", scan_created, rollup_created),
                             ("frt_wall_median", scan_frt_median, rollup_frt_median),
                             ("csat_avg", scan_csat, rollup_csat)):
            res["figure"][key] = await _timed(rfn, cfg.repeat)
            res["scan"][key] = await _timed(fn, cfg.scan_repeat)
        vol = await service.volume(actor=actor, flt=flt)
        resp = await service.response(actor=actor, flt=flt)
        sat = await service.satisfaction(actor=actor, flt=flt)
        res["agree"] = {"created": [vol.figure("created").value, await scan_created()],
                        "frt_wall_median": [resp.figure("frt_wall_median").value, await scan_frt_median()],
                        "csat_avg": [sat.figure("csat_avg").value, await scan_csat()]}
        out["views"][view] = res
        _print_view(view, res)
    return out


def _print_view(view: str, res: dict[str, Any]) -> None:
    print(f"  [{view}] {res['filter']}  (load average {_load_average()})", flush=True)
    for name, r in res["sections"].items():
        print(f"    {name:<13} p50 {r['p50_ms']:8.1f} ms   p99 {r['p99_ms']:8.1f} ms", flush=True)
    for name, r in res["scan"].items():
        f = res["figure"][name]
        print(f"    figure {name:<16} rollup p50 {f['p50_ms']:7.1f} p99 {f['p99_ms']:7.1f} ms | ticket-table scan "
              f"p50 {r['p50_ms']:7.1f} p99 {r['p99_ms']:7.1f} ms", flush=True)
    print(f"    same figures (rollup, scan): {res['agree']}", flush=True)


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def throughput(cfg: Config) -> dict[str, Any]:
    """Tickets created through the service (with the report listener) per second, then the refresh draining."""
    from app import events
    from app.customers.models import Customer
    from app.reports import jobs
    from app.staff.models import SkillGroup, Staff
    from app.tickets import service as tickets

    customer = await Customer.first()
    group = await SkillGroup.first()
    agent = await Staff.first()
    assert customer is not None and group is not None and agent is not None
    with events.only(events.TICKET_CREATED, jobs.mark_ticket):
        started = time.perf_counter()
        for i in range(cfg.create):
            await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=f"压测工单 {i}", group_id=group.id,
                                 assignee_id=agent.id)
        created_s = time.perf_counter() - started
    started = time.perf_counter()
    result = await jobs.refresh()
    refresh_s = time.perf_counter() - started
    return {"intake_tickets_per_s": round(cfg.create / created_s, 1),
            "refresh_events_per_s": round(result["tickets"] / refresh_s, 1), "events": cfg.create}


async def _peak_intake() -> float:
    """The busiest hour of the seeded data: ticket events plus messages per second (what the refresh must absorb)."""
    conn = Tortoise.get_connection("default")
    row = (await conn.execute_query_dict(
        "SELECT MAX(n) AS n FROM (SELECT COUNT(*) AS n FROM message GROUP BY DATE_FORMAT(created_at, '%Y%m%d%H')) x"
    ))[0]
    return round(float(row["n"] or 0) / 3600, 2)


async def _buffer_pool(mb: int) -> int:
    """Set the server's InnoDB buffer pool to `mb` MiB (0: leave it); the size it had, in MiB. A server sized as
    docs/deploy.md says holds the report tables' working set; Debian's default 128 MiB reads a million tickets'
    count rows from the page cache on every query and times the disk, not the queries."""
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@innodb_buffer_pool_size")
            (before,) = await cur.fetchone()
            if mb:
                await cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {int(mb) * 1024 * 1024}")
                for _ in range(120):  # the resize runs in the background
                    await cur.execute("SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'")
                    row = await cur.fetchone()
                    if row is None or "Completed" in str(row[1]) or not str(row[1]):
                        break
                    await asyncio.sleep(0.5)
        return int(before) // (1024 * 1024)
    finally:
        conn.close()


async def main_async(cfg: Config) -> dict[str, Any]:
    """Run every phase; returns the report (also written to cfg.output)."""
    from app.logs import configure_logging
    from app.settings import load_settings, set_settings

    configure_logging(fmt="console", level="WARNING")
    set_settings(load_settings({"GONGDAN_ENV": "test"}, env_file=None))
    set_clock(lambda: NOW)
    pool_before = await _buffer_pool(cfg.buffer_pool_mb)
    print(f"InnoDB buffer pool: {cfg.buffer_pool_mb or pool_before} MiB for the run (the server had {pool_before} MiB)",
          flush=True)
    try:
        seeded = await _reused(cfg) if cfg.reuse else None
        if seeded is None:
            await _prepare(cfg)
            seeded = await seed(cfg)
            print(f"seeded {seeded['tickets']:,} tickets, {seeded['messages']:,} messages, {seeded['ratings']:,} "
                  f"ratings, {seeded['conversations']:,} conversations in {seeded['seconds']} s "
                  f"(files written in {seeded['generate_seconds']} s)", flush=True)
        else:
            print(f"reused {cfg.database}: {seeded['tickets']:,} tickets, {seeded['messages']:,} messages", flush=True)
        daily_s = None
        if not seeded.get("reused") or cfg.recompute:
            # the facts were written by the seeder; the daily sums come from them as in a rebuild
            started = time.perf_counter()
            today = NOW.astimezone(CHINA).date()
            await facts.recompute_days(today - timedelta(days=cfg.days + 1), today)
            daily_s = time.perf_counter() - started
            print(f"daily sums and counts over {cfg.days} days from {seeded['tickets']:,} facts: {daily_s:.1f} s",
                  flush=True)
        if cfg.seed_only:
            return {"dataset": seeded}
        sample = list(range(1, min(cfg.rebuild_sample, cfg.tickets) + 1))
        started = time.perf_counter()
        for k in range(0, len(sample), 500):
            await facts.save_ticket_facts(sample[k:k + 500])
        rebuild_s = time.perf_counter() - started
        rate = len(sample) / rebuild_s
        print(f"ticket facts recomputed from the source rows: {rate:,.0f} tickets/s ({len(sample):,} tickets)",
              flush=True)
        rebuilt = {"tickets": len(sample)}
        from app.reports import jobs

        await jobs.caught_up()  # what a rebuild ends with: the live refresh starts after the seeded rows
        dash = await dashboards(cfg)
        thr = await throughput(cfg)
        peak = await _peak_intake()
        thr["data_peak_events_per_s"] = peak
        print(f"intake: {thr['intake_tickets_per_s']:,.0f} tickets/s created through the service (the seeded year's "
              f"busiest hour: {peak:.2f} events/s); refresh drains {thr['refresh_events_per_s']:,.0f} events/s "
              f"(load average {_load_average()})", flush=True)
        doc = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
               "dataset": seeded, "daily_sums_seconds": round(daily_s, 1) if daily_s is not None else None,
               "rebuild": {"tickets": rebuilt["tickets"], "seconds": round(rebuild_s, 1),
                           "tickets_per_s": round(rate, 1)},
               "dashboards": dash, "throughput": thr,
               "load_average": _load_average(), "innodb_buffer_pool_mb": cfg.buffer_pool_mb or pool_before,
               "targets": {"p99_under_200ms_90_days": {
                   v: sorted(k for k, r in res["sections"].items() if r["p99_ms"] >= 200) or "all met"
                   for v, res in dash["views"].items()},
                           "refresh_keeps_up": thr["refresh_events_per_s"] > thr["intake_tickets_per_s"]}}
        if cfg.output is not None:
            cfg.output.parent.mkdir(parents=True, exist_ok=True)
            cfg.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
        return doc
    finally:
        await Tortoise.close_connections()
        set_clock(None)
        if cfg.buffer_pool_mb and pool_before != cfg.buffer_pool_mb:
            await _buffer_pool(pool_before)


def run(cfg: Config) -> dict[str, Any]:
    """The benchmark, synchronously."""
    return asyncio.run(main_async(cfg))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages-per-ticket", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--scan-repeat", type=int, default=5, help="runs of each ticket-table scan (seconds each)")
    parser.add_argument("--create", type=int, default=300, help="tickets created for the intake rate")
    parser.add_argument("--rebuild-sample", type=int, default=5000, help="tickets whose facts are recomputed")
    parser.add_argument("--mysql", default="mysql://root:@127.0.0.1:3306/")
    parser.add_argument("--output", default="", help="a JSON file to write the report to ('': none)")
    parser.add_argument("--database", default=DB)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database an earlier run seeded with as many tickets (indexes synced)")
    parser.add_argument("--recompute", action="store_true", help="with --reuse: recompute the daily sums and counts")
    parser.add_argument("--seed-only", action="store_true", help="seed (and roll up), measure nothing")
    parser.add_argument("--buffer-pool-mb", type=int, default=4096,
                        help="InnoDB buffer pool for the run, given back afterwards (0: leave the server's)")
    a = parser.parse_args()
    run(Config(tickets=a.tickets, messages_per_ticket=a.messages_per_ticket, days=a.days, repeat=a.repeat,
               scan_repeat=a.scan_repeat, create=a.create, rebuild_sample=a.rebuild_sample, mysql=a.mysql,
               output=Path(a.output) if a.output else None, database=a.database, reuse=a.reuse,
               recompute=a.recompute, seed_only=a.seed_only,
               buffer_pool_mb=a.buffer_pool_mb))
