"""A worker killed mid-job (issue 11, finding 6: callbacks stayed `processing` for 150 s, one `pending` for 302 s).

The kill is a job cancelled inside its processor or adapter: the row stays claimed, the renewal stops. The sweep cron
is run every SWEEP_EVERY seconds of the test clock; the row must be taken over after its lease, not before (two
workers on one row), and within a minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from app import queue as jobqueue
from app.channels import base, inbound_jobs
from app.channels.base import DeliveryResult
from app.channels.models import ChannelAccount, InboundEvent
from app.outbox import service as outbox
from app.outbox.jobs import deliver_outbox, sweep_outbox
from app.outbox.models import OutboxMessage
from app.timeutil import set_clock, utcnow
from app.uow import atomic


class _Queue:
    """Records what is enqueued and runs nothing by itself; an arq id still "in progress" is refused as arq does."""

    def __init__(self, stuck: set[str] | None = None) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str | None]] = []
        self.stuck = stuck or set()

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        if job_id in self.stuck:
            return
        self.jobs.append((name, args, job_id))

    async def run_all(self, funcs: dict[str, Callable[..., Awaitable[Any]]]) -> list[Any]:
        jobs, self.jobs = self.jobs, []
        return [await funcs[name]({}, *args) for name, args, _ in jobs]


class _Killed(Exception):
    pass


@pytest.fixture
def queue() -> Iterator[_Queue]:
    q = _Queue()
    jobqueue.set_queue(q)
    yield q
    jobqueue.set_queue(None)
    set_clock(None)


def _at(moment: datetime) -> None:
    set_clock(lambda: moment)


async def _kill(job: Awaitable[Any], started: asyncio.Event) -> None:
    """Run a job until its work is under way, then cancel it, as a SIGKILL would leave it."""
    task = asyncio.ensure_future(job)
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _hang(started: asyncio.Event) -> str:
    started.set()
    await asyncio.sleep(3600)
    return "done"


async def _takeover_seconds(sweep: Callable[[dict[str, Any]], Awaitable[int]], killed_at: datetime,
                            taken: Callable[[], Awaitable[bool]], queue: _Queue,
                            funcs: dict[str, Callable[..., Awaitable[Any]]], period: int) -> int:
    """Run the sweep every `period` seconds after the kill; the first second at which the row was taken over."""
    for tick in range(1, 31):
        moment = killed_at + timedelta(seconds=tick * period)
        _at(moment)
        await sweep({})
        await queue.run_all(funcs)
        if await taken():
            return tick * period
    raise AssertionError("never taken over")


async def test_a_killed_inbound_job_is_taken_over_after_its_lease_within_a_minute(db: None, queue: _Queue) -> None:
    started = asyncio.Event()
    processed: list[int] = []

    async def processor(event: InboundEvent, account: ChannelAccount | None) -> str:
        if not processed:
            processed.append(0)
            return await _hang(started)
        processed.append(event.attempts)
        return "done"

    inbound_jobs.register_processor("crashtest", processor)
    try:
        event = await InboundEvent.create(dedupe_key="crashtest:1", payload="<xml/>")
        killed_at = utcnow()
        set_clock(lambda: killed_at)
        await _kill(inbound_jobs.process_inbound_event({}, event.id), started)
        row = await InboundEvent.get(id=event.id)
        assert (row.status, row.attempts) == ("processing", 1)

        # a copy of the job that arrives while the lease holds does nothing: one worker per row
        assert await inbound_jobs.process_inbound_event({}, event.id) == "skipped"

        async def taken() -> bool:
            return (await InboundEvent.get(id=event.id)).status == "done"

        seconds = await _takeover_seconds(inbound_jobs.sweep_inbound, killed_at, taken, queue,
                                          {"process_inbound_event": inbound_jobs.process_inbound_event},
                                          inbound_jobs.SWEEP_EVERY)
    finally:
        inbound_jobs.PROCESSORS.pop("crashtest", None)
    print(f"\ninbound event taken over {seconds} s after the kill")
    assert inbound_jobs.LEASE.total_seconds() < seconds <= 60
    assert processed == [0, 2] and (await InboundEvent.get(id=event.id)).attempts == 2


async def test_a_stored_event_whose_job_died_unclaimed_gets_a_new_job_id(db: None) -> None:
    event = await InboundEvent.create(dedupe_key="crashtest:2", payload="<xml/>")
    # the endpoint's job was dequeued by a worker that died: arq refuses its id until the in-progress key expires
    queue = _Queue(stuck={f"inbound:{event.id}:0"})
    jobqueue.set_queue(queue)
    start = utcnow()
    try:
        set_clock(lambda: start + inbound_jobs.LOST_AFTER - timedelta(seconds=1))
        assert await inbound_jobs.sweep_inbound({}) == 0  # its job may still be on its way
        set_clock(lambda: start + inbound_jobs.LOST_AFTER + timedelta(seconds=1))
        assert await inbound_jobs.sweep_inbound({}) == 1
        assert [j[2] for j in queue.jobs] == [f"inbound:{event.id}:0:lost:{int(utcnow().timestamp()) // 60}"]
    finally:
        jobqueue.set_queue(None)
        set_clock(None)


async def test_a_failed_event_waits_for_its_retry_and_is_swept_only_when_the_retry_is_late(db: None,
                                                                                         queue: _Queue) -> None:
    async def failing(event: InboundEvent, account: ChannelAccount | None) -> str:
        raise RuntimeError("platform down")

    inbound_jobs.register_processor("crashtest", failing)
    try:
        event = await InboundEvent.create(dedupe_key="crashtest:3", payload="<xml/>")
        start = utcnow()
        set_clock(lambda: start)
        for _ in range(4):  # attempts 1..4: the 4th retry waits 16 s
            await InboundEvent.filter(id=event.id).update(status="pending")
            assert await inbound_jobs.process_inbound_event({}, event.id) == "error"
        row = await InboundEvent.get(id=event.id)
        assert (row.status, row.attempts) == ("pending", 4)
        queue.jobs.clear()
        due = start + timedelta(seconds=inbound_jobs.retry_delay(4))
        set_clock(lambda: due + inbound_jobs.LOST_AFTER - timedelta(seconds=1))
        assert await inbound_jobs.sweep_inbound({}) == 0
        set_clock(lambda: due + inbound_jobs.LOST_AFTER + timedelta(seconds=1))
        assert await inbound_jobs.sweep_inbound({}) == 1
    finally:
        inbound_jobs.PROCESSORS.pop("crashtest", None)


class _HangingAdapter:
    kind = "crashtest"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.started = asyncio.Event()

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        if not self.sent:
            self.sent.append(0)
            await _hang(self.started)
        self.sent.append(message.attempts)
        return DeliveryResult(provider_msg_id=f"x-{message.id}")


async def test_a_killed_delivery_is_taken_over_after_its_lease_within_a_minute(
        db: None, queue: _Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = _HangingAdapter()
    monkeypatch.setitem(base._registry, "crashtest", adapter)
    if True:
        async with atomic():
            row = await outbox.create(channel="crashtest", kind="customer_message", recipient="u-1",
                                      payload={"type": "text", "text": "您好"})
        queue.jobs.clear()
        killed_at = utcnow()
        set_clock(lambda: killed_at)
        await _kill(deliver_outbox({}, row.id), adapter.started)
        fresh = await OutboxMessage.get(id=row.id)
        assert (fresh.status, fresh.attempts) == ("sending", 1)
        assert fresh.lease_until == killed_at + outbox.LEASE
        assert outbox.LEASE.total_seconds() > 20  # longer than one HTTP call: 10 s connect + 10 s read

        # a stale worker's late bookkeeping cannot touch a row claimed again (its claim counted attempt 1)
        queue.stuck.add(f"deliver:{row.id}:1")  # the dead worker's job id, as arq would still hold it

        async def taken() -> bool:
            return (await OutboxMessage.get(id=row.id)).status == "sent"

        seconds = await _takeover_seconds(sweep_outbox, killed_at, taken, queue,
                                          {"deliver_outbox": deliver_outbox}, outbox.SWEEP_EVERY)
    print(f"\noutbox row taken over {seconds} s after the kill")
    assert outbox.LEASE.total_seconds() < seconds <= 60
    assert adapter.sent == [0, 2]


async def test_a_renewed_lease_keeps_a_slow_send_from_a_second_worker(db: None, queue: _Queue) -> None:
    async with atomic():
        row = await outbox.create(channel="crashtest", kind="customer_message", recipient="u-1",
                                  payload={"type": "text", "text": "您好"})
    queue.jobs.clear()
    start = utcnow()
    set_clock(lambda: start)
    claimed = await outbox.claim(outbox_id=row.id)
    assert claimed is not None
    # the sender is alive: every renewal pushes the lease on, so the sweep never frees the row
    for tick in range(1, 13):
        moment = start + timedelta(seconds=tick * outbox.RENEW_EVERY)
        _at(moment)
        assert await outbox.renew(row=claimed)
        await sweep_outbox({})
        assert (await OutboxMessage.get(id=row.id)).status == "sending"
    assert queue.jobs == []
