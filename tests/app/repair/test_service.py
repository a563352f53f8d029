"""Repair tools: failed outbox messages and stored callbacks are listed safely and replayed exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from app.channels import inbound_jobs
from app.channels.models import ChannelAccount, InboundEvent
from app.channels.testing import RecordingAdapter
from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.outbox import service as outbox
from app.outbox.jobs import deliver_outbox
from app.outbox.models import OutboxMessage
from app.repair import service
from app.security import chain
from app.security.models import AuditLog
from app.security.scope import Actor
from app.settings import Settings, set_settings
from app.timeutil import utcnow
from app.uow import atomic
from tests import factories
from tests.conftest import RecordingQueue


@pytest.fixture
async def people(db: None) -> dict[str, Actor]:
    data = await factories.org()
    return {k: await factories.actor(v) for k, v in data["people"].items()}


async def _dead_row(recording: RecordingAdapter, settings: Settings, *, text: str = "您好") -> OutboxMessage:
    """An outbox row whose every attempt failed (one attempt allowed)."""
    set_settings(settings.with_overrides(outbox_max_attempts=1))
    async with atomic():
        row = await outbox.create(channel="test", kind="customer_message", recipient="oUser12345",
                                  payload={"type": "text", "text": text})
    recording.fail_next(temporary=True)
    assert await deliver_outbox({}, row.id) == "dead"
    return await OutboxMessage.get(id=row.id)


async def test_a_dead_letter_is_replayed_once_and_delivered_once(people: dict[str, Actor], settings: Settings,
                                                                 recording: RecordingAdapter,
                                                                 queue: RecordingQueue) -> None:
    row = await _dead_row(recording, settings)
    assert (row.status, row.attempts) == ("dead", 1)
    first = await service.replay_outbox(actor=people["admin"], outbox_id=row.id)
    second = await service.replay_outbox(actor=people["admin"], outbox_id=row.id)
    assert (first.replayed, first.status) == (True, "pending")
    assert (second.replayed, second.status) == (False, "pending")
    # one job for the one replay that changed something
    assert [j for j in queue.jobs if "replay" in str(j[2])] == [
        ("deliver_outbox", (row.id,), f"deliver:{row.id}:replay:{(await AuditLog.get(action='replay_outbox')).id}")]
    # every job that may still be around runs: one sends, the rest find nothing to claim
    results = [await deliver_outbox({}, row.id) for _ in range(3)]
    assert results == ["sent", "skipped", "skipped"]
    assert [s["id"] for s in recording.sent] == [row.id]
    fresh = await OutboxMessage.get(id=row.id)
    assert (fresh.status, fresh.attempts) == ("sent", 1)
    with pytest.raises(InvalidTransition) as refused:
        await service.replay_outbox(actor=people["admin"], outbox_id=row.id)
    assert refused.value.code == "already_delivered"
    entries = await AuditLog.filter(action="replay_outbox")
    assert [(e.object_type, e.object_id, e.staff_id) for e in entries] == [  # type: ignore[attr-defined]
        ("outbox", str(row.id), people["admin"].staff_id)]
    assert "重试耗尽" in entries[0].reason and "已尝试 1 次" in entries[0].reason
    assert (await chain.verify()).ok


async def test_a_replayed_row_gets_its_full_attempts_again(people: dict[str, Actor], settings: Settings,
                                                           recording: RecordingAdapter,
                                                           queue: RecordingQueue) -> None:
    row = await _dead_row(recording, settings)
    set_settings(settings.with_overrides(outbox_max_attempts=3))
    await service.replay_outbox(actor=people["admin"], outbox_id=row.id)
    recording.fail_next(temporary=True)
    assert await deliver_outbox({}, row.id) == "retry"
    await OutboxMessage.filter(id=row.id).update(next_attempt_at=utcnow())
    assert await deliver_outbox({}, row.id) == "sent"
    assert (await OutboxMessage.get(id=row.id)).attempts == 2


async def test_failed_and_unknown_rows_are_replayable_and_a_pending_one_is_not_touched(
        people: dict[str, Actor], queue: RecordingQueue) -> None:
    rows = {}
    for status in ("failed", "unknown", "pending", "sending"):
        rows[status] = await OutboxMessage.create(channel="test", kind="customer_message", recipient="u",
                                                  payload={}, status=status, attempts=2, next_attempt_at=utcnow())
    assert (await service.replay_outbox(actor=people["admin"], outbox_id=rows["failed"].id)).replayed
    assert (await service.replay_outbox(actor=people["admin"], outbox_id=rows["unknown"].id)).replayed
    for status in ("pending", "sending"):
        result = await service.replay_outbox(actor=people["admin"], outbox_id=rows[status].id)
        assert (result.replayed, result.status) == (False, status)
        assert (await OutboxMessage.get(id=rows[status].id)).attempts == 2
    assert await AuditLog.filter(action="replay_outbox").count() == 2
    with pytest.raises(NotFound):
        await service.replay_outbox(actor=people["admin"], outbox_id=999999)


async def test_a_replay_of_a_ticket_message_is_on_the_ticket(people: dict[str, Actor], queue: RecordingQueue) -> None:
    from app import intake
    from app.tickets.models import TicketEvent

    customer = await factories.customer()
    ticket = await intake.staff_ticket(
        actor=people["admin"], customer=customer, subject="退款", description="", priority=None, order_no=None,
        phone=None, category="", tags=[], custom_fields={}, group_id=None, assignee_id=None, assign_to_self=False,
        source="api")
    row = await OutboxMessage.create(channel="test", kind="customer_message", recipient="u", payload={},
                                     status="dead", next_attempt_at=utcnow(), ticket_id=ticket.id)
    await service.replay_outbox(actor=people["admin"], outbox_id=row.id)
    event = await TicketEvent.get(ticket_id=ticket.id, kind="delivery_resent")
    assert event.data == {"outbox_id": row.id, "replay": True}
    assert event.actor_id == people["admin"].staff_id  # type: ignore[attr-defined]


async def test_only_admins_use_the_repair_tools(people: dict[str, Actor], queue: RecordingQueue) -> None:
    row = await OutboxMessage.create(channel="test", kind="k", recipient="u", payload={}, status="dead",
                                     next_attempt_at=utcnow())
    for who in ("lead", "agent"):
        with pytest.raises(PermissionDenied):
            await service.replay_outbox(actor=people[who], outbox_id=row.id)
        with pytest.raises(PermissionDenied):
            await service.list_outbox(actor=people[who])
        with pytest.raises(PermissionDenied):
            await service.list_inbound(actor=people[who])
    assert (await OutboxMessage.get(id=row.id)).status == "dead"
    assert queue.jobs == [] and await AuditLog.all().count() == 0


async def test_the_list_filters_by_channel_status_time_and_error(people: dict[str, Actor]) -> None:
    now = utcnow()
    made = []
    for channel, status, error in [("wechat_mp", "dead", "errcode 45015 回复时间超过限制"),
                                   ("wecom_kf", "failed", "95018 会话状态不允许"), ("wechat_mp", "sent", None),
                                   ("email", "unknown", "ReadTimeout")]:
        made.append(await OutboxMessage.create(channel=channel, kind="customer_message", recipient="oAbcdefg",
                                               payload={"text": "客户的话"}, status=status, last_error=error,
                                               next_attempt_at=now))
    await OutboxMessage.filter(id=made[0].id).update(created_at=now - timedelta(days=3))
    admin = people["admin"]

    async def ids(**kw: Any) -> list[int]:
        return [r.id for r in await service.list_outbox(actor=admin, **kw)]

    assert await ids() == [made[3].id, made[1].id, made[0].id]
    assert await ids(channel="wechat_mp") == [made[0].id]
    assert await ids(status="sent") == [made[2].id]
    assert await ids(error="45015") == [made[0].id]
    assert await ids(since=now - timedelta(days=1)) == [made[3].id, made[1].id]
    assert await ids(until=now - timedelta(days=1)) == [made[0].id]
    assert await ids(before_id=made[3].id, limit=1) == [made[1].id]
    with pytest.raises(ValidationFailed):
        await service.list_outbox(actor=admin, status="lost")
    with pytest.raises(ValidationFailed):
        await service.list_outbox(actor=admin, since=now, until=now - timedelta(days=1))
    assert await service.count_outbox(actor=admin) == {"failed": 1, "dead": 1, "unknown": 1}


async def test_what_is_shown_holds_no_payload_and_masks_personal_data(people: dict[str, Actor]) -> None:
    row = await OutboxMessage.create(channel="email", kind="customer_message", recipient="zhang.san@example.com",
                                     payload={"text": "您的手机 13812345678"}, status="dead",
                                     last_error="550 mailbox zhang.san@example.com unavailable, call 13812345678",
                                     next_attempt_at=utcnow())
    shown = service.serialize_outbox(row)
    text = repr(shown)
    assert "payload" not in shown and "您的手机" not in text
    assert "13812345678" not in text and "zhang.san@example.com" not in text
    assert shown["recipient"] == "zhan***"
    assert shown["error"].startswith("550 mailbox ") and "138****5678" in shown["error"]
    assert shown["replayable"] is True and shown["status_label"] == "重试耗尽"
    long = service.safe_error("x" * 500)
    assert len(long) == 300 and long.endswith("…")


# ---- stored callbacks -----------------------------------------------------------------------------------------


@pytest.fixture
def flaky_processor() -> Iterator[dict[str, Any]]:
    """A processor for kind ``rtest`` that fails while ``state["fail"]`` is set and counts what it handled."""
    state: dict[str, Any] = {"fail": True, "handled": []}

    async def processor(event: InboundEvent, account: ChannelAccount | None) -> str:
        if state["fail"]:
            raise RuntimeError("platform said no for 13812345678")
        state["handled"].append(event.id)
        return "done"

    inbound_jobs.register_processor("rtest", processor)
    yield state
    inbound_jobs.PROCESSORS.pop("rtest", None)


async def _failed_event(account: ChannelAccount) -> InboundEvent:
    event = await InboundEvent.create(channel_account_id=account.id, dedupe_key="rtest:1", payload="<xml/>")
    await InboundEvent.filter(id=event.id).update(attempts=inbound_jobs.MAX_ATTEMPTS - 1)
    assert await inbound_jobs.process_inbound_event({}, event.id) == "error"
    return await InboundEvent.get(id=event.id)


async def test_a_failed_callback_is_replayed_once(people: dict[str, Actor], flaky_processor: dict[str, Any],
                                                  queue: RecordingQueue) -> None:
    account = await ChannelAccount.create(kind="rtest", key="rtest-1", name="测试号")
    event = await _failed_event(account)
    assert (event.status, event.attempts) == ("failed", inbound_jobs.MAX_ATTEMPTS)
    listed = await service.list_inbound(actor=people["admin"])
    assert [e.id for e in listed] == [event.id]
    shown = service.serialize_inbound(listed[0])
    assert shown["account_name"] == "测试号" and "13812345678" not in shown["error"]
    assert "payload" not in shown
    flaky_processor["fail"] = False
    first = await service.replay_inbound(actor=people["admin"], event_id=event.id)
    again = await service.replay_inbound(actor=people["admin"], event_id=event.id)
    assert (first.replayed, again.replayed) == (True, False)
    assert [j[0] for j in queue.jobs] == ["process_inbound_event"]
    assert [await inbound_jobs.process_inbound_event({}, event.id) for _ in range(2)] == ["done", "skipped"]
    assert flaky_processor["handled"] == [event.id]
    with pytest.raises(InvalidTransition) as refused:
        await service.replay_inbound(actor=people["admin"], event_id=event.id)
    assert refused.value.code == "already_processed"
    assert await AuditLog.filter(action="replay_inbound", object_id=str(event.id)).count() == 1


async def test_callbacks_filter_by_channel_including_ones_without_an_account(people: dict[str, Actor]) -> None:
    account = await ChannelAccount.create(kind="wechat_mp", key="mp1", name="公众号")
    with_account = await InboundEvent.create(channel_account_id=account.id, dedupe_key="mp:1", payload="x",
                                             status="failed", error="boom")
    contacts = await InboundEvent.create(dedupe_key="wecom_contacts:abc", payload="x", status="failed", error="x")
    await InboundEvent.create(dedupe_key="wecom_contacts:done", payload="x", status="done")
    admin = people["admin"]
    assert [e.id for e in await service.list_inbound(actor=admin, channel="wechat_mp")] == [with_account.id]
    assert [e.id for e in await service.list_inbound(actor=admin, channel="wecom_contacts")] == [contacts.id]
    assert service.serialize_inbound(
        (await service.list_inbound(actor=admin, channel="wecom_contacts"))[0])["channel"] == "wecom_contacts"
    assert await service.count_inbound(actor=admin) == {"failed": 2}


async def test_a_bulk_replay_reports_each_row(people: dict[str, Actor], queue: RecordingQueue) -> None:
    dead = await OutboxMessage.create(channel="test", kind="k", recipient="u", payload={}, status="dead",
                                      next_attempt_at=utcnow())
    sent = await OutboxMessage.create(channel="test", kind="k", recipient="u", payload={}, status="sent",
                                      next_attempt_at=utcnow())
    pending = await OutboxMessage.create(channel="test", kind="k", recipient="u", payload={}, status="pending",
                                         next_attempt_at=utcnow())
    result = await service.replay_outbox_many(actor=people["admin"], ids=[dead.id, sent.id, pending.id, dead.id,
                                                                          424242])
    assert result.as_dict() == {"replayed": [dead.id], "already_queued": [pending.id],
                                "refused": [{"id": sent.id, "message": "这条消息已送达，不能重放"},
                                            {"id": 424242, "message": "消息不存在"}]}
    assert await AuditLog.filter(action="replay_outbox").count() == 1
    with pytest.raises(ValidationFailed):
        await service.replay_outbox_many(actor=people["admin"], ids=[])
    with pytest.raises(ValidationFailed):
        await service.replay_outbox_many(actor=people["admin"], ids=list(range(1, service.MAX_BULK + 2)))
