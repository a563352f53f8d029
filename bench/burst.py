"""The 双11 burst: 20,000 Official Account callbacks in 60 s from 2,000 customers, on 2 web and 2 worker processes.

    python -m bench.burst                      # the issue's burst (about 4 minutes with preparation)
    python -m bench.burst --scale 0.05         # 1,000 callbacks in 3 s from 100 customers (a smoke run)
    python -m bench.burst --help

What it does:

1. Prepares a fresh database and Redis db as bench.callbacks does (migrate, demo org, flush).
2. Writes the burst: customer c's k-th message is line k * customers + c, so every customer writes every
   `customers / rate` seconds; the first message quotes an order and 退款 (a ticket opens), the next ones add to it.
3. Starts the WeChat simulator (in this process), `gongdan serve --workers 2` and 2 `gongdan worker` processes
   (each serving the inbound and outbox lanes), waits until the workers poll, then sends the burst at its rate
   (bench.load, paced, each request's send and answer time recorded).
4. Polls the database and the simulator until every callback is processed, every customer has a ticket and every
   customer's acknowledgement reached the simulator (or the timeout), then checks exactly-once: one ticket per
   customer, every message stored once and on its customer's ticket, one acknowledgement per customer.
5. Prints one JSON document: time from the first callback to the last ticket and to the last acknowledgement sent,
   p50/p99/max from a customer's first callback to their acknowledgement (fairness: none waits for another's
   backlog), acknowledgement throughput and p99 of the callbacks, worker CPU per message, peak RSS of the largest
   web and worker process, log failures and deadlocks. Also written to bench/results/burst.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api, callbacks, procs
from bench.callbacks import APPID, Account, Stack, callback_line

#: the issue's burst at scale 1
CALLBACKS = 20_000
CUSTOMERS = 2_000
SECONDS = 60.0
#: the aim at scale 1: every acknowledgement sent within this long of the first callback
AIM_LAST_ACK_S = 180.0
FIRST_MSG_ID = 31_000_000_000_000_000
FOLLOW_UP = "补充第{k}条：订单还没有退款，麻烦尽快处理"


@dataclass
class Config:
    scale: float = 1.0
    database_url: str = callbacks.DEFAULT_DB
    redis_url: str = callbacks.DEFAULT_REDIS
    web: int = 2
    workers: int = 2
    concurrency: int = 64
    #: give up this long after the first callback (the report then says so)
    timeout_s: float = 300.0
    poll_s: float = 0.5
    fill_schema: bool = False
    #: seconds of py-spy on the first worker from the first callback (0: none)
    profile_s: float = 0.0
    output: Path | None = procs.RESULTS / "burst.json"

    @property
    def callbacks(self) -> int:
        return max(1, round(CALLBACKS * self.scale))

    @property
    def customers(self) -> int:
        return max(1, min(self.callbacks, round(CUSTOMERS * self.scale)))

    @property
    def seconds(self) -> float:
        return max(1.0, SECONDS * self.scale)


def openid(c: int) -> str:
    """Customer c's openid (28 characters)."""
    return f"oBrst{c:023d}"


def write_burst(path: Path, cfg: Config) -> list[str]:
    """The burst's replay file; returns the openid of each line."""
    account = Account()
    now = int(time.time())
    owners: list[str] = []
    with path.open("w", encoding="utf-8") as f:
        for line in range(cfg.callbacks):
            c, k = line % cfg.customers, line // cfg.customers
            msg_id = FIRST_MSG_ID + line
            text = None if k == 0 else FOLLOW_UP.format(k=k)
            f.write(callback_line(account, msg_id, now, str(1_000_000_000 + line), openid=openid(c), text=text))
            f.write("\n")
            owners.append(openid(c))
    return owners


def _percentile(values: list[float], pct: float) -> float:
    return round(api._percentile(sorted(values), pct), 2) if values else 0.0


#: the burst's customers' tickets (the demo org has tickets of its own)
BURST_TICKETS = ("FROM ticket t JOIN customer_identity i ON i.customer_id = t.customer_id AND i.kind = 'mp_openid' "
                 "AND i.value LIKE 'oBrst%'")


async def _progress(conn: Any) -> dict[str, float]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT status, COUNT(*) FROM inbound_event GROUP BY status")
        out: dict[str, float] = {f"events_{s}": int(n) for s, n in await cur.fetchall()}
        await cur.execute(f"SELECT COUNT(*), UNIX_TIMESTAMP(MAX(t.created_at)) {BURST_TICKETS}")
        row = await cur.fetchone()
        out["tickets"] = int(row[0]) if row else 0
        out["last_ticket_at"] = float(row[1] or 0) if row else 0
    return out


