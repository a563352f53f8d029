"""app.worker: `gongdan worker` serves the inbound and outbox lanes side by side, each with its own job slots."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from app import queue as jobqueue
from app import worker
from app.queue import INBOUND, OUTBOX, ArqQueue
from tests.conftest import make_settings, redis_url_or_skip


def _own_db(url: str) -> str:
    """Redis db 10: these tests flush it (other test runs on the machine use 11-15)."""
    return url.rsplit("/", 1)[0] + "/10"


async def _flushed(url: str, *, batched: bool = True) -> tuple[Any, ArqQueue]:
    """A pool on the Redis db of `url`, emptied, and a queue enqueueing through it."""
    from arq.connections import create_pool

    from app.redisconn import redis_settings_from_url

    pool = await create_pool(redis_settings_from_url(url))
    await pool.flushdb()
    return pool, ArqQueue(pool, batched=batched)


async def _nothing(ctx: dict[str, Any]) -> None:
    """A start-up or shutdown hook with nothing to open (these workers use Redis alone)."""


async def test_an_outbox_job_runs_before_the_inbound_backlog_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _own_db(redis_url_or_skip())
    ran: list[tuple[str, float]] = []

    async def bench_slow_inbound(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.01)
        ran.append(("in", time.monotonic()))

    async def bench_deliver(ctx: dict[str, Any], n: int) -> None:
        ran.append(("out", time.monotonic()))

    monkeypatch.setitem(worker.JOBS, "bench_slow_inbound", bench_slow_inbound)
    monkeypatch.setitem(worker.JOBS, "bench_deliver", bench_deliver)
    monkeypatch.setitem(jobqueue.LANES, "bench_deliver", OUTBOX)
    monkeypatch.setitem(worker.MAX_JOBS, INBOUND, 2)
    monkeypatch.setattr(worker, "CRONS", [])
    pool, q = await _flushed(url)
    try:
        for n in range(120):
            await q.enqueue("bench_slow_inbound", n)
        await q.enqueue("bench_deliver", 1)
        workers = await worker.run_lanes(make_settings(redis_url=url), [INBOUND, OUTBOX], burst=True,
                                         startup=_nothing, shutdown=_nothing, poll_delay=0.01)
    finally:
        await pool.flushdb()
        await q.close()
    assert sorted(w.queue_name for w in workers) == ["arq:queue", "gongdan:outbox"]
    kinds = [k for k, _ in ran]
    assert kinds.count("in") == 120 and kinds.count("out") == 1
    # 120 inbound jobs, 2 at a time: the delivery did not wait for them
    assert kinds.index("out") < 30


def test_worker_settings_split_jobs_and_crons_by_lane() -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:6379/15")
    inbound: Any = worker.worker_settings(settings, lane=INBOUND)
    outbox: Any = worker.worker_settings(settings, lane=OUTBOX)
    names = {lane: {f.name for f in ws.functions} for lane, ws in ((INBOUND, inbound), (OUTBOX, outbox))}
    assert names[OUTBOX] == {"deliver_outbox", "sweep_outbox"}
    assert "process_inbound_event" in names[INBOUND] and not names[INBOUND] & names[OUTBOX]
    assert [c.name for c in outbox.cron_jobs] == ["cron:sweep_outbox"]
    assert "cron:sweep_outbox" not in {c.name for c in inbound.cron_jobs}
    assert (inbound.queue_name, outbox.queue_name) == ("arq:queue", "gongdan:outbox")
    # a lane reads its queue every 50 ms: at arq's 0.5 s, 16 slots capped a worker at 32 jobs a second (the burst)
    assert (inbound.max_jobs, outbox.max_jobs, inbound.poll_delay, outbox.poll_delay) == (16, 32, 0.05, 0.05)


def test_cli_worker_refuses_an_unknown_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    args = cli.build_parser().parse_args(["worker", "--queues", "inbound,nope"])
    with pytest.raises(SystemExit) as exc:
        args.func(args)
    assert exc.value.code == 2



_LOWER = """
import json, os, sys, threading
from pathlib import Path
from app.worker import lower_priority
if sys.argv[3] != "0":
    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[3]))
done = lower_priority(int(sys.argv[1]), idle=sys.argv[4] == "1", autogroup=Path(sys.argv[2]))
later = []
thread = threading.Thread(target=lambda: later.append(os.sched_getscheduler(0)))
thread.start()
thread.join()
print(json.dumps({"done": done, "nice": os.getpriority(os.PRIO_PROCESS, 0),
                  "autogroup": Path(sys.argv[2]).read_text(),
                  "idle_class": [os.sched_getscheduler(0) == os.SCHED_IDLE, later[0] == os.SCHED_IDLE]}))
