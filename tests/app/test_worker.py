"""app.worker: `gongdan worker` serves the inbound and outbox lanes side by side, each with its own job slots."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app import queue as jobqueue
from app import worker
from app.queue import INBOUND, OUTBOX, ArqQueue
from tests.conftest import make_settings, redis_url_or_skip


def _own_db(url: str) -> str:
    """Redis db 10: these tests flush it (other test runs on the machine use 11-15)."""
    return url.rsplit("/", 1)[0] + "/10"


async def test_an_outbox_job_runs_before_the_inbound_backlog_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    from arq.connections import create_pool

    from app.redisconn import redis_settings_from_url

    url = _own_db(redis_url_or_skip())
    ran: list[tuple[str, float]] = []

    async def bench_slow_inbound(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.01)
        ran.append(("in", time.monotonic()))

    async def bench_deliver(ctx: dict[str, Any], n: int) -> None:
        ran.append(("out", time.monotonic()))

    monkeypatch.setitem(worker.JOBS, "bench_slow_inbound", bench_slow_inbound)
    monkeypatch.setitem(worker.JOBS, "bench_deliver", bench_deliver)
    monkeypatch.setitem(jobqueue.LANES, "bench_deliver", OUTBOX)
    monkeypatch.setitem(worker.MAX_JOBS, INBOUND, 2)
    monkeypatch.setattr(worker, "CRONS", [])
    pool = await create_pool(redis_settings_from_url(url))
    await pool.flushdb()
    q = ArqQueue(pool)
    try:
        for n in range(120):
            await q.enqueue("bench_slow_inbound", n)
        await q.enqueue("bench_deliver", 1)

        async def nothing(ctx: dict[str, Any]) -> None:
            return None

        workers = await worker.run_lanes(make_settings(redis_url=url), [INBOUND, OUTBOX], burst=True,
                                         startup=nothing, shutdown=nothing,
                                         poll_delay=0.01)
    finally:
        await pool.flushdb()
        await q.close()
    assert sorted(w.queue_name for w in workers) == ["arq:queue", "gongdan:outbox"]
    kinds = [k for k, _ in ran]
    assert kinds.count("in") == 120 and kinds.count("out") == 1
    # 120 inbound jobs, 2 at a time: the delivery did not wait for them
    assert kinds.index("out") < 30


def test_worker_settings_split_jobs_and_crons_by_lane() -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:6379/15")
    inbound: Any = worker.worker_settings(settings, lane=INBOUND)
    outbox: Any = worker.worker_settings(settings, lane=OUTBOX)
    names = {lane: {f.name for f in ws.functions} for lane, ws in ((INBOUND, inbound), (OUTBOX, outbox))}
    assert names[OUTBOX] == {"deliver_outbox", "sweep_outbox"}
    assert "process_inbound_event" in names[INBOUND] and not names[INBOUND] & names[OUTBOX]
    assert [c.name for c in outbox.cron_jobs] == ["cron:sweep_outbox"]
    assert "cron:sweep_outbox" not in {c.name for c in inbound.cron_jobs}
    assert (inbound.queue_name, outbox.queue_name) == ("arq:queue", "gongdan:outbox")


def test_cli_worker_refuses_an_unknown_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    args = cli.build_parser().parse_args(["worker", "--queues", "inbound,nope"])
    with pytest.raises(SystemExit) as exc:
        args.func(args)
    assert exc.value.code == 2

