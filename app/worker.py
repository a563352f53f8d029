"""The job functions, arq's WorkerSettings, and the in-process runner used when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from arq import cron, func
from arq.connections import RedisSettings, create_pool

from app import queue as jobqueue
from app.db import close_db, init_db
from app.logs import configure_logging, get_logger
from app.outbox.jobs import deliver_outbox, sweep_outbox
from app.queue import ArqQueue, InProcessQueue, JobFunc
from app.settings import Settings, get_settings

log = get_logger(__name__)

#: every job, by name; app.setup adds the rest through `register_job`
JOBS: dict[str, JobFunc] = {"deliver_outbox": deliver_outbox, "sweep_outbox": sweep_outbox}
#: (job name, period in seconds) for the in-process runner; arq gets the same as cron entries
CRONS: list[tuple[str, int]] = [("sweep_outbox", 10)]  # app.outbox.service.SWEEP_EVERY


def register_job(fn: JobFunc, *, every_seconds: int | None = None) -> JobFunc:
    """Add a job function (optionally periodic) to the registry."""
    JOBS[fn.__name__] = fn
    if every_seconds and (fn.__name__, every_seconds) not in CRONS:
        CRONS.append((fn.__name__, every_seconds))
    return fn


def load_jobs() -> dict[str, JobFunc]:
    """Wire the application (app.setup), then return the job registry."""
    from app.setup import setup

    setup()
    return JOBS


class _Crons:
    """Periodic jobs for the in-process mode."""

    def __init__(self, q: InProcessQueue) -> None:
        self.q = q
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, period in CRONS:
            self.tasks.append(asyncio.create_task(self._loop(name, period), name=f"gongdan-cron-{name}"))

    async def _loop(self, name: str, period: int) -> None:
        while True:
            await asyncio.sleep(period)
            await self.q.enqueue(name, job_id=f"cron:{name}")

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


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
            pool = await create_pool(RedisSettings.from_dsn(self.settings.redis_url))
            self.queue = ArqQueue(pool)
        else:
            q = InProcessQueue(functions, workers=self.settings.inprocess_workers)
            q.start()
            if self.run_crons:
                self._crons = _Crons(q)
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
    log.info("worker.started")


async def _shutdown(ctx: dict[str, Any]) -> None:
    await close_db()
    jobqueue.set_queue(None)


def _cron_schedule(period: int) -> dict[str, Any]:
    """arq cron fields for "every `period` seconds" (periods divide a minute, an hour or a day)."""
    if period < 60:
        return {"second": set(range(0, 60, period))}
    if period < 3600:
        return {"second": {0}, "minute": set(range(0, 60, period // 60))}
    return {"second": {0}, "minute": {0}, "hour": set(range(0, 24, max(1, period // 3600)))}


def worker_settings(settings: Settings | None = None) -> type:
    """Build arq's WorkerSettings class for `gongdan worker`."""
    s = settings or get_settings()
    if not s.redis_url:
        raise RuntimeError("REDIS_URL is not set: jobs run inside `gongdan serve`, no worker is needed")
    jobs = load_jobs()
    # keep_result=0 lets the sweep reuse a job id once the job has finished
    job_functions = [func(cast(Any, f), name=n, keep_result=0) for n, f in jobs.items()]
    cron_jobs = [
        cron(cast(Any, jobs[n]), name=f"cron:{n}", unique=True, keep_result=0, run_at_startup=False,
             **_cron_schedule(p))
        for n, p in CRONS
    ]

    class WorkerSettings:
        functions = job_functions
        cron_jobs: list[Any] = []  # noqa: RUF012
        redis_settings = RedisSettings.from_dsn(s.redis_url or "")
        on_startup = _startup
        on_shutdown = _shutdown
        max_jobs = 32
        job_timeout = 300
        handle_signals = True
        # on SIGTERM, let running jobs finish (they are idempotent anyway, but a finished job is not redone)
        job_completion_wait = 20

    WorkerSettings.cron_jobs = cron_jobs
    return WorkerSettings
