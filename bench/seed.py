"""Seed a benchmark database fast: the demo org through the app, customers/tickets/events through bulk SQL.

The ticket set looks like a desk after three months: most tickets closed, a few thousand live ones concentrated in
the last two weeks, four skill groups of eight agents, numbers GD-YYYYMMDD-NNNN on the China date they were
created (with the day counters set so that new tickets continue each day's sequence), `last_activity_at` spread
over 90 days, and the measured agent holding a chosen number of live tickets.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import aiomysql
from tortoise.models import Model

from app.timeutil import local

#: tickets the load phase creates carry this category, so `--reuse` can remove them before measuring again
LOAD_CATEGORY = "bench-load"
AGENT = "lina"
CATEGORIES = ("退款", "故障", "发票", "物流", "咨询", "投诉", "安装", "账户")
PRIORITIES = (("normal", 70), ("high", 15), ("low", 10), ("urgent", 5))
#: demo group name -> share of all tickets
GROUP_SHARES = {"一线客服组": 40, "售后组": 25, "技术支持组": 25, "财务组": 10}
BATCH = 5000


@dataclass(frozen=True)
class Plan:
    tickets: int = 100_000
    customers: int = 20_000
    days: int = 90
    #: live tickets assigned to the measured agent
    agent_open: int = 200
    agents_per_group: int = 8
    random_seed: int = 20260101


@dataclass
class Dataset:
    """What the load phases need to know about the seeded database."""

    tickets: int = 0
    customers: int = 0
    live_tickets: int = 0
    agent_open_tickets: int = 0
    agent_tickets: int = 0
    agent_group_tickets: int = 0
    staff: int = 0
    days: int = 0
    agent_group_id: int = 0
    customer_id_min: int = 0
    customer_id_max: int = 0
    #: ticket ids in the agent's scope that the detail phase cycles through
    detail_ids: list[int] = field(default_factory=list)
    reused: bool = False
    seed_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("detail_ids")
        out["detail_ids_cycled"] = len(self.detail_ids)
        return out


def _conn_args(database_url: str) -> dict[str, Any]:
    parts = urlsplit(database_url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "charset": "utf8mb4",
    }


def _db_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


async def _connect(database_url: str, *, db: bool = True) -> aiomysql.Connection:
    args = _conn_args(database_url)
    if db:
        args["db"] = _db_name(database_url)
    return await aiomysql.connect(autocommit=False, **args)


async def _scalar(cur: aiomysql.Cursor, sql: str, *args: Any) -> Any:
    await cur.execute(sql, args)
    row = await cur.fetchone()
    return row[0] if row else None


async def is_seeded(database_url: str, plan: Plan) -> bool:
    """True when the database holds exactly this plan's seed (plus, possibly, tickets earlier load runs created)."""
    conn = await _connect(database_url, db=False)
    try:
        async with conn.cursor() as cur:
            name = _db_name(database_url)
            if not await _scalar(cur, "SELECT COUNT(*) FROM information_schema.tables "
                                      "WHERE table_schema=%s AND table_name IN ('ticket','customer','staff')", name):
                return False
            await cur.execute(f"USE `{name}`")
            seeded = await _scalar(cur, "SELECT COUNT(*) FROM ticket WHERE category <> %s", LOAD_CATEGORY)
            customers = await _scalar(cur, "SELECT COUNT(*) FROM customer")
            agent = await _scalar(cur, "SELECT COUNT(*) FROM staff WHERE userid=%s AND status='active'", AGENT)
            return bool(seeded == plan.tickets and customers == plan.customers and agent)
    except aiomysql.Error:
        return False
    finally:
        conn.close()


