"""Worker CPU per new-ticket message: `process_inbound_event` for N Official Account texts from new customers.

    python -m bench.worker_cpu                          # MariaDB (127.0.0.1:3306, database gongdan_bench_worker)
    python -m bench.worker_cpu --db sqlite -n 300
    python -m bench.worker_cpu --profile 40             # also cProfile (CPU clock) the measured messages, top 40
    python -m bench.worker_cpu --statements             # also print one message's round trips (SQL, BEGIN, ...)
    python -m bench.worker_cpu -n 200 --follow-ups 4    # then 4 texts per customer that join their tickets
    python -m bench.worker_cpu --database gongdan_bench_worker_b   # runs at once (A/B trees): one database each

What it does: the demo organisation (`seed_demo`: skill groups, routing rules, SLA policies, KB) in a fresh
database built by `generate_schemas`, one Official Account in safe mode, and the WeChat simulator in a child
process (so its CPU is not counted; the desk's `user/info` call for each new follower goes to it over HTTP as in
production). N + warm-up encrypted callbacks from distinct new customers (the text of bench.callbacks: an order
number and 退款, which the conversion rules turn into a ticket) are posted through the callback endpoint first,
unmeasured; then each stored event is processed by `process_inbound_event` the way the arq job does, one after
another, with follow-up jobs (outbox deliveries) only recorded, once the process's heap is settled as a worker's is
(``app.heap.settle``). Logging is configured as the worker has it (JSON lines at INFO), written to /dev/null.

Reported, per message: CPU of the whole process (time.process_time: the event loop, the wechatpy thread,
aiosqlite's thread on SQLite) and of the event-loop thread alone (time.thread_time), the SQL statements, and for
scale the same figures for bare `SELECT 1` round trips through tortoise. With --follow-ups K, every customer
(warm-up ones too) then sends K more texts, round by round, that join the ticket their first message opened; those
are measured the same way (the first --warmup of them not), in contiguous chunks so each sender's messages are
processed in order. The messages are measured in chunks (--chunks): on a shared machine the best chunk repeats from
run to run better than the mean does.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

APPID = "wxbe0c000000000002"
SECRET = "bench-worker-mp-secret-0123456789"
TOKEN = "gongdanbenchworker"
AES_KEY = "WorkerCpuBenchAesKey0123456789abcdefghijklm"  # 43 characters
TEXT = "订单号 {order} 退款还没到账"
FOLLOW_UP = "银行那边说还没收到，第{k}次问了"
MYSQL_ADMIN = "mysql://root:@127.0.0.1:3306/mysql"
MYSQL_DB = "gongdan_bench_worker"


def _serve_simulator(state: Any, port: int, ready: Any) -> None:
    from simulator import SimulatorServer

    server = SimulatorServer(state, port=port)
    server.start()
    ready.set()
    while True:
        time.sleep(3600)


async def _init_db(kind: str, settings: Any) -> Any:
    from tortoise import Tortoise

    from app.db import MODEL_MODULES, tortoise_config

    if kind == "sqlite":
        await Tortoise.init(db_url="sqlite://:memory:", modules={"gongdan": MODEL_MODULES})
    else:
        import aiomysql

        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS {MYSQL_DB}")
            await cur.execute(f"CREATE DATABASE {MYSQL_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        conn.close()
        await Tortoise.init(config=tortoise_config(settings))
    await Tortoise.generate_schemas()
    return Tortoise.get_connection("default")


@contextmanager
def _round_trips(db: str, into: list[str]) -> Iterator[None]:
    """Every command aiomysql sends (BEGIN, COMMIT and SAVEPOINT too, which tortoise does not log)."""
    if db != "mysql":
        yield
        return
    import aiomysql

    original = aiomysql.Connection._execute_command

    async def counting(self: Any, command: int, sql: Any) -> Any:
        into.append(sql.decode() if isinstance(sql, bytes) else str(sql))
        return await original(self, command, sql)

    aiomysql.Connection._execute_command = counting
    try:
        yield
    finally:
        aiomysql.Connection._execute_command = original


def _cpu() -> tuple[float, float]:
    return time.process_time(), time.thread_time()


class _Stats:
    """One measured run: totals, per-chunk figures, one message's statements, the SELECT 1 floor, the profile."""

    def __init__(self) -> None:
        self.n = 0
        self.process_s = self.thread_s = self.wall_s = 0.0
        self.per_chunk: list[tuple[float, float]] = []
        self.statements: list[str] = []
        self.round_trips: list[str] = []
        self.floor: tuple[int, float, float] = (0, 0.0, 0.0)
        self.profiler: cProfile.Profile | None = None

    def report(self, label: str, a: argparse.Namespace) -> None:
        n = self.n
        print(f"{label}: {1000 * self.process_s / n:.2f} ms CPU (process), {1000 * self.thread_s / n:.2f} ms CPU "
              f"(event-loop thread), {1000 * self.wall_s / n:.2f} ms wall, {len(self.statements)} SQL statements"
              + (f" ({len(self.round_trips)} round trips with BEGIN/COMMIT/SAVEPOINT)" if self.round_trips else ""))
        process_ms = sorted(c[0] for c in self.per_chunk)
        loop_ms = sorted(c[1] for c in self.per_chunk)
        print(f"  over {len(self.per_chunk)} chunks: best {process_ms[0]:.2f} / median "
              f"{statistics.median(process_ms):.2f} ms CPU (process), best {loop_ms[0]:.2f} / median "
              f"{statistics.median(loop_ms):.2f} ms (event-loop thread)")
        k, q, r = self.floor
        print(f"baseline {k} x SELECT 1: {1000 * q / n:.2f} ms CPU (process), {1000 * r / n:.2f} ms "
              f"CPU (event-loop thread)  [{1000 * q / (n * k):.3f} ms per round trip]")
        if a.statements:
            print("\n".join(s[:160] for s in (self.round_trips or self.statements)))
        if self.profiler:
            out = io.StringIO()
            stats = pstats.Stats(self.profiler, stream=out)
            stats.sort_stats(a.sort).print_stats(a.profile)
            if a.dump:
                stats.dump_stats(f"{a.dump}.{label.split()[0]}" if a.follow_ups else a.dump)
            print(out.getvalue())


