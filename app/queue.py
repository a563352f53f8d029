"""One way to enqueue a job, two ways to run it.

With REDIS_URL set, jobs go to arq and run in `gongdan worker` processes. Without it, the same job functions run
in-process on background tasks of the web server (the embedded mode). Jobs are named by their function name and
take arq's `ctx` first; they may run more than once and must be idempotent.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app.logs import get_logger

log = get_logger(__name__)

JobFunc = Callable[..., Awaitable[Any]]


class JobQueue(Protocol):
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        """Schedule job `name`; a job_id already queued is not queued twice."""


class ArqQueue:
    """Enqueue into Redis for arq workers."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        await self.pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer_by)

    async def close(self) -> None:
        await self.pool.aclose()


class InProcessQueue:
    """Run jobs on background tasks of this process (embedded mode and tests)."""

    def __init__(self, functions: dict[str, JobFunc], *, workers: int = 4, ctx: dict[str, Any] | None = None) -> None:
        self.functions = functions
        self.workers = workers
        self.ctx: dict[str, Any] = ctx or {}
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...], str | None, int]] = asyncio.Queue()
        self._queued_ids: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"gongdan-job-{i}") for i in range(self.workers)]

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        if name not in self.functions:
            raise KeyError(f"unknown job {name}")
        if job_id is not None and job_id in self._queued_ids:
            return
        if job_id is not None:
            self._queued_ids.add(job_id)
        if defer_by:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle | None = None

            def _put() -> None:
                if handle is not None:
                    self._timers.discard(handle)
                self._idle.clear()
                self._queue.put_nowait((name, args, job_id, 1))

            handle = loop.call_later(defer_by, _put)
            self._timers.add(handle)
        else:
            self._idle.clear()
            self._queue.put_nowait((name, args, job_id, 1))

    async def _work(self) -> None:
        while True:
            name, args, job_id, attempt = await self._queue.get()
            self._running += 1
            if job_id is not None:
                self._queued_ids.discard(job_id)
            try:
                await self.run(name, *args, job_try=attempt, job_id=job_id)
            finally:
                self._running -= 1
                self._queue.task_done()
                if self._queue.empty() and self._running == 0:
                    self._idle.set()

    async def run(self, name: str, *args: Any, job_try: int = 1, job_id: str | None = None) -> Any:
        """Run one job now, in this task, the way a worker would (errors are logged, not raised)."""
        ctx = {**self.ctx, "job_try": job_try, "job_id": job_id}
        try:
            return await self.functions[name](ctx, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry = _retry_defer(exc)
            if retry is not None and job_try < 5:
                log.info("job.retry", job=name, attempt=job_try, defer=retry)
                await self._requeue(name, args, job_id, job_try + 1, retry)
            else:
                log.exception("job.failed", job=name, attempt=job_try)
            return None

    async def _requeue(self, name: str, args: tuple[Any, ...], job_id: str | None, attempt: int, defer: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def _put() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._idle.clear()
            self._queue.put_nowait((name, args, job_id, attempt))

        handle = loop.call_later(defer, _put)
        self._timers.add(handle)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until no job is queued or running (tests); deferred retries may still be waiting."""
        self.start()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Finish the running jobs, then stop (graceful shutdown)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        try:
            await asyncio.wait_for(self._queue.join(), timeout=10)
        except TimeoutError:
            log.warning("jobs.shutdown_timeout", pending=self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def _retry_defer(exc: Exception) -> float | None:
    from arq import Retry

    if isinstance(exc, Retry):
        return float(exc.defer_score or 0) / 1000 or 1.0
    return None


def backoff(attempt: int, *, base: float = 2.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter, in seconds."""
    return float(random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1)))


_queue: JobQueue | None = None


def get_queue() -> JobQueue:
    """The process's job queue (set at start-up by the web app, the worker or the CLI)."""
    if _queue is None:
        raise RuntimeError("job queue is not configured; call app.worker.start_jobs() first")
    return _queue


def set_queue(queue: JobQueue | None) -> None:
    """Install the process's job queue."""
    global _queue
    _queue = queue


async def enqueue(name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
    """Enqueue a job on the process's queue; without one (a CLI command) the sweep crons pick the work up."""
    if _queue is None:
        log.debug("job.not_enqueued", job=name, reason="no queue in this process")
        return
    await _queue.enqueue(name, *args, job_id=job_id, defer_by=defer_by)