async def drop_database(database_url: str, *, create: bool = False) -> None:
    """Drop the benchmark database if it exists (and create it again, utf8mb4, when asked)."""
    name = _db_name(database_url)
    if not name.startswith("gongdan_bench"):
        raise ValueError(f"refusing to drop {name!r}: benchmark databases are named gongdan_bench*")
    conn = await _connect(database_url, db=False)
    try:
        async with conn.cursor() as cur:
            # no DROP ... IF EXISTS: its note on a missing database is a warning, an error under pytest
            if await _scalar(cur, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name=%s", name):
                await cur.execute(f"DROP DATABASE `{name}`")
            if create:
                await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()


async def reset_database(database_url: str) -> None:
    """Drop and create the benchmark database (utf8mb4)."""
    await drop_database(database_url, create=True)


async def remove_load_tickets(database_url: str) -> int:
    """Delete the tickets (and, by cascade, events) that earlier load phases created, with the report marks and
    facts they left: a run starts with no refresh backlog, as after seeding, not with every earlier run's."""
    conn = await _connect(database_url)
    try:
        async with conn.cursor() as cur:
            n = await cur.execute("DELETE FROM ticket WHERE category=%s", (LOAD_CATEGORY,))
            await cur.execute("DELETE FROM report_dirty")
            await cur.execute("DELETE f FROM report_ticket_fact f LEFT JOIN ticket t ON t.id = f.ticket_id "
                              "WHERE t.id IS NULL")
        await conn.commit()
        return int(n)
    finally:
        conn.close()


async def rollup_backlog(database_url: str) -> int:
    """The ticket changes the reports' refresh has not yet rolled up (`report_dirty` rows)."""
    conn = await _connect(database_url)
    try:
        async with conn.cursor() as cur:
            return int(await _scalar(cur, "SELECT COUNT(*) FROM report_dirty"))
    finally:
        conn.close()


async def _org(database_url: str, plan: Plan) -> dict[str, Any]:
    """The demo org through the app's own code, plus bench agents so every group has `agents_per_group`."""
    from tortoise import Tortoise
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from app.db import tortoise_config
    from app.seed import GROUPS, ensure_org
    from app.settings import load_settings
    from app.staff.models import SkillGroup, Staff

    settings = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": database_url, "DB_POOL_SIZE": "4"},
                             env_file=None)
    # tortoise caches insert SQL per connection name; a process that used another dialect under "default"
    # (the test suite's SQLite tier) must not hand its SQL to MariaDB
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    try:
        people = await ensure_org()
        groups: dict[str, list[int]] = {}
        group_ids: dict[str, int] = {}
        for name, (dept_id, members) in GROUPS.items():
            group = await SkillGroup.get(name=name)
            group_ids[name] = group.id
            ids = [people[u].id for u in members]
            for k in range(plan.agents_per_group - len(members)):
                staff, _ = await Staff.get_or_create(
                    userid=f"bench_g{group.id}_{k:02d}",
                    defaults={"name": f"坐席{group.id}-{k:02d}", "role": "agent", "department_id": dept_id,
                              "department_ids": [dept_id], "status": "active"},
                )
                await group.members.add(staff)
                ids.append(staff.id)
            groups[name] = ids
        return {"groups": groups, "group_ids": group_ids, "agent_id": people[AGENT].id}
    finally:
        await Tortoise.close_connections()
        EXECUTOR_CACHE.clear()


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...] | list[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _plan_rows(plan: Plan, org: dict[str, Any], now: datetime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                                                      dict[str, int]]:
    """Build ticket and event rows (ids 1..N in creation order) and the per-day counters."""
    rng = random.Random(plan.random_seed)
    span = timedelta(days=plan.days)
    created = sorted(now - span + timedelta(seconds=rng.uniform(0, span.total_seconds() - 60))
                     for _ in range(plan.tickets))
    group_pairs = list(GROUP_SHARES.items())
    agent_id: int = org["agent_id"]
    agent_group = "一线客服组"
    counters: dict[str, int] = {}
    specs: list[dict[str, Any]] = []
    for i, c in enumerate(created, start=1):
        day = local(c.replace(tzinfo=UTC)).strftime("%Y%m%d")
        counters[day] = counters.get(day, 0) + 1
        recent = now - c < timedelta(days=14)
        live = rng.random() < (0.20 if recent else 0.003)
        group = _weighted(rng, group_pairs)
        members: list[int] = org["groups"][group]
        if live:
            status = _weighted(rng, (("new", 25), ("open", 50), ("pending", 25)))
            # live tickets of the agent are dealt out below, so their number is exact
            pool = [m for m in members if m != agent_id] or members
            assignee = None if status == "new" and rng.random() < 0.5 else rng.choice(pool)
            last = c + (now - c) * rng.random()
        else:
            status = "closed" if rng.random() < 0.85 else "resolved"
            assignee = rng.choice(members)
            last = min(now, c + timedelta(hours=rng.uniform(0.2, 120)))
        specs.append({"id": i, "number": f"GD-{day}-{counters[day]:04d}", "created": c, "last": last,
                      "status": status, "group": group, "assignee": assignee})
    agent_live = [s for s in specs if s["group"] == agent_group and s["status"] in ("new", "open", "pending")]
    for s in rng.sample(agent_live, min(plan.agent_open, len(agent_live))):
        s["assignee"] = agent_id
        if s["status"] == "new":
            s["status"] = "open"

    tickets: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for s in specs:
        c, last, status = s["created"], s["last"], s["status"]
        category = rng.choice(CATEGORIES)
        responded = None if status == "new" else c + timedelta(minutes=rng.uniform(1, 90))
        done = last if status in ("resolved", "closed") else None
        tickets.append((
            s["id"], s["number"], f"{category}: 客户反馈的问题 #{s['id']}", "", status, _weighted(rng, PRIORITIES),
            category, "{}", f"2026{s['id']:09d}" if category == "退款" else None, "[]",
            c + timedelta(minutes=30) if status == "new" else None,
            c + timedelta(hours=8) if status in ("new", "open", "pending") else None,
            done, done if status == "closed" else None, responded,
            1 if status == "new" else 2, c, last, last, s["assignee"], rng.randint(1, plan.customers),
            org["group_ids"][s["group"]],
        ))
        events.append(("created", "system", None, "new", "", "{}", c, None, s["id"]))
        if status != "new":
            events.append(("status_changed", "staff", "new", status, "", "{}", last, s["assignee"], s["id"]))
    return tickets, events, counters


_TICKET_COLUMNS = (
    "id", "number", "subject", "description", "status", "priority", "category", "custom_fields", "order_no", "tags",
    "first_response_due", "resolution_due", "resolved_at", "closed_at", "first_responded_at", "version", "created_at",
    "updated_at", "last_activity_at", "assignee_id", "customer_id", "group_id",
)
_EVENT_COLUMNS = ("kind", "actor_kind", "old", "new", "reason", "data", "created_at", "actor_id", "ticket_id")
_CUSTOMER_COLUMNS = ("id", "name", "vip_level", "tags", "created_at", "updated_at")


def _db_value(value: Any) -> Any:
    """A model default as the value an INSERT carries (JSON text for dicts and lists, naive UTC for datetimes)."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


async def _required_extras(conn: aiomysql.Connection, table: str, model: type[Model], given: tuple[str, ...],
                           now: datetime) -> dict[str, Any]:
    """Values for the NOT NULL columns without a database default that `given` leaves out, from the model.

    Tortoise keeps defaults in Python, so a column a later migration adds (NOT NULL, default in the model) would
    make the bulk INSERT fail; this keeps the seed working as the schema grows.
    """
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema=DATABASE() AND table_name=%s "
            "AND is_nullable='NO' AND column_default IS NULL AND extra NOT LIKE %s", (table, "%auto_increment%"))
        missing = [str(r[0]) for r in await cur.fetchall() if str(r[0]) not in given]
    by_column = {column: model._meta.fields_map[name] for name, column in model._meta.fields_db_projection.items()}
    extras: dict[str, Any] = {}
    for column in missing:
        f = by_column.get(column)
        if f is None:
            raise RuntimeError(f"bench.seed: {table}.{column} is NOT NULL and unknown to {model.__name__}")
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            extras[column] = now
        elif f.default is not None:
            extras[column] = _db_value(f.default() if callable(f.default) else f.default)
        else:
            raise RuntimeError(f"bench.seed: {table}.{column} is NOT NULL without a default; teach bench.seed it")
    return extras


async def _insert(conn: aiomysql.Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]],
                  extras: dict[str, Any] | None = None) -> None:
    """Bulk INSERT: aiomysql rewrites an INSERT ... VALUES executemany into multi-row INSERTs."""
    extras = extras or {}
    names = (*columns, *extras)
    sql = (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in names)}) "
           f"VALUES ({', '.join(['%s'] * len(names))})")
    tail = tuple(extras.values())
    async with conn.cursor() as cur:
        for start in range(0, len(rows), BATCH):
            await cur.executemany(sql, [row + tail for row in rows[start:start + BATCH]])
    await conn.commit()


async def seed(database_url: str, plan: Plan) -> None:
    """Fill a freshly migrated database with the plan's org, customers, tickets, events and day counters."""
    from app.customers.models import Customer
    from app.tickets.models import Ticket, TicketCounter, TicketEvent

    org = await _org(database_url, plan)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # columns hold naive UTC
    rng = random.Random(plan.random_seed + 1)
    customers = [
        (i, f"客户{i:05d}", rng.choice((0, 0, 0, 1, 2)), "[]", now - timedelta(days=rng.uniform(0, 400)), now)
        for i in range(1, plan.customers + 1)
    ]
    tickets, events, counters = _plan_rows(plan, org, now)
    conn = await _connect(database_url)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION foreign_key_checks=0, unique_checks=0")
        for table, model, columns, rows in (
            ("customer", Customer, _CUSTOMER_COLUMNS, customers),
            ("ticket", Ticket, _TICKET_COLUMNS, tickets),
            ("ticket_event", TicketEvent, _EVENT_COLUMNS, events),
            ("ticket_counter", TicketCounter, ("day", "seq"), sorted(counters.items())),
        ):
            await _insert(conn, table, columns, rows, await _required_extras(conn, table, model, columns, now))
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION foreign_key_checks=1, unique_checks=1")
            for table in ("customer", "ticket", "ticket_event"):
                await cur.execute(f"ANALYZE TABLE `{table}`")
                await cur.fetchall()
        await conn.commit()
    finally:
        conn.close()


async def describe(database_url: str, *, detail_ids: int = 300) -> Dataset:
    """Count what the database holds and pick the ids the load phases use."""
    conn = await _connect(database_url)
    try:
        async with conn.cursor() as cur:
            agent_id = await _scalar(cur, "SELECT id FROM staff WHERE userid=%s", AGENT)
            group_id = await _scalar(cur, "SELECT id FROM skill_group WHERE name=%s", "一线客服组")
            live = "('new','open','pending')"  # a constant: inlined, aiomysql cannot bind a tuple
            await cur.execute(
                f"SELECT id FROM ticket WHERE assignee_id=%s ORDER BY (status IN {live}) DESC, last_activity_at DESC "
                "LIMIT %s", (agent_id, detail_ids))
            ids = [int(r[0]) for r in await cur.fetchall()]
            await cur.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM customer")
            cmin, cmax, ccount = await cur.fetchone()
            return Dataset(
                tickets=int(await _scalar(cur, "SELECT COUNT(*) FROM ticket WHERE category <> %s", LOAD_CATEGORY)),
                customers=int(ccount),
                live_tickets=int(await _scalar(cur, f"SELECT COUNT(*) FROM ticket WHERE status IN {live}")),
                agent_open_tickets=int(await _scalar(
                    cur, f"SELECT COUNT(*) FROM ticket WHERE assignee_id=%s AND status IN {live}", agent_id)),
                agent_tickets=int(await _scalar(cur, "SELECT COUNT(*) FROM ticket WHERE assignee_id=%s", agent_id)),
                agent_group_tickets=int(await _scalar(cur, "SELECT COUNT(*) FROM ticket WHERE group_id=%s", group_id)),
                staff=int(await _scalar(cur, "SELECT COUNT(*) FROM staff")),
                days=int(await _scalar(cur, "SELECT COUNT(*) FROM ticket_counter")),
                agent_group_id=int(group_id),
                customer_id_min=int(cmin or 0),
                customer_id_max=int(cmax or 0),
                detail_ids=ids,
            )
    finally:
        conn.close()