"""
#: the nice value the children start from: this process's (whatever the test run was started with)
BASE = os.getpriority(os.PRIO_PROCESS, 0)


def _lower_in_child(tmp_path: Any, nice: int, *, leader: bool, start_nice: int = 0,
                    idle: bool = False) -> dict[str, Any]:
    """lower_priority in a child process (the test process keeps its priority), against a stand-in autogroup file."""
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-7 nice 0\n")
    out = subprocess.run([sys.executable, "-c", _LOWER, str(nice), str(group), str(start_nice), str(int(idle))],
                         check=True, capture_output=True, text=True, start_new_session=leader)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_a_worker_leading_its_session_lowers_itself_and_its_scheduling_group(tmp_path: Any) -> None:
    assert _lower_in_child(tmp_path, BASE + 5, leader=True) == {
        "done": {"nice": BASE + 5, "autogroup_nice": BASE + 5}, "nice": BASE + 5, "autogroup": str(BASE + 5),
        "idle_class": [False, False]}


def test_a_worker_started_from_a_shell_leaves_the_shells_group_alone(tmp_path: Any) -> None:
    assert _lower_in_child(tmp_path, BASE + 5, leader=False) == {
        "done": {"nice": BASE + 5}, "nice": BASE + 5, "autogroup": "/autogroup-7 nice 0\n",
        "idle_class": [False, False]}


def test_lowering_never_raises_a_priority_and_zero_keeps_it(tmp_path: Any) -> None:
    assert _lower_in_child(tmp_path, BASE + 2, leader=True, start_nice=BASE + 4) == {
        "done": {"autogroup_nice": BASE + 2}, "nice": BASE + 4, "autogroup": str(BASE + 2),
        "idle_class": [False, False]}
    assert _lower_in_child(tmp_path, 0, leader=True) == {"done": {}, "nice": BASE, "autogroup": "/autogroup-7 nice 0\n",
                                                         "idle_class": [False, False]}


def test_an_idle_class_worker_and_every_thread_it_starts_give_the_core_to_any_other_process(tmp_path: Any) -> None:
    # SCHED_IDLE: a web, database or Redis process that wakes takes the core at once, not after the worker's slice
    assert _lower_in_child(tmp_path, BASE + 5, leader=True, idle=True) == {
        "done": {"nice": BASE + 5, "autogroup_nice": BASE + 5, "sched_idle": 1}, "nice": BASE + 5,
        "autogroup": str(BASE + 5), "idle_class": [True, True]}
    # nice 0 means "leave the worker's scheduling as it is": the idle class too
    assert _lower_in_child(tmp_path, 0, leader=True, idle=True)["idle_class"] == [False, False]


def test_worker_nice_comes_from_the_settings_and_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli
    from app.errors import ConfigError
    from app.settings import load_settings

    default = load_settings({"GONGDAN_ENV": "test"}, env_file=None)
    assert (default.worker_nice, default.worker_sched_idle) == (19, True)
    assert load_settings({"GONGDAN_ENV": "test", "WORKER_NICE": "0"}, env_file=None).worker_nice == 0
    assert not load_settings({"GONGDAN_ENV": "test", "WORKER_SCHED_IDLE": "false"}, env_file=None).worker_sched_idle
    with pytest.raises(ConfigError, match="WORKER_NICE"):
        load_settings({"GONGDAN_ENV": "test", "WORKER_NICE": "20"}, env_file=None)
    assert cli.build_parser().parse_args(["worker", "--nice", "3"]).nice == 3
    assert cli.build_parser().parse_args(["worker"]).nice is None


async def test_a_background_cron_gives_way_to_an_intake_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []

    async def heavy_chore(ctx: dict[str, Any]) -> int:
        ran.append(1)
        return 5

    wrapped = worker.yielding(heavy_chore)
    assert wrapped.__name__ == "heavy_chore"
    counts = iter([jobqueue.INTAKE_BACKLOG + 1, jobqueue.INTAKE_BACKLOG])
    asked: list[str] = []

    async def waiting(lane: str) -> int:
        asked.append(lane)
        return next(counts)

    monkeypatch.setattr(jobqueue, "waiting", waiting)
    assert await wrapped({}) is None and ran == []  # skipped: the next run does the work
    assert await wrapped({}) == 5 and ran == [1]
    assert asked == [INBOUND, INBOUND]


def test_the_model_crons_give_way_to_the_intake_and_the_desks_own_crons_do_not() -> None:
    jobs = worker.load_jobs()
    yielding = {name for name, fn in jobs.items() if getattr(fn, "yields_to_intake", False)}
    assert yielding == {"kb_embed_articles", "assist_embed_tickets", "assist_build_index", "assist_train"}
    assert {name for name, _ in worker.CRONS} >= yielding


async def test_a_queued_job_is_claimed_in_one_round_trip_when_it_is_due_and_nobody_runs_it() -> None:
    from arq import func
    from arq.constants import in_progress_key_prefix

    pool, q = await _flushed(_own_db(redis_url_or_skip()), batched=False)
    sent: list[tuple[Any, ...]] = []
    execute = pool.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(args)
        return await execute(*args, **options)

    try:
        for job_id, defer_by in (("due", None), ("later", 60.0), ("elsewhere", None), ("other", None)):
            await q.enqueue("deliver_outbox", job_id, job_id=job_id, defer_by=defer_by)
        await pool.psetex(in_progress_key_prefix + "elsewhere", 60_000, b"1")  # another worker is running it
        w = worker.ClaimingWorker(functions=[func(worker.deliver_outbox, name="deliver_outbox")], redis_pool=pool,
                                  queue_name="gongdan:outbox", handle_signals=False)
        assert await w.claim("other")  # the first claim loads the script
        pool.execute_command = counted  # type: ignore[method-assign]
        score = await w.claim("due")
        assert [a[0] for a in sent] == ["EVALSHA"]
        assert score == int(float(await pool.zscore("gongdan:outbox", "due")))
        assert await pool.pttl(in_progress_key_prefix + "due") > 0
        # in progress now (here or anywhere), deferred, running elsewhere, not queued: not ours
        assert [await w.claim(j) for j in ("due", "later", "elsewhere", "gone")] == [None] * 4
    finally:
        pool.execute_command = execute  # type: ignore[method-assign]
        await pool.flushdb()
        await q.close()


# two workers in one process: their shutdowns overlap, and warnings.catch_warnings (run_lanes' guard against arq's
# deprecated close) is not safe across tasks; a `gongdan worker` process runs one
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_two_workers_reading_one_queue_run_each_job_once(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _own_db(redis_url_or_skip())
    ran: list[int] = []

    async def bench_count(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0)
        ran.append(n)

    monkeypatch.setitem(worker.JOBS, "bench_count", bench_count)
    monkeypatch.setattr(worker, "CRONS", [])
    pool, q = await _flushed(url)
    try:
        for n in range(300):
            await q.enqueue("bench_count", n)
        settings = make_settings(redis_url=url)
        await asyncio.gather(*(worker.run_lanes(settings, [INBOUND], burst=True, startup=_nothing, shutdown=_nothing,
                                                poll_delay=0.01) for _ in range(2)))
    finally:
        await pool.flushdb()
        await q.close()
    assert sorted(ran) == list(range(300))


async def _until(check: Any) -> None:
    """Wait (5 s at most) until `check()` holds: the crons below tick every 20 ms."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - the counts move in jobs, which signal nothing
            await asyncio.sleep(0.01)