async def _measure(a: argparse.Namespace, conn: Any, event_ids: list[int],
                   chunked: Callable[[list[int]], list[list[int]]]) -> _Stats:
    """Process the events: the first with its statements counted apart, the rest in chunks under the CPU clocks."""
    from app.channels import inbound_jobs
    from tests.sqlcount import count_statements

    st = _Stats()
    # one message's statements, counted apart (the counting handler costs CPU of its own)
    with count_statements() as statements, _round_trips(a.db, st.round_trips):
        assert await inbound_jobs.process_inbound_event({}, event_ids[0]) == "done"
    st.statements = list(statements)
    measured = event_ids[1:]
    st.profiler = cProfile.Profile(time.thread_time) if a.profile else None  # CPU, not wall time
    # in chunks: on a shared machine the best chunk is the figure that repeats (the median is printed beside it)
    chunks = [c for c in chunked(measured) if c]
    p0, t0 = _cpu()
    w0 = time.perf_counter()
    if st.profiler:
        st.profiler.enable()
    for chunk in chunks:
        c0, d0 = _cpu()
        for event_id in sorted(chunk):
            assert await inbound_jobs.process_inbound_event({}, event_id) == "done"
        c1, d1 = _cpu()
        st.per_chunk.append((1000 * (c1 - c0) / len(chunk), 1000 * (d1 - d0) / len(chunk)))
    if st.profiler:
        st.profiler.disable()
    p1, t1 = _cpu()
    w1 = time.perf_counter()
    st.n = len(measured)
    st.process_s, st.thread_s, st.wall_s = p1 - p0, t1 - t0, w1 - w0
    # the floor: round trips that do nothing, through the same client
    k = max(1, len(st.statements))
    q0, r0 = _cpu()
    for _ in range(st.n * k):
        await conn.execute_query("SELECT 1")
    q1, r1 = _cpu()
    st.floor = (k, q1 - q0, r1 - r0)
    return st