async def _exactly_once(conn: Any, cfg: Config) -> dict[str, Any]:
    """Every callback one stored message on its customer's one ticket."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT COUNT(*), COUNT(DISTINCT provider_msg_id) FROM message WHERE direction='in'")
        messages, distinct = await cur.fetchone()
        await cur.execute("SELECT COUNT(*) FROM message WHERE direction='in' AND ticket_id IS NULL")
        unticketed, = await cur.fetchone()
        await cur.execute("SELECT COUNT(*) FROM message m JOIN ticket t ON t.id = m.ticket_id "
                          "WHERE m.direction='in' AND t.customer_id <> m.customer_id")
        wrong_customer, = await cur.fetchone()
        await cur.execute(f"SELECT t.customer_id, COUNT(*) {BURST_TICKETS} GROUP BY t.customer_id HAVING COUNT(*) > 1")
        doubled = len(await cur.fetchall())
    ok = (messages == distinct == cfg.callbacks and unticketed == 0 and wrong_customer == 0 and doubled == 0)
    return {"messages_stored": int(messages), "distinct_provider_ids": int(distinct),
            "messages_without_ticket": int(unticketed), "messages_on_another_customers_ticket": int(wrong_customer),
            "customers_with_two_tickets": doubled, "pass": ok}


async def _outbox_rows(conn: Any) -> dict[str, int]:
    """What the workers sent besides the tickets: an acknowledgement per customer, staff cards (one a minute per
    ticket and person, `app.notifications.staff.customer_message`)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT kind, COUNT(*) FROM outbox_message GROUP BY kind ORDER BY kind")
        return {str(kind): int(n) for kind, n in await cur.fetchall()}


def run(cfg: Config) -> dict[str, Any]:
    """Prepare, send the burst, wait for tickets and acknowledgements, report."""
    started = time.perf_counter()
    cb_cfg = callbacks.Config(database_url=cfg.database_url, redis_url=cfg.redis_url, workers=cfg.web,
                              fill_schema=cfg.fill_schema, log_dir=procs.RESULTS)
    setup = callbacks.prepare(cb_cfg)
    with tempfile.TemporaryDirectory(prefix="gongdan-burst-") as tmp:
        path = Path(tmp) / "burst.jsonl"
        owners = write_burst(path, cfg)
        customers = sorted(set(owners))
        with Stack(cb_cfg, openids=customers, web=cfg.web, workers=cfg.workers, name="burst") as stack:
            result = asyncio.run(_drive(cfg, stack, path, owners))
    result["setup"] = setup
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    doc = {"benchmark": "gongdan burst", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": api._machine(),
           "config": {"scale": cfg.scale, "callbacks": cfg.callbacks, "customers": cfg.customers,
                      "seconds": cfg.seconds, "rate_per_s": round(cfg.callbacks / cfg.seconds, 1),
                      "web_processes": cfg.web, "worker_processes": cfg.workers, "concurrency": cfg.concurrency},
           **result}
    if cfg.output is not None:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc


