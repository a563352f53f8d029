"""SLA cron and routing figures.

    python -m bench.sla [--tickets 1000000] [--open 100000] [--due 500] [--mysql mysql://root:@127.0.0.1:3306/]

Builds a MariaDB database of its own (`gongdan_bench_sla`, schema from the models) holding N tickets of which
`--open` are live with SLA clocks spread over the next 30 days and `--due` whose next SLA moment has passed. It
then measures one SLA cron pass (`app.tickets.sla.run_due`) with nothing due and with the due batch (each due
ticket is breached and gets escalation step 1: an SlaEvent, an audit row and a WeCom card in the outbox), counting
the SQL statements it sends, and shows the plan of the cron's query. Routing: a 50-rule set evaluated over
sample messages (rules evaluated per second), next to the rate at which the same database creates tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomysql
from tortoise import Tortoise

from app.db import MODEL_MODULES
from app.security.scope import SYSTEM
from app.tickets import routing, sla
from app.tickets.calendar import Calendar
from app.timeutil import set_clock

NOW = datetime(2025, 10, 9, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai on a working Thursday
DB = "gongdan_bench_sla"


class QueryCounter:
    """Counts statements sent through aiomysql (every tortoise query goes through Cursor.execute)."""

    def __init__(self) -> None:
        self.count = 0
        self._orig = aiomysql.Cursor.execute

    def __enter__(self) -> QueryCounter:
        counter = self

        async def execute(cur: Any, query: str, args: Any = None) -> Any:
            counter.count += 1
            return await counter._orig(cur, query, args)

        aiomysql.Cursor.execute = execute  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aiomysql.Cursor.execute = self._orig  # type: ignore[method-assign]


async def _prepare(base: str) -> None:
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        await cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    await Tortoise.init(db_url=f"{base}{DB}?maxsize=8", modules={"gongdan": MODEL_MODULES},
                        _enable_global_fallback=True)
    await Tortoise.generate_schemas()


async def _fill(total: int, live: int, due: int) -> float:
    from app.customers.models import Customer
    from app.staff.models import Department, SkillGroup, Staff
    from app.tickets.models import SlaPolicy

    await Department.create(id=1, name="公司", path="/1/")
    lead = await Staff.create(userid="lead", name="组长", role="lead", department_id=1, leads_department_ids=[1])
    agent = await Staff.create(userid="agent", name="客服", department_id=1)
    group = await SkillGroup.create(name="客服组", department_id=1, lead=lead)
    await group.members.add(agent)
    policy = await SlaPolicy.create(name="标准", first_response_minutes=240, resolution_minutes=1440)
    customer = await Customer.create(name="客户")
    conn = Tortoise.get_connection("default")
    started = time.perf_counter()
    rng = random.Random(7)
    batch: list[str] = []
    created = NOW - timedelta(days=60)

    def row(i: int) -> str:
        is_live = i < live
        number = f"B-{i:08d}"
        if not is_live:
            return (f"('{number}','历史工单','','closed','normal','','{{}}',{customer.id},'[]',1,"
                    f"'{created:%Y-%m-%d %H:%M:%S}','{created:%Y-%m-%d %H:%M:%S}','{created:%Y-%m-%d %H:%M:%S}',"
                    f"NULL,'{{}}',0,NULL,NULL,NULL,NULL)")
        if i < due:
            at = NOW - timedelta(minutes=rng.randint(1, 50))
        else:
            at = NOW + timedelta(minutes=rng.randint(1, 30 * 24 * 60))
        state = json.dumps({"first_response": {"target": 14400, "due": at.isoformat(), "warn_at": None,
                                               "done": []}})
        return (f"('{number}','进行中工单','','open','normal','','{{}}',{customer.id},'[]',1,"
                f"'{created:%Y-%m-%d %H:%M:%S}','{created:%Y-%m-%d %H:%M:%S}','{created:%Y-%m-%d %H:%M:%S}',"
                f"{policy.id},'{state}',0,'{at:%Y-%m-%d %H:%M:%S}','{at:%Y-%m-%d %H:%M:%S}',{group.id},{agent.id})")

    columns = ("number,subject,description,status,priority,category,custom_fields,customer_id,tags,version,"
               "created_at,updated_at,last_activity_at,sla_policy_id,sla_state,sla_breached,sla_next_check_at,"
               "first_response_due,group_id,assignee_id")
    for i in range(total):
        batch.append(row(i))
        if len(batch) == 5000:
            await conn.execute_script(f"INSERT INTO ticket ({columns}) VALUES " + ",".join(batch))
            batch = []
    if batch:
        await conn.execute_script(f"INSERT INTO ticket ({columns}) VALUES " + ",".join(batch))
    return time.perf_counter() - started


def _rules(n: int = 50) -> routing.RuleSet:
    kinds = ["keywords", "regex", "category", "vip", "channel"]
    rules = []
    for i in range(n - 2):
        kind = kinds[i % len(kinds)]
        when: Any = {
            "keywords": {"keywords": [f"关键词{i}", f"词组{i}", f"问题{i}"]},
            "regex": {"regex": rf"订单(号)?\s*{i}\d{{6}}"},
            "category": {"category": [f"类别{i}"]},
            "vip": {"vip_min": 1 + i % 3, "keywords": [f"会员{i}"]},
            "channel": {"channel": ["wecom_kf"], "customer_tags": [f"标签{i}"]},
        }[kind]
        rules.append({"name": f"规则{i}", "when": when, "then": {"tags": [f"t{i}"]}})
    rules.append({"name": "VIP", "when": {"vip_min": 1}, "then": {"priority": "+1"}})
    rules.append({"name": "非工作时间", "when": {"business_hours": False}, "then": {"after_hours": True}})
    return routing.parse_document({"default_group": "客服组", "rules": rules})


def routing_rate(seconds: float = 2.0) -> tuple[float, int]:
    """Rules evaluated per second (a 50-rule set, varied messages), and how many messages that was."""
    ruleset = _rules()
    cal = Calendar.build()
    texts = ["我的订单 12345678 退款还没到账，请尽快处理", "App 登录报错 500，关键词7", "会员3 想开发票",
             "快递三天没有更新物流信息", "你好，在吗"]
    facts = [routing.Facts(channel=c, text=t, category=k, vip_level=v, now=NOW)
             for t in texts for c in ("wechat_mp", "wecom_kf") for k in ("", "类别2") for v in (0, 2)]
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for f in facts:
            routing.evaluate(ruleset, f, calendars=lambda _: cal)
        n += len(facts)
    elapsed = time.perf_counter() - started
    return n * len(ruleset.rules) / elapsed, int(n / elapsed)


async def create_rate(n: int = 200) -> float:
    """Tickets created per second through the service on this database (sequential)."""
    from app.customers.models import Customer
    from app.tickets import service

    customer = await Customer.first()
    assert customer is not None
    started = time.perf_counter()
    for i in range(n):
        await service.create(actor=SYSTEM, customer_id=customer.id, subject=f"压测工单 {i}")
    return n / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    from app.logs import configure_logging
    from app.settings import load_settings, set_settings

    configure_logging(fmt="console", level="WARNING")
    set_settings(load_settings({"GONGDAN_ENV": "test"}, env_file=None))
    set_clock(lambda: NOW)
    await _prepare(args.mysql)
    fill = await _fill(args.tickets, args.open, args.due)
    print(f"filled {args.tickets:,} tickets ({args.open:,} live, {args.due:,} due now) in {fill:.1f} s")
    conn = Tortoise.get_connection("default")
    plan = await conn.execute_query_dict(
        "EXPLAIN SELECT id FROM ticket WHERE sla_next_check_at <= %s ORDER BY sla_next_check_at LIMIT 500",
        [NOW.strftime("%Y-%m-%d %H:%M:%S")])
    print("cron query plan:", [(p.get("type"), p.get("key"), p.get("rows"), p.get("Extra")) for p in plan])

    rounds = []
    for label in ("due batch", "next batch", "nothing due"):
        with QueryCounter() as counter:
            started = time.perf_counter()
            processed = await sla.run_due(limit=500)
            elapsed = time.perf_counter() - started
        rounds.append((label, processed, elapsed, counter.count))
        print(f"sla cron run ({label}): {processed} tickets in {elapsed * 1000:.0f} ms, {counter.count} queries"
              f" ({counter.count / max(processed, 1):.1f} per ticket)")
    rate, messages = routing_rate()
    print(f"routing: {rate:,.0f} rules evaluated/s (50 rules; {messages:,} messages/s)")
    created = await create_rate()
    print(f"ticket creation through the service on the same database: {created:,.0f} tickets/s "
          f"(routing a ticket costs {1 / messages * 1000:.3f} ms of its {1 / created * 1000:.1f} ms)")
    await Tortoise.close_connections()
    set_clock(None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--mysql", default="mysql://root:@127.0.0.1:3306/")
    asyncio.run(main(parser.parse_args()))