async def main_async(a: argparse.Namespace, state: Any, sim_account: Any, openids: list[str], port: int) -> None:
    """Seed, post the callbacks, process them one by one under the CPU clocks, print the figures."""
    import httpx

    from app import heap
    from app import queue as jobqueue
    from app.channels import inbound_jobs
    from app.channels.models import InboundEvent
    from app.channels.wechat_mp import accounts
    from app.logs import configure_logging
    from app.seed import seed_demo
    from app.settings import load_settings, set_settings
    from app.setup import setup
    from app.tickets.models import Ticket
    from app.wecom.mp import reset_mp_apis
    from app.wecom.tokens import reset_token_stores
    from bench import procs
    from simulator import WeChatDriver

    data_dir = Path(tempfile.mkdtemp(prefix="gongdan-worker-cpu-"))
    database_url = "sqlite://:memory:" if a.db == "sqlite" else f"mysql://root:@127.0.0.1:3306/{MYSQL_DB}"
    settings = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": database_url}, env_file=None).with_overrides(
        data_dir=data_dir, wechat_api_base=f"http://127.0.0.1:{port}/cgi-bin/", db_pool_size=4)
    set_settings(settings)
    setup()
    conn = await _init_db(a.db, settings)
    reset_mp_apis()
    reset_token_stores()
    accounts.forget_cache()
    await seed_demo()
    await accounts.upsert_account(key="default", name="压测号", appid=APPID, secret=SECRET, token=TOKEN,
                                  aes_key=AES_KEY, template_id="TPL", is_default=True)
    # follow-up jobs (outbox deliveries) are counted, not run
    jobqueue.set_queue(procs.CountingQueue())
    from app.main import create_app

    app = create_app(settings, run_jobs=False)
    # as the worker logs (JSON lines at INFO), into /dev/null; after create_app, which configures logging too
    configure_logging(fmt="json", level="INFO")
    devnull = Path(os.devnull).open("w")  # noqa: ASYNC230 - once, before anything is measured
    for handler in logging.getLogger().handlers:
        handler.setStream(devnull)  # type: ignore[attr-defined]
    driver = WeChatDriver(state, sim_account, "http://desk/callbacks/wechat", transport=httpx.ASGITransport(app=app))
    for i, openid in enumerate(openids):
        result = await driver.send_text(openid, TEXT.format(order=f"2026120{i:09d}"))
        assert result.response is not None and result.response.text == "success", result
    pending: list[Any] = list(await InboundEvent.filter(status="pending").order_by("id").values_list("id", flat=True))
    event_ids = [int(i) for i in pending]
    assert len(event_ids) == len(openids), (len(event_ids), len(openids))
    tickets_before = await Ticket.all().count()

    warm, measured = event_ids[:a.warmup], event_ids[a.warmup:]
    heap.settle()  # start-up is over: the collector as a worker sets it once started
    for event_id in warm:
        assert await inbound_jobs.process_inbound_event({}, event_id) == "done"
    # new-ticket messages: strided chunks (each customer has one message here, so order does not matter)
    stats = await _measure(a, conn, measured, chunked=lambda ids: [ids[i::a.chunks] for i in range(a.chunks)])
    created = await Ticket.all().count() - tickets_before
    assert created == len(event_ids), f"{created} tickets for {len(event_ids)} messages"
    print(f"db={a.db} messages={stats.n} (after {len(warm) + 1} warm-up) tickets_created={created}")
    stats.report("new-ticket message", a)

    if a.follow_ups:
        # K more texts per customer, round by round, that join the ticket the first one opened
        for k in range(a.follow_ups):
            for openid in openids:
                result = await driver.send_text(openid, FOLLOW_UP.format(k=k + 1))
                assert result.response is not None and result.response.text == "success", result
        pending = list(await InboundEvent.filter(status="pending").order_by("id").values_list("id", flat=True))
        follow_ids = [int(i) for i in pending]
        assert len(follow_ids) == a.follow_ups * len(openids), (len(follow_ids), a.follow_ups * len(openids))
        tickets_before = await Ticket.all().count()
        # the first --warmup of them unmeasured; then contiguous chunks, so each sender's messages keep their order
        warm_follow = follow_ids[:a.warmup]
        for event_id in warm_follow:
            assert await inbound_jobs.process_inbound_event({}, event_id) == "done"
        rest = follow_ids[a.warmup:]
        size = -(-max(1, len(rest) - 1) // a.chunks)
        stats = await _measure(a, conn, rest, chunked=lambda ids: [ids[i:i + size] for i in range(0, len(ids), size)])
        created = await Ticket.all().count() - tickets_before
        assert created == 0, f"{created} tickets opened by follow-ups"
        print(f"\nfollow-ups={a.follow_ups} per customer: messages={stats.n} (after {len(warm_follow) + 1} warm-up) "
              f"tickets_created={created}")
        stats.report("joining message", a)
    jobqueue.set_queue(None)
    from tortoise import Tortoise

    await Tortoise.close_connections()


def main(argv: list[str] | None = None) -> None:
    global MYSQL_DB
    p = argparse.ArgumentParser(prog="python -m bench.worker_cpu", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--db", choices=("mysql", "sqlite"), default="mysql")
    p.add_argument("-n", "--messages", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--chunks", type=int, default=5, help="measure in this many chunks (best and median printed)")
    p.add_argument("--profile", type=int, default=0, metavar="TOP", help="cProfile the measured messages")
    p.add_argument("--sort", default="tottime", help="pstats sort key for --profile (tottime, cumulative)")
    p.add_argument("--statements", action="store_true", help="print one message's SQL statements")
    p.add_argument("--dump", default="", help="with --profile: also write the pstats file here")
    p.add_argument("--database", default=MYSQL_DB, help="MariaDB database to (re)create (several runs at once: "
                   "one name each)")
    p.add_argument("--follow-ups", type=int, default=0, metavar="K",
                   help="then K more texts per customer that join their tickets, measured the same way")
    a = p.parse_args(argv)
    MYSQL_DB = a.database
    os.environ.setdefault("GONGDAN_ENV", "test")

    from bench.procs import free_port
    from simulator import SimulatorState

    state = SimulatorState()
    sim_account = state.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, callback_url="http://desk/callbacks/wechat",
                                       mode="safe")
    openids = [f"oWorkerCpu{i:017d}" for i in range(a.warmup + 1 + a.messages)]
    for openid in openids:
        state.mp.ensure_user(APPID, openid)  # followers the simulator's user/info knows
    port = free_port()
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=_serve_simulator, args=(state, port, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(20):
            raise SystemExit("the simulator did not start")
        asyncio.run(main_async(a, state, sim_account, openids, port))
    finally:
        child.terminate()
        child.join(5)


if __name__ == "__main__":
    main()