async def _drive(cfg: Config, stack: Stack, path: Path, owners: list[str]) -> dict[str, Any]:
    from bench import seed
    from bench.load import Spec

    rate = cfg.callbacks / cfg.seconds
    spec = Spec(host="127.0.0.1", port=stack.port, kind="replay", replay_file=str(path),
                concurrency=cfg.concurrency, start_at=time.time() + 1.0 + cfg.concurrency * 0.006, warmup_s=0.0,
                duration_s=cfg.seconds * 3 + 30, rate=rate, record_times=True)
    meter = callbacks.Meter({"web": stack.web_pids(), "workers": stack.worker_pids(), "db": callbacks._db_pids(),
                             "redis": callbacks._redis_pids()})
    client = callbacks.Client(spec)
    spy = _start_profile(cfg, stack)
    conn = await seed._connect(cfg.database_url)
    await conn.autocommit(True)
    async with conn.cursor() as cur:
        await cur.execute("SET time_zone = '+00:00'")  # UNIX_TIMESTAMP of the UTC columns
    first_sent = spec.start_at
    meter.begin()
    cpu: dict[str, Any] = {}
    timeline: list[list[float]] = []
    acked: dict[str, float] = {}
    progress: dict[str, Any] = {}
    done_at: float | None = None
    try:
        while True:
            await asyncio.sleep(cfg.poll_s)
            now = time.time()
            progress = await _progress(conn)
            for m in stack.state.mp.sent_messages(APPID):
                acked.setdefault(m.touser, m.time)
            finished = sum(v for k, v in progress.items() if k in ("events_done", "events_ignored", "events_failed"))
            timeline.append([round(now - first_sent, 1), finished, progress["tickets"], len(acked)])
            if client.reader.is_alive() is False and finished >= cfg.callbacks and len(acked) >= cfg.customers:
                done_at = now
                break
            if now - first_sent > cfg.timeout_s:
                break
            if any(w.exited() is not None for w in stack.workers):
                raise RuntimeError("a worker exited: " + " ".join(w.log_tail(800) for w in stack.workers))
        cpu = meter.end()
        checks = await _exactly_once(conn, cfg)
        outbox_rows = await _outbox_rows(conn)
        peak = stack.peak_rss()
        logs = stack.log_failures()
    finally:
        conn.close()
    profile = _finish_profile(spy)
    sent = client.result(timeout=120)
    times = sent["times"]
    first_by_customer: dict[str, float] = {}
    for line, sent_at, _answered in sorted(times, key=lambda t: t[0]):
        first_by_customer.setdefault(owners[int(line)], sent_at)
    first = min((t[1] for t in times), default=first_sent)
    waits = [acked[c] - t for c, t in first_by_customer.items() if c in acked]
    workers_cpu_s = cpu.get("workers_pct_of_core", 0.0) / 100 * ((done_at or time.time()) - first)
    return {
        "drained": done_at is not None,
        "first_callback_to_last_ticket_s": round(progress.get("last_ticket_at", 0) - first, 1),
        "first_callback_to_last_ack_sent_s": round(max(acked.values(), default=first) - first, 1),
        "aim_last_ack_within_s": AIM_LAST_ACK_S if cfg.scale == 1 else None,
        "callback_to_ack_sent_ms": {"p50": round(_percentile(waits, 50) * 1000),
                                    "p99": round(_percentile(waits, 99) * 1000),
                                    "max": round(max(waits, default=0) * 1000, 1), "customers": len(waits)},
        "callbacks": callbacks.post_summary(times, cfg.callbacks, sent.get("error_samples", [])),
        "tickets": int(progress.get("tickets", 0)),
        "customers_acknowledged": len(acked),
        "events": {k.removeprefix("events_"): v for k, v in progress.items() if k.startswith("events_")},
        "exactly_once": checks,
        "outbox_rows_by_kind": outbox_rows,
        "worker_cpu_ms_per_message": round(1000 * workers_cpu_s / max(1, cfg.callbacks), 2),
        "cpu_pct_of_core": cpu,
        "peak_rss_mb": peak,
        "logs": logs,
        "worker_profile": profile,
        "timeline_s_processed_tickets_acked": timeline[:: max(1, len(timeline) // 30)] + timeline[-1:],
    }


def _start_profile(cfg: Config, stack: Stack) -> tuple[Any, Path] | None:
    """py-spy on the first worker for `profile_s` seconds from the first callback (needs py-spy)."""
    import shutil
    import subprocess

    if not cfg.profile_s or not stack.workers or stack.workers[0].proc is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = procs.RESULTS / "profile-burst-worker.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(stack.workers[0].proc.pid), "--duration",
                             str(int(cfg.profile_s)), "--rate", "200", "--format", "raw", "--output", str(out),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, out


def _finish_profile(spy: tuple[Any, Path] | None) -> dict[str, Any] | None:
    from bench.profile import summarize

    if spy is None:
        return None
    proc, out = spy
    try:
        proc.wait(timeout=120)
    except Exception:
        proc.kill()
        return {"error": "py-spy did not finish"}
    if not out.exists():
        return {"error": "py-spy wrote nothing"}
    return {"collapsed_stacks": str(out), **summarize(out, top=40)}


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--scale", type=float, default=1.0,
                   help="callbacks, customers and seconds times this (0.05: 1,000 callbacks, 100 customers, 3 s)")
    p.add_argument("--database-url", default=os.environ.get("BENCH_CB_DATABASE_URL", callbacks.DEFAULT_DB))
    p.add_argument("--redis-url", default=os.environ.get("BENCH_CB_REDIS_URL", callbacks.DEFAULT_REDIS))
    p.add_argument("--web", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--workers", type=int, default=2, help="`gongdan worker` processes")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds after the first callback to give up")
    p.add_argument("--fill-schema", action="store_true",
                   help="after `gongdan migrate`, create tables the models have and the migrations lack yet")
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="py-spy the first worker this long from the first callback (needs py-spy)")
    p.add_argument("--output", default=str(procs.RESULTS / "burst.json"), help="'' to write no file")
    a = p.parse_args(argv)
    if not 0 < a.scale <= 1:
        p.error("--scale takes a number in (0, 1]")
    return Config(scale=a.scale, database_url=a.database_url, redis_url=a.redis_url, web=a.web, workers=a.workers,
                  timeout_s=a.timeout, fill_schema=a.fill_schema, profile_s=a.profile,
                  output=Path(a.output) if a.output else None)


def main(argv: list[str] | None = None) -> None:
    doc = run(parse_args(argv))
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    print(f"burst x{doc['config']['scale']}: last ticket {doc['first_callback_to_last_ticket_s']} s, last ack "
          f"{doc['first_callback_to_last_ack_sent_s']} s, callback->ack p50 {doc['callback_to_ack_sent_ms']['p50']} "
          f"ms p99 {doc['callback_to_ack_sent_ms']['p99']} ms, worker CPU {doc['worker_cpu_ms_per_message']} "
          f"ms/message, peak RSS web {doc['peak_rss_mb']['web_mb']} MiB worker {doc['peak_rss_mb']['worker_mb']} "
          "MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
