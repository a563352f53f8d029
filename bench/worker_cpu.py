"""Worker CPU per new-ticket message: `process_inbound_event` for N Official Account texts from new customers.

    python -m bench.worker_cpu                          # MariaDB (127.0.0.1:3306, database gongdan_bench_worker)
    python -m bench.worker_cpu --db sqlite -n 300
    python -m bench.worker_cpu --profile 40             # also cProfile (CPU clock) the measured messages, top 40
    python -m bench.worker_cpu --statements             # also print one message's round trips (SQL, BEGIN, ...)

What it does: the demo organisation (`seed_demo`: skill groups, routing rules, SLA policies, KB) in a fresh
database built by `generate_schemas`, one Official Account in safe mode, and the WeChat simulator in a child
process (so its CPU is not counted; the desk's `user/info` call for each new follower goes to it over HTTP as in
production). N + warm-up encrypted callbacks from distinct new customers (the text of bench.callbacks: an order
number and 退款, which the conversion rules turn into a ticket) are posted through the callback endpoint first,
unmeasured; then each stored event is processed by `process_inbound_event` the way the arq job does, one after
another, with follow-up jobs (outbox deliveries) only recorded. Logging is configured as the worker has it
(JSON lines at INFO), written to /dev/null.

Reported, per message: CPU of the whole process (time.process_time: the event loop, the wechatpy thread,
aiosqlite's thread on SQLite) and of the event-loop thread alone (time.thread_time), the SQL statements, and for
scale the same figures for bare `SELECT 1` round trips through tortoise. The messages are measured in chunks
(--chunks): on a shared machine the best chunk repeats from run to run better than the mean does.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

APPID = "wxbe0c000000000002"
SECRET = "bench-worker-mp-secret-0123456789"
TOKEN = "gongdanbenchworker"
AES_KEY = "WorkerCpuBenchAesKey0123456789abcdefghijklm"  # 43 characters
TEXT = "订单号 {order} 退款还没到账"
MYSQL_ADMIN = "mysql://root:@127.0.0.1:3306/mysql"
MYSQL_DB = "gongdan_bench_worker"


class _Recorder:
    """The job queue: follow-up jobs are recorded, not run."""

    def __init__(self) -> None:
        self.jobs: list[str] = []

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        self.jobs.append(name)


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


async def main_async(a: argparse.Namespace, state: Any, sim_account: Any, openids: list[str], port: int) -> None:
    """Seed, post the callbacks, process them one by one under the CPU clocks, print the figures."""
    import httpx

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
    from simulator import WeChatDriver
    from tests.sqlcount import count_statements

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
    recorder = _Recorder()
    jobqueue.set_queue(recorder)
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
    for event_id in warm:
        assert await inbound_jobs.process_inbound_event({}, event_id) == "done"
    # one message's statements, counted apart (the counting handler costs CPU of its own)
    round_trips: list[str] = []
    with count_statements() as statements, _round_trips(a.db, round_trips):
        assert await inbound_jobs.process_inbound_event({}, measured[0]) == "done"
    measured = measured[1:]
    profiler = cProfile.Profile(time.thread_time) if a.profile else None  # CPU, not wall time
    # in chunks: on a shared machine the best chunk is the figure that repeats (the median is printed beside it)
    chunks = [measured[i::a.chunks] for i in range(a.chunks)]
    per_chunk: list[tuple[float, float]] = []
    p0, t0 = _cpu()
    w0 = time.perf_counter()
    if profiler:
        profiler.enable()
    for chunk in chunks:
        c0, d0 = _cpu()
        for event_id in sorted(chunk):
            assert await inbound_jobs.process_inbound_event({}, event_id) == "done"
        c1, d1 = _cpu()
        per_chunk.append((1000 * (c1 - c0) / len(chunk), 1000 * (d1 - d0) / len(chunk)))
    if profiler:
        profiler.disable()
    p1, t1 = _cpu()
    w1 = time.perf_counter()
    n = len(measured)
    created = await Ticket.all().count() - tickets_before
    assert created == len(event_ids), f"{created} tickets for {len(event_ids)} messages"

    # the floor: round trips that do nothing, through the same client
    k = max(1, len(statements))
    rounds = n * k
    q0, r0 = _cpu()
    for _ in range(rounds):
        await conn.execute_query("SELECT 1")
    q1, r1 = _cpu()

    print(f"db={a.db} messages={n} (after {len(warm) + 1} warm-up) tickets_created={created}")
    print(f"new-ticket message: {1000 * (p1 - p0) / n:.2f} ms CPU (process), {1000 * (t1 - t0) / n:.2f} ms CPU "
          f"(event-loop thread), {1000 * (w1 - w0) / n:.2f} ms wall, {len(statements)} SQL statements"
          + (f" ({len(round_trips)} round trips with BEGIN/COMMIT/SAVEPOINT)" if round_trips else ""))
    process_ms = sorted(c[0] for c in per_chunk)
    loop_ms = sorted(c[1] for c in per_chunk)
    print(f"  over {len(chunks)} chunks: best {process_ms[0]:.2f} / median {statistics.median(process_ms):.2f} ms "
          f"CPU (process), best {loop_ms[0]:.2f} / median {statistics.median(loop_ms):.2f} ms (event-loop thread)")
    print(f"baseline {k} x SELECT 1: {1000 * (q1 - q0) / n:.2f} ms CPU (process), {1000 * (r1 - r0) / n:.2f} ms "
          f"CPU (event-loop thread)  [{1000 * (q1 - q0) / rounds:.3f} ms per round trip]")
    if a.statements:
        print("\n".join(s[:160] for s in (round_trips or statements)))
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(a.sort).print_stats(a.profile)
        if a.dump:
            stats.dump_stats(a.dump)
        print(out.getvalue())
    jobqueue.set_queue(None)
    from tortoise import Tortoise

    await Tortoise.close_connections()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.worker_cpu", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--db", choices=("mysql", "sqlite"), default="mysql")
    p.add_argument("-n", "--messages", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--chunks", type=int, default=5, help="measure in this many chunks (best and median printed)")
    p.add_argument("--profile", type=int, default=0, metavar="TOP", help="cProfile the measured messages")
    p.add_argument("--sort", default="tottime", help="pstats sort key for --profile (tottime, cumulative)")
    p.add_argument("--statements", action="store_true", help="print one message's SQL statements")
    p.add_argument("--dump", default="", help="with --profile: also write the pstats file here")
    a = p.parse_args(argv)
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
