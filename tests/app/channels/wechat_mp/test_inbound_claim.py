"""The inbound job's claim and final status (written as SQL of their own, issue 15): a pending event or one whose lease
ran out is claimed with one more attempt; a live lease is not; the final status lands only while the claim is ours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.channels import inbound_jobs
from app.channels.models import ChannelAccount, InboundEvent
from app.timeutil import set_clock
from tests.sqlcount import count_statements

T0 = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)


async def _event(key: str, **fields: Any) -> InboundEvent:
    return await InboundEvent.create(dedupe_key=key, payload="<xml/>", **fields)


async def test_claims_follow_the_lease_and_the_final_status_only_lands_while_ours(db: None) -> None:
    account = await ChannelAccount.create(kind="claimtest", key="claims", name="测试")
    seen: list[tuple[int, int]] = []

    async def processor(event: InboundEvent, acc: ChannelAccount | None) -> str:
        assert acc is not None and acc.id == account.id
        seen.append((event.id, event.attempts))
        return "done"

    inbound_jobs.register_processor("claimtest", processor)
    try:
        set_clock(lambda: T0)
        pending = await _event("claim:pending", channel_account=account)
        live = await _event("claim:live", channel_account=account, status="processing", attempts=1,
                            processed_at=T0 - inbound_jobs.LEASE + timedelta(seconds=1))
        stale = await _event("claim:stale", channel_account=account, status="processing", attempts=2,
                             processed_at=T0 - inbound_jobs.LEASE - timedelta(seconds=1))
        done = await _event("claim:done", channel_account=account, status="done", attempts=1, processed_at=T0)
        with count_statements() as statements:
            assert await inbound_jobs.process_inbound_event({}, pending.id) == "done"
        assert len(statements) == 3  # claim, read, final status
        assert await inbound_jobs.process_inbound_event({}, live.id) == "skipped"
        assert await inbound_jobs.process_inbound_event({}, stale.id) == "done"
        assert await inbound_jobs.process_inbound_event({}, done.id) == "skipped"
        assert seen == [(pending.id, 1), (stale.id, 3)]
        rows: dict[str, tuple[Any, ...]] = {e.dedupe_key: (e.status, e.attempts, e.processed_at, e.error)
                                            for e in await InboundEvent.filter(dedupe_key__startswith="claim:")}
        assert rows["claim:pending"] == ("done", 1, T0, None)
        assert rows["claim:stale"] == ("done", 3, T0, None)
        assert rows["claim:live"][:2] == ("processing", 1)
        assert rows["claim:done"][:2] == ("done", 1)

        # another worker took the row over meanwhile (one more attempt): this one's final status is dropped
        async def overtaken(event: InboundEvent, acc: ChannelAccount | None) -> str:
            await InboundEvent.filter(id=event.id).update(attempts=event.attempts + 1)
            return "done"

        inbound_jobs.register_processor("claimtest", overtaken)
        taken = await _event("claim:taken", channel_account=account)
        assert await inbound_jobs.process_inbound_event({}, taken.id) == "done"
        row = await InboundEvent.get(id=taken.id)
        assert (row.status, row.attempts) == ("processing", 2)
    finally:
        set_clock(None)
        inbound_jobs.PROCESSORS.pop("claimtest", None)
