"""bench.webhooks on a handful of events, so `python -m bench.webhooks` cannot rot."""

from __future__ import annotations

from bench.webhooks import run


async def test_bench_webhooks_delivers_every_event_and_measures_the_baseline() -> None:
    figures = await run(events=12, concurrency=4)
    assert figures["events"] == 12 and figures["deliveries_per_s"] > 0 and figures["bare_posts_per_s"] > 0
