from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app import queue as jobqueue
from app.channels.testing import RecordingAdapter
from app.errors import OutcomeUnknown
from app.outbox import service
from app.outbox.jobs import deliver_outbox, sweep_outbox
from app.outbox.models import OutboxMessage
from app.timeutil import set_clock, utcnow
from app.uow import atomic


async def _row(dedupe_key: str | None = None) -> OutboxMessage:
    async with atomic():
        return await service.create(channel="test", kind="customer_message", recipient="u-1",
                                    payload={"type": "text", "text": "您好"}, dedupe_key=dedupe_key)


async def test_a_job_executed_twice_sends_once(anydb: str, recording: RecordingAdapter) -> None:
    row = await _row()
    assert await deliver_outbox({}, row.id) == "sent"
    assert await deliver_outbox({}, row.id) == "skipped"
    assert [s["payload"]["text"] for s in recording.sent] == ["您好"]
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.attempts, fresh.provider_msg_id) == ("sent", 1, f"test-{row.id}")


async def test_concurrent_runs_send_once(anydb: str, recording: RecordingAdapter) -> None:
    row = await _row()
    results = await asyncio.gather(*(deliver_outbox({}, row.id) for _ in range(4)))
    assert sorted(results) == ["sent", "skipped", "skipped", "skipped"]
    assert len(recording.sent) == 1


async def test_dedupe_key_keeps_one_row(db: None, recording: RecordingAdapter) -> None:
    first = await _row("ack:ticket:1")
    second = await _row("ack:ticket:1")
    assert first.id == second.id and await OutboxMessage.all().count() == 1


async def test_crash_between_commit_and_enqueue_is_healed_by_sweep(db: None, recording: RecordingAdapter,
                                                                   jobs: jobqueue.InProcessQueue) -> None:
    jobqueue.set_queue(None)  # the process "dies" after commit: nothing is enqueued
    row = await _row()
    assert (await OutboxMessage.get(id=row.id)).status == "pending" and recording.sent == []
    jobqueue.set_queue(jobs)
    assert await sweep_outbox({}) == 1
    await jobs.drain()
    assert [s["id"] for s in recording.sent] == [row.id]
    assert await sweep_outbox({}) == 0


async def test_lost_lease_is_given_back_by_sweep(db: None, recording: RecordingAdapter,
                                                 jobs: jobqueue.InProcessQueue) -> None:
    row = await _row()
    await jobs.drain()
    await OutboxMessage.filter(id=row.id).update(status="sending", lease_until=utcnow() - timedelta(seconds=1))
    recording.sent.clear()
    assert await sweep_outbox({}) == 1
    await jobs.drain()
    assert [s["id"] for s in recording.sent] == [row.id]


async def test_a_sweep_with_no_lease_run_out_writes_nothing(anydb: str, recording: RecordingAdapter) -> None:
    from tests.sqlcount import count_statements

    row = await _row()
    claimed = await service.claim(outbox_id=row.id)  # a live sender holds it
    assert claimed is not None
    # a ranged UPDATE every 10 s locked the index gaps the workers' claims and sends were writing: MariaDB answered a
    # sweep with a deadlock while 2 workers delivered (bench.callbacks --busy-workers 2)
    with count_statements() as statements:
        assert await service.release_expired_leases() == 0
    assert [s.split()[0] for s in statements] == ["SELECT"]
    assert (await OutboxMessage.get(id=row.id)).status == "sending"


async def test_temporary_failures_retry_with_backoff_then_deliver(db: None, recording: RecordingAdapter) -> None:
    jobqueue.set_queue(None)
    row = await _row()
    recording.fail_next(times=2)
    assert await deliver_outbox({}, row.id) == "retry"
    fresh = await OutboxMessage.get(id=row.id)
    assert fresh.status == "pending" and fresh.attempts == 1 and "simulated outage" in (fresh.last_error or "")
    assert fresh.next_attempt_at > utcnow()
    assert await deliver_outbox({}, row.id) == "skipped"  # not due yet
    now = utcnow()
    set_clock(lambda: now + timedelta(hours=2))
    try:
        assert await deliver_outbox({}, row.id) == "retry"
        set_clock(lambda: now + timedelta(hours=4))
        assert await deliver_outbox({}, row.id) == "sent"
    finally:
        set_clock(None)
    assert (await OutboxMessage.get(id=row.id)).attempts == 3 and len(recording.sent) == 1


async def test_dead_letter_after_max_attempts_keeps_last_error(db: None, recording: RecordingAdapter) -> None:
    from app.settings import get_settings, set_settings

    set_settings(get_settings().with_overrides(outbox_max_attempts=2))
    jobqueue.set_queue(None)
    row = await _row()
    recording.fail_next(times=5)
    now = utcnow()
    assert await deliver_outbox({}, row.id) == "retry"
    set_clock(lambda: now + timedelta(hours=2))
    try:
        assert await deliver_outbox({}, row.id) == "dead"
    finally:
        set_clock(None)
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.attempts, fresh.last_error) == ("dead", 2, "TemporaryChannelError: simulated outage")


async def test_permanent_failure_is_not_retried(db: None, recording: RecordingAdapter) -> None:
    row = await _row()
    recording.fail_next(temporary=False)
    assert await deliver_outbox({}, row.id) == "failed"
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.last_error, fresh.delivery_state) == ("failed", "simulated refusal", "undeliverable")


async def test_rows_are_not_written_when_the_cause_rolls_back(db: None, recording: RecordingAdapter,
                                                              jobs: jobqueue.InProcessQueue) -> None:
    try:
        async with atomic():
            await service.create(channel="test", kind="customer_message", recipient="u-1", payload={"text": "x"})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    await jobs.drain()
    assert await OutboxMessage.all().count() == 0 and recording.sent == []


