"""app.queue: lanes (the outbox never waits behind an inbound backlog) and the batched arq enqueue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app import queue as jobqueue
from app.queue import INBOUND, OUTBOX, ArqQueue, InProcessQueue, lane_of, queue_name
from tests.conftest import redis_url_or_skip


def _own_db(url: str) -> str:
    """Redis db 10: these tests flush it (other test runs on the machine use 11-15)."""
    return url.rsplit("/", 1)[0] + "/10"


def test_outbox_jobs_are_on_their_own_lane() -> None:
    import app.worker  # noqa: F401  (registers the outbox jobs' lane)

    assert lane_of("deliver_outbox") == OUTBOX
    assert lane_of("sweep_outbox") == OUTBOX
    assert lane_of("process_inbound_event") == INBOUND
    assert queue_name(INBOUND) == "arq:queue"
    assert queue_name(OUTBOX) == "gongdan:outbox"
    with pytest.raises(ValueError):
        queue_name("nope")


async def test_in_process_outbox_job_runs_before_an_inbound_backlog_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[str] = []

    async def slow_inbound(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.005)
        done.append(f"in{n}")

    async def deliver(ctx: dict[str, Any], n: int) -> None:
        done.append("out")

    monkeypatch.setitem(jobqueue.LANES, "deliver", OUTBOX)
    q = InProcessQueue({"slow_inbound": slow_inbound, "deliver": deliver}, workers=2)
    q.start()
    try:
        for n in range(60):
            await q.enqueue("slow_inbound", n)
        await q.enqueue("deliver", 1)
        await q.drain(timeout=10)
    finally:
        await q.close()
    # 60 inbound jobs on 2 tasks take 30 rounds; the outbox lane's own task runs the delivery at once
    assert done.index("out") < 5
    assert len(done) == 61


async def test_in_process_single_lane_is_fifo_and_dedupes_job_ids() -> None:
    done: list[int] = []

    async def job(ctx: dict[str, Any], n: int) -> None:
        done.append(n)

    q = InProcessQueue({"job": job}, workers=1)
    await q.enqueue("job", 1, job_id="a")
    await q.enqueue("job", 2, job_id="a")
    await q.enqueue("job", 3)
    await q.drain()
    await q.close()
    assert done == [1, 3]


async def test_arq_batched_enqueue_puts_each_job_on_its_lane_once() -> None:
    from arq.connections import create_pool

    from app.redisconn import redis_settings_from_url

    pool = await create_pool(redis_settings_from_url(_own_db(redis_url_or_skip())))
    await pool.flushdb()
    q = ArqQueue(pool)
    try:
        import app.worker  # noqa: F401

        await asyncio.gather(*(q.enqueue("process_inbound_event", n, job_id=f"inbound:{n}:0") for n in range(50)),
                             q.enqueue("process_inbound_event", 0, job_id="inbound:0:0"),
                             q.enqueue("deliver_outbox", 7, job_id="deliver:7:0"),
                             q.enqueue("deliver_outbox", 8, job_id="deliver:8:0", defer_by=60))
        assert await pool.zcard("arq:queue") == 50
        outbox = await pool.zrange("gongdan:outbox", 0, -1, withscores=True)
        assert [job_id for job_id, _ in outbox] == [b"deliver:7:0", b"deliver:8:0"]
        assert outbox[1][1] - outbox[0][1] >= 59_000  # deferred by a minute (scores are ms)
        # the job as arq's own worker reads it
        jobs = await pool.queued_jobs(queue_name="gongdan:outbox")
        assert [(j.function, j.args) for j in jobs] == [("deliver_outbox", (7,)), ("deliver_outbox", (8,))]
    finally:
        await pool.flushdb()
        await q.close()


async def test_in_process_waiting_counts_a_lanes_queued_jobs_not_its_running_or_deferred_ones() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def job(ctx: dict[str, Any], n: int) -> None:
        started.set()
        await release.wait()

    q = InProcessQueue({"process_inbound_event": job, "deliver_outbox": job}, workers=1, lanes={OUTBOX: 1})
    q.start()
    await q.enqueue("process_inbound_event", 1)
    await started.wait()  # running: no longer waiting
    for n in (2, 3, 4):
        await q.enqueue("process_inbound_event", n)
    await q.enqueue("process_inbound_event", 5, defer_by=60)
    assert await q.waiting(INBOUND) == 3
    assert await q.waiting(OUTBOX) == 0
    release.set()
    await q.drain()
    assert await q.waiting(INBOUND) == 0
    await q.close()


async def test_arq_waiting_counts_a_lanes_due_jobs_not_deferred_ones() -> None:
    from arq.connections import create_pool

    from app.redisconn import redis_settings_from_url

    pool = await create_pool(redis_settings_from_url(_own_db(redis_url_or_skip())))
    await pool.flushdb()
    q = ArqQueue(pool)
    try:
        import app.worker  # noqa: F401

        await asyncio.gather(*(q.enqueue("process_inbound_event", n) for n in range(7)),
                             q.enqueue("process_inbound_event", 99, defer_by=60),
                             q.enqueue("deliver_outbox", 1))
        assert await q.waiting(INBOUND) == 7
        assert await q.waiting(OUTBOX) == 1
        jobqueue.set_queue(q)
        assert await jobqueue.waiting(INBOUND) == 7
    finally:
        jobqueue.set_queue(None)
        await pool.flushdb()
        await q.close()


async def test_waiting_without_a_queue_is_zero() -> None:
    jobqueue.set_queue(None)
    assert await jobqueue.waiting(INBOUND) == 0
