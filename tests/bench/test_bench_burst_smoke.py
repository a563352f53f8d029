"""The burst benchmark at a tiny scale: two web processes and two workers against MariaDB and Redis, and the
burst's exactly-once guarantees across them (one ticket per customer, every message stored once on its customer's
ticket, one acknowledgement per customer), so `python -m bench.burst` cannot rot. Figures are not checked."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bench import burst
from bench.seed import drop_database
from tests.bench.test_bench_callbacks_smoke import SMOKE_REDIS, _services_or_skip

pytestmark = pytest.mark.mysql

SMOKE_DB = f"mysql://root:@127.0.0.1:3306/gongdan_bench_burst_smoke_{os.getpid()}"


def test_a_small_burst_on_two_web_and_two_worker_processes_is_exactly_once(tmp_path: Path) -> None:
    _services_or_skip()
    cfg = burst.Config(scale=0.006, database_url=SMOKE_DB, redis_url=SMOKE_REDIS, concurrency=8, timeout_s=90.0,
                       fill_schema=True, output=tmp_path / "burst.json")
    assert (cfg.callbacks, cfg.customers) == (120, 12)
    try:
        doc = burst.run(cfg)
    finally:
        asyncio.run(drop_database(SMOKE_DB))
    assert json.loads((tmp_path / "burst.json").read_text()) == doc
    assert doc["drained"] is True
    assert doc["callbacks"]["errors"] == 0 and doc["callbacks"]["requests"] == 120 and doc["callbacks"]["unsent"] == 0
    assert doc["exactly_once"] == {"messages_stored": 120, "distinct_provider_ids": 120, "messages_without_ticket": 0,
                                   "messages_on_another_customers_ticket": 0, "customers_with_two_tickets": 0,
                                   "pass": True}
    assert doc["tickets"] == 12 and doc["customers_acknowledged"] == 12
    # one acknowledgement per customer, and after the desk's hours (China time) also its 下班 notice
    assert doc["outbox_rows_by_kind"]["customer_message"] in (12, 24)
    assert doc["events"] == {"done": 120}
    assert doc["logs"] == {"web_crashes": 0, "worker_failures": 0, "deadlocks": 0}
    assert doc["peak_rss_mb"]["web_mb"] > 0 and doc["peak_rss_mb"]["worker_mb"] > 0
    assert doc["callback_to_ack_sent_ms"]["customers"] == 12