async def test_embedded_processes_sharing_a_database_run_each_cron_in_one_of_them_until_it_stops(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, int] = {"first": 0, "second": 0, "elsewhere": 0}

    def counting(key: str) -> dict[str, Any]:
        async def bench_tick(ctx: dict[str, Any]) -> None:
            ran[key] += 1

        return {"bench_tick": bench_tick}

    order = iter(ran)
    monkeypatch.setattr(worker, "load_jobs", lambda: counting(next(order)))
    monkeypatch.setattr(worker, "CRONS", [("bench_tick", 0.02)])
    shared = make_settings(database_url=f"sqlite://{tmp_path}/one.sqlite3", data_dir=tmp_path)
    other = make_settings(database_url=f"sqlite://{tmp_path}/two.sqlite3", data_dir=tmp_path)
    first, second, elsewhere = (worker.JobRuntime(s) for s in (shared, shared, other))
    await first.start()
    await _until(lambda: ran["first"] >= 1)
    await second.start()
    await elsewhere.start()
    try:
        await _until(lambda: ran["first"] >= 5 and ran["elsewhere"] >= 5)
        # the second process of the first database ran none of its ticks; a process of another database runs its own
        assert ran["second"] == 0
        await first.close()
        stopped = ran["first"]
        await _until(lambda: ran["second"] >= 3)
        assert ran["first"] == stopped
    finally:
        for runtime in (first, second, elsewhere):
            await runtime.close()


async def test_a_process_with_its_database_in_memory_always_runs_its_crons(tmp_path: Any) -> None:
    settings = make_settings(data_dir=tmp_path)
    leaders = [worker.CronLeader.for_settings(settings) for _ in range(2)]
    assert [leader.leads() for leader in leaders] == [True, True]
    assert list(tmp_path.iterdir()) == []


def test_a_process_that_cannot_write_its_lock_file_runs_its_crons(tmp_path: Any) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    leader = worker.CronLeader.for_settings(make_settings(database_url="sqlite://x.sqlite3", data_dir=blocked))
    assert leader.leads() and leader.leads()
