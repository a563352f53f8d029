"""bench.webchat on a handful of visitors and SQLite, so `python -m bench.webchat` cannot rot."""

from __future__ import annotations

from pathlib import Path

from bench.webchat import run


async def test_bench_webchat_measures_the_desk_and_the_bare_server(tmp_path: Path) -> None:
    figures = await run(visitors=5, seconds=1.0, probes=5, database_url=f"sqlite://{tmp_path}/bench.sqlite3")
    desk, bare = figures["desk"], figures["bare"]
    assert figures["visitors"] == 5 and figures["database"] == "sqlite"
    assert desk["messages"] > 0 and bare["messages"] > 0
    assert desk["messages_per_s"] > 0 and bare["messages_per_s"] > 0 and desk["p50_ms"] > 0 and bare["p99_ms"] > 0
    assert figures["added_p50_ms"] == round(desk["p50_ms"] - bare["p50_ms"], 2)
