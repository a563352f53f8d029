"""The job functions, arq's WorkerSettings, and the in-process runner used when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, cast

from arq import cron, func
from arq.connections import create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

from app import heap
from app import queue as jobqueue
from app.db import close_db, init_db
from app.logs import configure_logging, get_logger
from app.outbox.jobs import deliver_outbox, sweep_outbox
from app.queue import INBOUND, LANES, OUTBOX, ArqQueue, InProcessQueue, JobFunc, lane_of, queue_name
from app.redisconn import redis_settings_from_url
from app.settings import Settings, get_settings

log = get_logger(__name__)

#: every job, by name; app.setup adds the rest through `register_job`
JOBS: dict[str, JobFunc] = {"deliver_outbox": deliver_outbox, "sweep_outbox": sweep_outbox}
LANES.update({"deliver_outbox": OUTBOX, "sweep_outbox": OUTBOX})
#: (job name, period in seconds) for the in-process runner; arq gets the same as cron entries
CRONS: list[tuple[str, int]] = [("sweep_outbox", 10)]  # app.outbox.service.SWEEP_EVERY


def yielding(fn: JobFunc) -> JobFunc:
    """`fn` as a job that does nothing (a later run does its work) while the intake is backed up."""

    @functools.wraps(fn)
    async def job(ctx: dict[str, Any], *args: Any) -> Any:
        if await jobqueue.intake_backed_up():
            log.info("job.yielded_to_intake", job=fn.__name__)
            return None
        return await fn(ctx, *args)

    job.yields_to_intake = True  # type: ignore[attr-defined]
    return job


def register_job(fn: JobFunc, *, every_seconds: int | None = None, lane: str = INBOUND,
                 yields_to_intake: bool = False) -> JobFunc:
    """Add a job function (optionally periodic, on a lane other than the inbound one, or giving way to an intake
    backlog) to the registry."""
    queue_name(lane)  # an unknown lane fails here, at setup
    if yields_to_intake:
        fn = yielding(fn)
    JOBS[fn.__name__] = fn
    if lane != INBOUND:
        LANES[fn.__name__] = lane
    if every_seconds and (fn.__name__, every_seconds) not in CRONS:
        CRONS.append((fn.__name__, every_seconds))
    return fn


def load_jobs() -> dict[str, JobFunc]:
    """Wire the application (app.setup), then return the job registry."""
    from app.setup import setup

    setup()
    return JOBS


class CronLeader:
    """Which of the embedded-mode processes on one machine and database runs the crons: the one holding an exclusive
    `flock` on a file named after the database. arq runs each cron tick once across its workers; without Redis,
    every web process (`serve --workers N`) ran every cron, and two processes embedded the same tickets. The kernel
    drops the lock with its process, so a survivor takes the crons over at its next tick."""

    def __init__(self, path: Path | None) -> None:
        #: None: the database is this process's own (SQLite in memory), so the process leads
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> CronLeader:
        """The leader file of `settings`' database, in its data directory."""
        if ":memory:" in settings.database_url:
            return cls(None)
        digest = hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]
        return cls(settings.data_dir / f"crons-{digest}.lock")

    def leads(self) -> bool:
        """Whether this process runs the crons (taking the lock when nobody holds it)."""
        if self._fd is not None or self.path is None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # a data directory it cannot write: run the crons rather than none
            log.warning("crons.lock_unavailable", path=str(self.path), error=exc.strerror)
            self.path = None
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the crons up (closing the file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Crons:
    """Periodic jobs for the in-process mode, enqueued by the leading process only."""

    def __init__(self, q: InProcessQueue, leader: CronLeader) -> None:
        self.q = q
        self.leader = leader
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, period in CRONS:
            self.tasks.append(asyncio.create_task(self._loop(name, period), name=f"gongdan-cron-{name}"))

    async def _loop(self, name: str, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            if self.leader.leads():
                await self.q.enqueue(name, job_id=f"cron:{name}")

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.leader.release()


class JobRuntime:
    """What the web process starts in its lifespan: an arq pool, or the in-process runner and its crons."""

    def __init__(self, settings: Settings, *, run_crons: bool = True) -> None:
        self.settings = settings
        self.run_crons = run_crons
        self.queue: jobqueue.JobQueue | None = None
        self._crons: _Crons | None = None

    async def start(self) -> jobqueue.JobQueue:
        functions = load_jobs()
        if self.settings.redis_url:
            pool = await create_pool(redis_settings_from_url(self.settings.redis_url))
            self.queue = ArqQueue(pool)
        else:
            q = InProcessQueue(functions, workers=self.settings.inprocess_workers)
            q.start()
            if self.run_crons:
                self._crons = _Crons(q, CronLeader.for_settings(self.settings))
                self._crons.start()
            self.queue = q
        jobqueue.set_queue(self.queue)
        return self.queue

    async def close(self) -> None:
        if self._crons is not None:
            await self._crons.close()
        if isinstance(self.queue, InProcessQueue | ArqQueue):
            await self.queue.close()
        jobqueue.set_queue(None)


# ---- arq worker -----------------------------------------------------------------------------------------------


async def _startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    await init_db(settings)
    load_jobs()
    jobqueue.set_queue(ArqQueue(ctx["redis"]))
    log.info("worker.started", frozen_objects=heap.settle())


async def _shutdown(ctx: dict[str, Any]) -> None:
    from app.setup import shutdown

    await shutdown()
    await close_db()
    jobqueue.set_queue(None)


def _cron_schedule(period: int) -> dict[str, Any]:
    """arq cron fields for "every `period` seconds" (periods divide a minute, an hour or a day)."""
    if period < 60:
        return {"second": set(range(0, 60, period))}
    if period < 3600:
        return {"second": {0}, "minute": set(range(0, 60, period // 60))}
    return {"second": {0}, "minute": {0}, "hour": set(range(0, 24, max(1, period // 3600)))}


#: jobs one worker process runs at once, per lane (the outbox lane waits on WeChat's API, not on our CPU)
MAX_JOBS = {INBOUND: 16, OUTBOX: 32}
#: seconds between a lane's queue reads when its job slots are full or its queue is empty (arq's default 0.5 s caps a
#: lane at max_jobs / 0.5 jobs a second however short the jobs are)
POLL_DELAY = 0.05


#: the kernel's scheduling group of this process's session (CONFIG_SCHED_AUTOGROUP, see sched(7)): with it on, the
#: cores are shared between sessions first, whatever the nice values inside them, so a worker that leads its own
#: session (systemd, supervisord, `setsid`) must lower its group, not only itself
AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int, *, idle: bool = False, autogroup: Path = AUTOGROUP) -> dict[str, int]:
    """Lower this process's CPU priority to `nice` (never raise it), and its session's group when it leads one;
    with `idle`, also put it in the idle scheduling class. `nice` 0 changes nothing."""
    done: dict[str, int] = {}
    if nice <= 0:
        return done
    # per thread on Linux: called before the worker starts any thread, so every later thread inherits it
    if os.getpriority(os.PRIO_PROCESS, 0) < nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        done["nice"] = nice
    # only the session's leader: a worker started from a shell would otherwise lower the shell and its siblings
    if os.getsid(0) == os.getpid() and autogroup.exists():
        try:
            current = int(autogroup.read_text().split("nice")[-1])
            if current < nice:
                autogroup.write_text(str(nice))
                done["autogroup_nice"] = nice
        except (OSError, ValueError) as exc:
            log.warning("worker.autogroup_unchanged", error=str(exc))
    # a lower weight alone still lets a running worker keep the core for its time slice when a web process wakes
    # (measured: p99 57 ms at c=64 while workers process); a SCHED_IDLE task is preempted by the waking one at once
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            done["sched_idle"] = 1
        except OSError as exc:
            log.warning("worker.sched_idle_unchanged", error=str(exc))
    return done


def worker_settings(settings: Settings | None = None, *, lane: str = INBOUND) -> type:
    """Build arq's WorkerSettings class for one lane of `gongdan worker` (its queue, its jobs, its crons)."""
    s = settings or get_settings()
    if not s.redis_url:
        raise RuntimeError("REDIS_URL is not set: jobs run inside `gongdan serve`, no worker is needed")
    jobs = load_jobs()
    # keep_result=0 lets the sweep reuse a job id once the job has finished
    job_functions = [func(cast(Any, f), name=n, keep_result=0) for n, f in jobs.items() if lane_of(n) == lane]
    cron_jobs = [
        cron(cast(Any, jobs[n]), name=f"cron:{n}", unique=True, keep_result=0, run_at_startup=False,
             **_cron_schedule(p))
        for n, p in CRONS if lane_of(n) == lane
    ]

    class WorkerSettings:
        functions = job_functions
        cron_jobs: list[Any] = []  # noqa: RUF012
        redis_settings = redis_settings_from_url(s.redis_url or "")
        queue_name = queue_name(lane)
        on_startup = _startup
        on_shutdown = _shutdown
        max_jobs = MAX_JOBS.get(lane, 32)
        poll_delay = POLL_DELAY
        job_timeout = 300
        handle_signals = True
        # on SIGTERM, let running jobs finish (they are idempotent anyway, but a finished job is not redone)
        job_completion_wait = 20

    WorkerSettings.cron_jobs = cron_jobs
    return WorkerSettings


#: arq's claim of a queued job (`Worker.start_jobs`: WATCH, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC) as one script,
#: the same checks made atomically in Redis instead of optimistically. KEYS: the job's in-progress key, the queue;
#: ARGV: the job id, now (ms), the in-progress timeout (ms). Returns the job's score, or 0 when the job is not ours to
#: run: running elsewhere, gone from the queue, or deferred to later.
_CLAIM_JOB = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
return score
"""


class ClaimingWorker(Worker):
    """arq's Worker claiming each queued job in one round trip: arq's four, paid again by every other worker that read
    the same head of the queue, cost a burst's workers and Redis more CPU than the jobs' own Redis work."""

    _claim_script: Any = None

    async def claim(self, job_id: str) -> int | None:
        """Mark the queued job in progress for this worker: its score (enqueue time, ms), None when not ours."""
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM_JOB)
        score = await self._claim_script(keys=[in_progress_key_prefix + job_id, self.queue_name],
                                         args=[job_id, timestamp_ms(), int(self.in_progress_timeout_s * 1000)])
        return int(float(score)) if score else None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq 0.28's start_jobs, its claim replaced by `claim` (the slot accounting is arq's)."""
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            score = await self.claim(job_id)
            if score is None:
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task


async def run_lanes(settings: Settings, lanes: list[str], *, burst: bool = False,
                    startup: Any = _startup, shutdown: Any = _shutdown, **overrides: Any) -> list[Any]:
    """Serve several lanes in this process: one arq Worker per lane, each with its own queue and job slots, so a
    backlog on one lane never holds up another; SIGTERM lets every lane's running jobs finish. Returns the workers."""
    import signal

    from arq.worker import get_kwargs

    if not lanes:
        raise ValueError("no lane to serve")
    ctx: dict[str, Any] = {}
    pool = await create_pool(redis_settings_from_url(settings.redis_url or ""))
    ctx["redis"] = pool
    await startup(ctx)
    workers: list[Worker] = []
    for lane in dict.fromkeys(lanes):
        kwargs: dict[str, Any] = dict(get_kwargs(worker_settings(settings, lane=lane)))
        # the database and the queue are opened once for the process, above
        kwargs.update(on_startup=None, on_shutdown=None, handle_signals=False, burst=burst, **overrides)
        workers.append(ClaimingWorker(**kwargs))
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        for w in workers:
            w.handle_sig_wait_for_completion(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    tasks = [asyncio.create_task(w.async_run(), name=f"gongdan-lane-{w.queue_name}") for w in workers]
    try:
        # a lane that stops (a signal, a lost Redis) stops the process: a worker serving half its lanes would look
        # alive to the supervisor while the other lane's queue grows
        await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED if burst else asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("worker.lane_failed", error=type(outcome).__name__)
    finally:
        for w in workers:
            with warnings.catch_warnings():
                # arq 0.28 closes its pool with redis-py's deprecated close(); nothing for us to change
                warnings.simplefilter("ignore", DeprecationWarning)
                await w.close()
        await shutdown(ctx)
        await pool.aclose()
    return workers