async def test_an_unknown_outcome_is_retried_where_the_platform_recognises_a_repeat(
        db: None, recording: RecordingAdapter) -> None:
    jobqueue.set_queue(None)
    row = await _row()
    recording.failures.append(OutcomeUnknown("no answer within 10 s"))  # kf msgid / WeCom duplicate check
    assert await deliver_outbox({}, row.id) == "retry"
    assert (await OutboxMessage.get(id=row.id)).status == "pending"


async def test_an_unknown_outcome_without_an_idempotency_key_waits_for_staff(
        db: None, recording: RecordingAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    jobqueue.set_queue(None)
    monkeypatch.setattr(recording, "resend_safe", False, raising=False)
    row = await _row()
    recording.failures.append(OutcomeUnknown("no answer within 10 s"))
    assert await deliver_outbox({}, row.id) == "unknown"
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.lease_until, fresh.last_error) == ("unknown", None,
                                                                   "OutcomeUnknown: no answer within 10 s")
    later = utcnow() + timedelta(days=1)
    set_clock(lambda: later)
    try:
        assert await sweep_outbox({}) == 0 and await deliver_outbox({}, row.id) == "skipped"
    finally:
        set_clock(None)
    assert recording.sent == []


async def test_a_stale_senders_bookkeeping_does_not_touch_a_row_claimed_again(
        db: None, recording: RecordingAdapter) -> None:
    jobqueue.set_queue(None)
    row = await _row()
    first = await service.claim(outbox_id=row.id)
    assert first is not None
    await OutboxMessage.filter(id=row.id).update(lease_until=utcnow() - timedelta(seconds=1))
    assert await service.release_expired_leases() == 1
    second = await service.claim(outbox_id=row.id)
    assert second is not None and second.attempts == 2
    await service.mark_failed(row=first, error="late", code="late")  # the first sender wakes up after all
    assert not await service.renew(row=first)
    assert (await OutboxMessage.get(id=row.id)).status == "sending"
    await service.mark_sent(row=second, provider_msg_id="p-1", detail={})
    assert (await OutboxMessage.get(id=row.id)).status == "sent"


async def _fold(text: str) -> str:
    async with atomic():
        return await service.create_or_fold(channel="test", kind="staff_card", recipient="agent",
                                            payload={"text": text}, folded={"text": f"多条：{text}"},
                                            dedupe_key="card:message:1:1:0")


async def test_a_card_waiting_to_go_out_takes_the_newest_text_and_one_sent_covers_the_rest(
        anydb: str, recording: RecordingAdapter) -> None:
    assert await _fold("第一条") == "created"
    assert await _fold("第二条") == "folded"
    assert await _fold("第三条") == "folded"
    row = await OutboxMessage.get(dedupe_key="card:message:1:1:0")
    assert row.payload == {"text": "多条：第三条"}
    assert await deliver_outbox({}, row.id) == "sent"
    assert await _fold("第四条") == "covered"
    assert [s["payload"] for s in recording.sent] == [{"text": "多条：第三条"}]
    assert await OutboxMessage.filter(kind="staff_card").count() == 1


async def test_a_claimed_card_is_never_changed_under_its_sender(anydb: str, recording: RecordingAdapter) -> None:
    assert await _fold("第一条") == "created"
    row = await OutboxMessage.get(dedupe_key="card:message:1:1:0")
    claimed = await service.claim(outbox_id=row.id)
    assert claimed is not None and claimed.status == "sending"
    assert await _fold("第二条") == "covered"
    assert (await OutboxMessage.get(id=row.id)).payload == {"text": "第一条"}


async def test_a_fold_under_a_key_this_process_knows_is_one_update(anydb: str, recording: RecordingAdapter) -> None:
    from tests.sqlcount import count_statements

    assert await _fold("第一条") == "created"
    with count_statements() as statements:
        assert await _fold("第二条") == "folded"
    assert [s.split()[0] for s in statements] == ["UPDATE"], statements
    row = await OutboxMessage.get(dedupe_key="card:message:1:1:0")
    assert await deliver_outbox({}, row.id) == "sent"
    with count_statements() as statements:
        assert await _fold("第三条") == "covered"
    assert [s.split()[0] for s in statements] == ["UPDATE"], statements
    # a claimed row never takes a fold again: the next one under its key is answered without a statement
    with count_statements() as statements:
        assert await _fold("第三条半") == "covered"
    assert statements == []
    # another process's row is learnt from the refused INSERT, and then needs no statement either
    service.invalidate()
    assert await _fold("第四条") == "covered"
    with count_statements() as statements:
        assert await _fold("第五条") == "covered"
    assert statements == []
    assert [s["payload"] for s in recording.sent] == [{"text": "多条：第二条"}]


async def test_a_card_whose_transaction_rolled_back_is_not_taken_for_stored(anydb: str) -> None:
    with pytest.raises(RuntimeError):
        async with atomic():
            assert await service.create_or_fold(
                channel="test", kind="staff_card", recipient="agent", payload={"text": "第一条"},
                folded={"text": "多条：第一条"}, dedupe_key="card:message:1:1:0") == "created"
            raise RuntimeError("the intake failed after the card")
    assert await OutboxMessage.filter(dedupe_key="card:message:1:1:0").count() == 0
    # the next message's card is written, not folded into a row that never was
    assert await _fold("第二条") == "created"
    assert (await OutboxMessage.get(dedupe_key="card:message:1:1:0")).payload == {"text": "第二条"}
