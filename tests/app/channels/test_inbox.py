"""app.channels.inbox: the callback's plain INSERT + enqueue, and one sender's events in order under its lease."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from app import queue as jobqueue
from app.channels import inbound_jobs, inbox
from app.channels.models import ChannelAccount, InboundEvent
from tests.conftest import redis_url_or_skip


class _Recorder:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        self.jobs.append((name, args, job_id))


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    q = _Recorder()
    jobqueue.set_queue(q)
    yield q
    jobqueue.set_queue(None)


async def test_store_inserts_once_and_enqueues_with_the_sender_key(anydb: str, recorder: _Recorder) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")
    first = await inbox.store(channel_account_id=account.id, payload="<xml>客户 13800138000</xml>",
                              dedupe_key="wechat_mp:wx1:msg:1", sender_key="mp:1:oABC")
    again = await inbox.store(channel_account_id=account.id, payload="<xml>again</xml>",
                              dedupe_key="wechat_mp:wx1:msg:1", sender_key="mp:1:oABC")
    assert first is not None and again is None
    row = await InboundEvent.get(id=first)
    assert (row.payload, row.status, row.attempts, row.channel_account_id) == (  # type: ignore[attr-defined]
        "<xml>客户 13800138000</xml>", "pending", 0, account.id)
    assert row.received_at is not None
    # encrypted at rest, as the ORM would have written it
    _, raw = await InboundEvent._meta.db.execute_query(f"SELECT payload FROM inbound_event WHERE id = {int(first)}")
    assert "13800138000" not in str(dict(raw[0])["payload"])
    assert recorder.jobs == [("process_inbound_event", (first, "mp:1:oABC"), f"inbound:{first}:0")]


@pytest.fixture(params=["memory", "redis"])
async def leases(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        yield inbox.MemoryLeases()
        return
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url_or_skip())
    await client.delete(f"{inbox.PREFIX}lease:k", f"{inbox.PREFIX}waiting:k")
    yield inbox.RedisLeases(client)
    await client.delete(f"{inbox.PREFIX}lease:k", f"{inbox.PREFIX}waiting:k")
    await client.aclose()


async def test_a_held_lease_collects_the_waiting_events_for_its_holder(leases: inbox.SenderLeases) -> None:
    assert await leases.acquire("k", "a", 1)
    assert not await leases.acquire("k", "b", 2)
    assert not await leases.acquire("k", "c", 3)
    # release hands the waiting events to the holder and keeps the lease for it
    assert await leases.release("k", "a") == [2, 3]
    assert not await leases.acquire("k", "d", 4)
    assert await leases.release("k", "a") == [4]
    assert await leases.release("k", "a") == []
    assert await leases.acquire("k", "e", 5)  # free again
    await leases.abandon("k", "e")
    assert await leases.acquire("k", "f", 6)
    assert await leases.release("k", "f") == []


@pytest.fixture
def processor() -> Iterator[list[tuple[str, int]]]:
    trace: list[tuple[str, int]] = []

    async def process(event: InboundEvent, account: ChannelAccount | None) -> str:
        trace.append(("start", event.id))
        await asyncio.sleep(0.01)
        trace.append(("end", event.id))
        return "done"

    inbound_jobs.register_processor("inboxtest", process)
    yield trace
    inbound_jobs.PROCESSORS.pop("inboxtest", None)


async def test_one_senders_events_run_in_order_one_at_a_time_and_others_in_parallel(
        db: None, recorder: _Recorder, processor: list[tuple[str, int]]) -> None:
    account = await ChannelAccount.create(kind="inboxtest", key="inboxtest")
    ids = [await inbox.store(channel_account_id=account.id, payload=f"m{n}", dedupe_key=f"inboxtest:{n}",
                             sender_key="alice" if n < 4 else "bob") for n in range(5)]
    assert None not in ids
    results = await asyncio.gather(*(inbound_jobs.process_inbound_event({}, *args) for _, args, _ in recorder.jobs))
    alice, bob = [i for i in ids[:4] if i], int(ids[4] or 0)
    # the first of Alice's jobs held her lease and processed the three that arrived meanwhile after its own
    assert results[:4] == ["done", "queued", "queued", "queued"] and results[4] == "done"
    alice_trace = [step for step in processor if step[1] in alice]
    assert alice_trace == [(kind, i) for i in alice for kind in ("start", "end")]
    # Bob did not wait for Alice's queue
    assert processor.index(("start", bob)) < processor.index(("end", alice[0]))
    statuses = await InboundEvent.filter(id__in=ids).values_list("status", flat=True)
    assert {str(x) for x in statuses} == {"done"}


async def test_an_event_that_arrives_while_the_holder_finishes_is_not_left_behind(
        db: None, recorder: _Recorder, processor: list[tuple[str, int]]) -> None:
    account = await ChannelAccount.create(kind="inboxtest", key="inboxtest")
    first = await inbox.store(channel_account_id=account.id, payload="m1", dedupe_key="inboxtest:a",
                              sender_key="carol")
    assert first is not None
    holder = asyncio.create_task(inbound_jobs.process_inbound_event({}, first, "carol"))
    await asyncio.sleep(0.005)  # the holder is inside its event
    second = await inbox.store(channel_account_id=account.id, payload="m2", dedupe_key="inboxtest:b",
                               sender_key="carol")
    assert second is not None
    assert await inbound_jobs.process_inbound_event({}, second, "carol") == "queued"
    assert await holder == "done"
    assert [i for _, i in processor] == [first, first, second, second]
    assert [str(x) for x in await InboundEvent.filter(id=second).values_list("status", flat=True)] == ["done"]
