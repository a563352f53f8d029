"""The callback benchmark's whole code path at a tiny scale (seconds), so `python -m bench.callbacks` cannot rot.

Every target (bare, minimal, gongdan) at one small concurrency for under a second each, then a 20-message
end-to-end batch drained by one `gongdan worker`; checks the report's shape and that nothing failed, not its
figures (those only mean something at full scale on a quiet machine).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bench import callbacks
from bench.seed import drop_database
from tests.conftest import IN_CI

pytestmark = pytest.mark.mysql

#: one database per test process, so concurrent runs on one server do not collide
SMOKE_DB = f"mysql://root:@127.0.0.1:3306/gongdan_bench_cb_smoke_{os.getpid()}"
#: a Redis database of its own (the benchmark uses 13, the tests 14 and 15)
SMOKE_REDIS = os.environ.get("BENCH_SMOKE_REDIS_URL", "redis://127.0.0.1:6379/12")
PHASE_KEYS = {"requests", "req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "errors", "statuses",
              "window_s", "sent", "generated", "exhausted", "cpu", "runqueue_wait_pct_of_core"}


def _services_or_skip() -> None:
    import aiomysql
    import redis

    async def ping() -> None:
        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3)
        conn.close()

    try:
        asyncio.run(ping())
        client = redis.Redis.from_url(SMOKE_REDIS, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"MariaDB and Redis are required under CI and one is unreachable: {exc}")
        pytest.skip(f"MariaDB or Redis not reachable: {exc}")


def test_bench_callbacks_runs_every_phase_without_errors(tmp_path: Path) -> None:
    _services_or_skip()
    cfg = callbacks.Config(
        database_url=SMOKE_DB, redis_url=SMOKE_REDIS, concurrencies=(4,), duration_s=0.8, warmup_s=0.2, workers=1,
        db_pool_size=8, client_start_s=0.4, e2e_messages=20, e2e_concurrency=4, e2e_timeout_s=30.0,
        e2e_outbox_wait_s=2.0, rate_caps={"bare": (12000, 12000), "minimal": (3000, 3000), "gongdan": (3000, 3000)},
        output=tmp_path / "callbacks.json", log_dir=tmp_path, busy_workers=1, fill_schema=True,
    )
    try:
        doc = callbacks.run(cfg)
    finally:
        asyncio.run(drop_database(SMOKE_DB))

    assert json.loads((tmp_path / "callbacks.json").read_text()) == doc
    assert {"machine", "config", "results", "ratios", "aim", "aim_pass", "end_to_end", "server_logs", "profile",
            "replay_files_exhausted", "contention", "elapsed_s"} <= set(doc)
    row = doc["results"]["c4"]
    assert set(row) == set(callbacks.TARGETS)
    for target, phase in row.items():
        assert PHASE_KEYS <= set(phase), target
        assert phase["errors"] == 0, (target, phase["error_samples"])
        assert phase["requests"] > 0, target
        assert phase["statuses"] == {"200": phase["requests"]}, target
        assert phase["cpu"]["server_cpu_ms_per_request"] >= 0, target
    assert {"gongdan_vs_minimal_req_per_s", "minimal_vs_bare_req_per_s"} <= set(doc["ratios"]["c4"])
    assert doc["aim"] == {"evaluated": False, "reason": "needs gongdan and minimal at concurrency 64"}
    assert doc["server_logs"] == {"gongdan_log_crashes": 0, "gongdan_log_rejected": 0}

    busy = doc["while_processing"]
    assert busy["workers"] == 1 and busy["minimal_measured_here"] is True
    assert busy["gongdan"]["errors"] == 0 and busy["gongdan"]["requests"] > 0, busy["gongdan"]["error_samples"]
    assert busy["minimal"]["errors"] == 0 and busy["minimal"]["requests"] > 0
    assert set(busy["aim"]) == {"ratio_vs_minimal", "target_ratio", "p99_ms", "target_p99_ms", "pass"}
    assert busy["logs"]["web_crashes"] == 0 and busy["peak_rss"]["worker_mb"] > 0
    assert set(busy["gongdan"]["runqueue_wait_pct_of_core"]) == {"server", "workers", "db", "redis"}
    # each worker in a session (so an autogroup, where the kernel has them) of its own, apart from the web's
    sched = busy["scheduling"]
    assert {"autogroup_enabled", "web", "workers", "db"} <= set(sched) and sched["workers"]["nice"]
    if sched["autogroup_enabled"]:
        assert sched["workers"]["autogroups"] and not set(sched["workers"]["autogroups"]) & set(
            sched["web"]["autogroups"])

    e2e = doc["end_to_end"]
    assert e2e["post"]["errors"] == 0 and e2e["post"]["requests"] == 20
    assert e2e["post"]["sent"] == 20 and e2e["post"]["unsent"] == 0
    assert e2e["drained"] is True
    assert e2e["events_processed"] == 20
    assert e2e["tickets_created"] == 20
    assert e2e["worker_log_failures"] == 0
    assert {"events_per_s", "tickets_per_s", "drain_s", "worker_startup_s", "outbox", "cpu_until_drain"} <= set(e2e)


def test_the_end_to_end_post_counts_every_request_the_client_sent() -> None:
    """Not the load client's window: its first requests may start a fraction of a millisecond before the shared
    start (uvloop ends the sleep early), which the window left uncounted: 16 of 20 posted and no error."""
    times = [[0, 100.0, 100.01], [1, 100.0, 100.02], [2, 100.0, 0.0], [3, 100.01, 100.03]]
    summary = callbacks.post_summary(times, 5, ["0 ConnectionResetError()"])
    assert summary == {"sent": 4, "unsent": 1, "requests": 3, "errors": 1, "req_per_s": 100.0, "p50_ms": 20.0,
                       "p99_ms": 20.0, "error_samples": ["0 ConnectionResetError()"]}
    assert callbacks.post_summary([], 20, []) == {"sent": 0, "unsent": 20, "requests": 0, "errors": 0,
                                                  "req_per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0,
                                                  "error_samples": []}


def test_callbacks_are_distinct_and_verify_with_the_app_code(tmp_path: Path) -> None:
    """The generated callbacks pass the desk's own verification, and no two share a MsgId or an openid."""
    from urllib.parse import parse_qsl, urlsplit

    from app.wecom.callback import CallbackCredentials, open_mp_callback

    gen = callbacks.Callbacks(callbacks.Account())
    files = gen.generate(tmp_path / "c.jsonl", 50, parts=2)
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 50
    creds = CallbackCredentials(token=callbacks.TOKEN, aes_key=callbacks.AES_KEY, receive_id=callbacks.APPID)
    seen_ids, seen_openids = set(), set()
    for line in lines:
        params = dict(parse_qsl(urlsplit(line["path"]).query))
        envelope = open_mp_callback(creds, params, line["body"], now=float(params["timestamp"]), window_seconds=300)
        assert envelope.fields["MsgType"] == "text" and "退款" in envelope.fields["Content"]
        seen_ids.add(envelope.fields["MsgId"])
        seen_openids.add(envelope.fields["FromUserName"])
    assert len(seen_ids) == len(seen_openids) == 50
    assert gen.next_msg_id == callbacks.FIRST_MSG_ID + 50


def test_the_meter_tells_waiting_for_a_core_from_running() -> None:
    from bench import procs

    me = [os.getpid()]
    assert procs.runqueue_wait_seconds(me) >= 0.0 and procs.runqueue_wait_seconds([2**22 + 7]) == 0.0
    meter = callbacks.Meter({"me": me})
    meter.begin()
    sum(range(200_000))
    out = meter.end()
    assert out["me_pct_of_core"] >= 0.0 and set(meter.waits) == {"me"} and meter.waits["me"] >= 0.0
    sched = procs.scheduling({"me": me})
    assert sched["me"]["nice"] == [os.getpriority(os.PRIO_PROCESS, 0)]
    if sched["autogroup_enabled"]:
        assert len(sched["me"]["autogroups"]) == 1
