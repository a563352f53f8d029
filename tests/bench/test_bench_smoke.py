"""The API benchmark's whole code path on a tiny data set (seconds), so `python -m bench.api` cannot rot.

Seeds `gongdan_bench_smoke_<pid>` with 200 tickets, serves it with `gongdan serve`, loads every phase for a second
and checks the report's shape, not its figures (those only mean something at 100k tickets on a quiet machine).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bench import api
from bench.seed import Plan, drop_database, is_seeded
from tests.conftest import IN_CI

pytestmark = pytest.mark.mysql

#: one database per test process, like tests/conftest.py's, so concurrent runs on one server do not collide
SMOKE_DB = f"mysql://root:@127.0.0.1:3306/gongdan_bench_smoke_{os.getpid()}"
PHASE_KEYS = {"requests", "req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "errors", "statuses", "cpu"}


def _mariadb_or_skip() -> None:
    import aiomysql

    async def ping() -> None:
        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3)
        conn.close()

    try:
        asyncio.run(ping())
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI and is unreachable: {exc}")
        pytest.skip(f"MariaDB not reachable: {exc}")


def test_bench_api_runs_every_phase_without_errors(tmp_path: Path) -> None:
    _mariadb_or_skip()
    plan = Plan(tickets=200, customers=50, agent_open=10)
    cfg = api.Config(
        database_url=SMOKE_DB, plan=plan, concurrency=4, duration_s=1.0, warmup_s=0.2, workers=1,
        client_start_s=0.6, output=tmp_path / "api.json", log_dir=tmp_path,
    )
    try:
        doc = api.run(cfg)
        assert asyncio.run(is_seeded(SMOKE_DB, plan))
    finally:
        asyncio.run(drop_database(SMOKE_DB))

    assert json.loads((tmp_path / "api.json").read_text()) == doc
    assert {"machine", "config", "dataset", "results", "ratios_vs_bare", "targets", "all_targets_pass",
            "django_helpdesk", "client_ceiling", "contention"} <= set(doc)
    assert doc["dataset"]["tickets"] == 200
    assert doc["dataset"]["agent_open_tickets"] > 0
    results = doc["results"]
    for phase in api.PHASES:
        assert PHASE_KEYS <= set(results[phase]), phase
        assert results[phase]["errors"] == 0, (phase, results[phase]["error_samples"])
        assert results[phase]["requests"] > 0, phase
        assert results[phase]["cpu"]["server_cpu_ms_per_request"] >= 0, phase
    assert results["server_log_crashes"] == 0
    # the server rolled the create phase's tickets up before the next phase began
    assert results["create"]["rollups"]["left"] == 0
    assert results["create"]["rollups"]["backlog_at_end"] >= 0
    assert set(doc["ratios_vs_bare"]) == {"create", "list", "detail", "queue"}
    assert {"create_per_s", "list_p99_ms"} <= set(doc["targets"])
    assert isinstance(doc["targets"]["create_per_s"]["pass"], bool)


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert api._percentile(values, 50) == 50.0
    assert api._percentile(values, 99) == 99.0
    assert api._percentile([], 99) == 0.0
