"""The reports benchmark's whole code path on a tiny data set (seconds), so `python -m bench.reports` cannot rot.

Seeds `gongdan_bench_reports_smoke_<pid>` with 300 tickets and checks the report's shape and that the rollups and
the ticket-table scans give the same figures, not the timings (those mean something only at scale).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bench import reports
from tests.bench.test_bench_smoke import _mariadb_or_skip
from tests.conftest import _forget_dialect

pytestmark = pytest.mark.mysql


def test_bench_reports_runs_every_phase_and_the_figures_agree(tmp_path: Path) -> None:
    _mariadb_or_skip()
    cfg = reports.Config(tickets=300, messages_per_ticket=3, days=120, repeat=2, create=20, rebuild_sample=50,
                         database=f"gongdan_bench_reports_smoke_{os.getpid()}", output=tmp_path / "reports.json")
    _forget_dialect()  # an earlier test of this process may have used SQLite (tortoise caches SQL per dialect)
    try:
        doc = reports.run(cfg)
    finally:
        asyncio.run(reports.drop(cfg))
        _forget_dialect()
    assert json.loads((tmp_path / "reports.json").read_text()) == json.loads(json.dumps(doc, default=str))
    assert doc["dataset"]["tickets"] == 300 and doc["dataset"]["messages"] == 900
    views = doc["dashboards"]["views"]
    assert set(views) == {"admin", "lead", "lead_channel", "lead_agent"}
    assert set(views["admin"]["sections"]) == {"overview", "reception", "conversion", "satisfaction", "response",
                                               "sla", "volume", "bot", "agents"}
    assert set(views["lead"]["sections"]) == set(views["admin"]["sections"]) - {"reception", "bot"}
    for view in views.values():
        assert set(view["scan"]) == set(view["figure"]) == {"created_count", "frt_wall_median", "csat_avg"}
        for rollup, scan in view["agree"].values():
            if rollup is None or scan is None:
                assert rollup == scan
            else:
                assert float(rollup) == pytest.approx(float(scan), abs=1e-3)
    assert views["admin"]["agree"]["created"][0] > views["lead"]["agree"]["created"][0] > 0
    assert doc["throughput"]["events"] == 20 and doc["throughput"]["refresh_events_per_s"] > 0
    assert doc["rebuild"]["tickets"] == 50
