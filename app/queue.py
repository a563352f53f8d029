"""One way to enqueue a job, two ways to run it, on separate lanes.

With REDIS_URL set, jobs go to arq and run in `gongdan worker` processes. Without it, the same job functions run
in-process on background tasks of the web server (the embedded mode). Jobs are named by their function name and
take arq's `ctx` first; they may run more than once and must be idempotent.

Lanes: every job belongs to one lane, and each lane has its own arq queue (its own in-process queue and tasks in the
embedded mode), so the outbox (acknowledgements, replies, cards) never waits behind a backlog of inbound callbacks.
A job not registered on a lane runs on the inbound lane (arq's default queue, so jobs queued by an older release
are still found).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from app.batching import GroupCommit
from app.logs import get_logger

log = get_logger(__name__)

JobFunc = Callable[..., Awaitable[Any]]

#: the lane of callbacks, syncs, crons: everything that is not a message going out
INBOUND = "inbound"
#: the lane of outbox deliveries: acknowledgements and replies to customers, cards to staff, webhooks
OUTBOX = "outbox"
#: lane -> arq queue name (the inbound lane keeps arq's default queue)
QUEUE_NAMES: dict[str, str] = {INBOUND: "arq:queue", OUTBOX: "gongdan:outbox"}
#: job name -> lane, for the jobs not on the inbound lane (app.worker.register_job fills it)
LANES: dict[str, str] = {}


def lane_of(name: str) -> str:
    """The lane job `name` runs on."""
    return LANES.get(name, INBOUND)


def queue_name(lane: str) -> str:
    """The arq queue of a lane."""
    try:
        return QUEUE_NAMES[lane]
    except KeyError:
        raise ValueError(f"unknown lane {lane!r}: one of {', '.join(QUEUE_NAMES)}") from None


class JobQueue(Protocol):
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        """Schedule job `name`; a job_id already queued is not queued twice."""

    async def waiting(self, lane: str) -> int:
        """Jobs of `lane` due now and not yet started (deferred ones are not counted)."""


#: arq's enqueue (exists check on the job and result keys, then PSETEX + ZADD) for a whole batch in one round trip;
#: ARGV: the job and result key prefixes, then 5 values per job (id, queue, score, expiry ms, serialized job)
_ENQUEUE_MANY = """
local added = 0
for i = 3, #ARGV, 5 do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[1] .. id, ARGV[2] .. id) == 0 then
    redis.call('PSETEX', ARGV[1] .. id, ARGV[i + 3], ARGV[i + 4])
    redis.call('ZADD', ARGV[i + 1], ARGV[i + 2], id)
    added = added + 1
  end
end
return added
"""


class _Batch(GroupCommit[list[Any], None]):
    """Enqueues that arrive while a round trip is in flight go together in the next one (`app.batching.GroupCommit`):
    at 64 concurrent callbacks a web process makes a few Redis round trips where it made 64 WATCH/MULTI/EXEC."""

    def __init__(self, pool: Any) -> None:
        super().__init__()
        self.pool = pool
        self.script = pool.register_script(_ENQUEUE_MANY)

    async def _write(self, batch: list[tuple[list[Any], asyncio.Future[None]]]) -> None:
        from arq.constants import job_key_prefix, result_key_prefix

        args: list[Any] = [job_key_prefix, result_key_prefix]
        for values, _ in batch:
            args.extend(values)
        try:
            await self.script(args=args)
        except BaseException as exc:
            self._fail(batch, exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)


class ArqQueue:
    """Enqueue into Redis for arq workers, each job on its lane's queue; concurrent enqueues share one round trip."""

    def __init__(self, pool: Any, *, batched: bool = True) -> None:
        self.pool = pool
        self._batch = _Batch(pool) if batched else None

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        queue = queue_name(lane_of(name))
        if self._batch is None:
            await self.pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer_by, _queue_name=queue)
            return
        from arq.constants import expires_extra_ms
        from arq.jobs import serialize_job

        now_ms = int(time.time() * 1000)
        score = now_ms + int((defer_by or 0) * 1000)
        expires_ms = score - now_ms + expires_extra_ms
        job = serialize_job(name, args, {}, None, now_ms, serializer=self.pool.job_serializer)
        await self._batch.add([job_id or uuid.uuid4().hex, queue, score, expires_ms, job])

    async def waiting(self, lane: str) -> int:
        return int(await self.pool.zcount(queue_name(lane), "-inf", int(time.time() * 1000)))

    async def close(self) -> None:
        await self.pool.aclose()


