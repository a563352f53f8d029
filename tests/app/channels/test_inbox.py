"""app.channels.inbox: the callback's plain INSERT + enqueue, and one sender's events in order under its lease."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from app import queue as jobqueue
from app.channels import inbound_jobs, inbox
from app.channels.models import ChannelAccount, InboundEvent, bounded_dedupe_key
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


class _Statements:
    """Records the rows of every grouped INSERT."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grouped: list[int] = []
        real = inbox._insert_group

        async def spy(conn: Any, rows: list[list[Any]]) -> dict[str, int]:
            self.grouped.append(len(rows))
            return await real(conn, rows)

        monkeypatch.setattr(inbox, "_insert_group", spy)


async def test_concurrent_callbacks_share_one_statement_and_each_gets_its_own_outcome(
        anydb: str, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")
    before = await inbox.store(channel_account_id=account.id, payload="<xml>0</xml>", dedupe_key="grp:retried",
                               sender_key="mp:1:o0")
    assert before is not None
    recorder.jobs.clear()
    spy = _Statements(monkeypatch)
    keys = [f"grp:{n}" for n in range(20)] + ["grp:retried", "grp:3", "grp:twice", "grp:twice"]
    ids = await asyncio.gather(*(inbox.store(channel_account_id=account.id, payload=f"<xml>{key}</xml>",
                                             dedupe_key=key, sender_key=f"mp:1:{key}") for key in keys))
    # a new key is stored once; a key stored before, or twice in the same moment, is a duplicate for all but one
    assert all(isinstance(i, int) for i in ids[:20])
    assert ids[20] is None and ids[21] is None
    assert isinstance(ids[22], int) and ids[23] is None
    stored = dict(await InboundEvent.filter(dedupe_key__startswith="grp:").values_list("dedupe_key", "id"))
    assert len(stored) == 22 and stored["grp:retried"] == before
    assert [stored[k] for k in keys[:20]] == ids[:20] and stored["grp:twice"] == ids[22]
    rows = {r.id: r for r in await InboundEvent.filter(id__in=[i for i in ids if i])}
    assert [(rows[i].payload, rows[i].status, rows[i].attempts) for i in ids[:20]] == [
        (f"<xml>{k}</xml>", "pending", 0) for k in keys[:20]]
    # one job per stored row, none for a duplicate
    assert sorted(recorder.jobs) == sorted(("process_inbound_event", (i, f"mp:1:{k}"), f"inbound:{i}:0")
                                           for k, i in zip(keys, ids, strict=True) if i is not None)
    if anydb == "mysql":
        # MariaDB: the rows that arrived together went in one statement, not one each
        assert spy.grouped == [len(keys)]
    else:
        assert spy.grouped == []  # SQLite: row by row


async def test_a_row_the_grouped_statement_could_not_store_fails_alone(
        mysql_db: None, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")
    assert await inbox.store(channel_account_id=account.id, payload="0", dedupe_key="fk:0", sender_key=None)
    recorder.jobs.clear()
    spy = _Statements(monkeypatch)
    outcomes = await asyncio.gather(
        inbox.store(channel_account_id=account.id, payload="a", dedupe_key="fk:a", sender_key=None),
        inbox.store(channel_account_id=account.id + 999, payload="b", dedupe_key="fk:b", sender_key=None),
        inbox.store(channel_account_id=account.id, payload="c", dedupe_key="fk:c", sender_key=None),
        return_exceptions=True)
    # INSERT IGNORE skipped the row of an unknown account (a warning); inserted on its own it raises, so that
    # request answers with an error (WeChat retries) instead of acknowledging a callback nobody stored
    assert spy.grouped == [3]
    assert isinstance(outcomes[0], int) and isinstance(outcomes[2], int)
    assert isinstance(outcomes[1], IntegrityError)
    stored = await InboundEvent.filter(dedupe_key__startswith="fk:").values_list("dedupe_key", flat=True)
    assert sorted(str(k) for k in stored) == ["fk:0", "fk:a", "fk:c"]
    assert [args for _, args, _ in recorder.jobs] == [(outcomes[0],), (outcomes[2],)]


async def test_a_failed_grouped_statement_stores_each_row_on_its_own(
        mysql_db: None, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")

    async def flaky(conn: Any, rows: list[list[Any]]) -> dict[str, int]:
        raise OperationalError("lost connection")

    monkeypatch.setattr(inbox, "_insert_group", flaky)
    ids = await asyncio.gather(*(inbox.store(channel_account_id=account.id, payload=str(n), dedupe_key=f"fl:{n}",
                                             sender_key=None) for n in range(4)))
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 4
    assert await InboundEvent.filter(dedupe_key__startswith="fl:").count() == 4


async def test_inside_a_transaction_the_rows_are_the_callers_to_commit(
        anydb: str, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with in_transaction("default"):
            spy = _Statements(monkeypatch)
            ids = await asyncio.gather(*(inbox.store(channel_account_id=account.id, payload="x",
                                                     dedupe_key=f"tx:{n}", sender_key=None) for n in range(3)))
            assert all(isinstance(i, int) for i in ids) and spy.grouped == []
            raise Abort
    assert await InboundEvent.filter(dedupe_key__startswith="tx:").count() == 0


async def test_a_key_longer_than_the_column_is_stored_bounded_never_cut(anydb: str, recorder: _Recorder) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="inbox-mp")
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    ids = await asyncio.gather(*(inbox.store(channel_account_id=account.id, payload="x", dedupe_key=key,
                                             sender_key=None) for key in (long_a, long_b, long_a)))
    assert isinstance(ids[0], int) and isinstance(ids[1], int) and ids[2] is None
    keys = {str(k) for k in await InboundEvent.filter(id__in=ids[:2]).values_list("dedupe_key", flat=True)}
    assert keys == {bounded_dedupe_key(long_a), bounded_dedupe_key(long_b)}


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