class InProcessQueue:
    """Run jobs on background tasks of this process (embedded mode and tests), each lane on tasks of its own."""

    def __init__(self, functions: dict[str, JobFunc], *, workers: int = 4, ctx: dict[str, Any] | None = None,
                 lanes: Mapping[str, int] | None = None) -> None:
        self.functions = functions
        self.workers = workers
        self.ctx: dict[str, Any] = ctx or {}
        #: tasks per lane: the inbound lane gets `workers`, the outbox lane its own (default: half as many, >= 1)
        self.lanes: dict[str, int] = {INBOUND: workers, OUTBOX: max(1, workers // 2), **(lanes or {})}
        self._queues: dict[str, asyncio.Queue[tuple[str, tuple[Any, ...], str | None, int]]] = {
            lane: asyncio.Queue() for lane in self.lanes}
        self._queued_ids: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(lane), name=f"gongdan-job-{lane}-{i}")
                           for lane, n in self.lanes.items() for i in range(n)]

    def _put(self, item: tuple[str, tuple[Any, ...], str | None, int]) -> None:
        self._idle.clear()
        lane = lane_of(item[0])
        self._queues.get(lane, self._queues[INBOUND]).put_nowait(item)

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        if name not in self.functions:
            raise KeyError(f"unknown job {name}")
        if job_id is not None and job_id in self._queued_ids:
            return
        if job_id is not None:
            self._queued_ids.add(job_id)
        if defer_by:
            self._later(defer_by, (name, args, job_id, 1))
        else:
            self._put((name, args, job_id, 1))

    async def waiting(self, lane: str) -> int:
        queue = self._queues.get(lane)
        return 0 if queue is None else queue.qsize()

    def _later(self, delay: float, item: tuple[str, tuple[Any, ...], str | None, int]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def _fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._put(item)

        handle = loop.call_later(delay, _fire)
        self._timers.add(handle)

    def _busy(self) -> bool:
        return self._running > 0 or any(not q.empty() for q in self._queues.values())

    async def _work(self, lane: str) -> None:
        queue = self._queues[lane]
        while True:
            name, args, job_id, attempt = await queue.get()
            self._running += 1
            if job_id is not None:
                self._queued_ids.discard(job_id)
            try:
                await self.run(name, *args, job_try=attempt, job_id=job_id)
            finally:
                self._running -= 1
                queue.task_done()
                if not self._busy():
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
                self._later(retry, (name, args, job_id, job_try + 1))
            else:
                log.exception("job.failed", job=name, attempt=job_try)
            return None

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
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())), timeout=10)
        except TimeoutError:
            log.warning("jobs.shutdown_timeout", pending=sum(q.qsize() for q in self._queues.values()))
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


#: inbound jobs waiting above which background model work (embeddings, index builds, training) gives its CPU to the
#: intake and leaves its work to a later run: about half a second of two workers' intake
INTAKE_BACKLOG = 50


async def waiting(lane: str) -> int:
    """Jobs of `lane` due now and not yet started, on the process's queue (0 without one)."""
    return 0 if _queue is None else await _queue.waiting(lane)


async def intake_backed_up() -> bool:
    """Whether more inbound jobs wait than background work should run beside."""
    return await waiting(INBOUND) > INTAKE_BACKLOG
