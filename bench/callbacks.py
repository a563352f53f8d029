"""Callback benchmark: encrypted WeChat callbacks acknowledged by `gongdan serve`, beside two baselines, and end to end.

    python -m bench.callbacks                       # full run (about 5 minutes), prints JSON
    python -m bench.callbacks --concurrency 64 --targets minimal,gongdan --e2e-messages 0
    python -m bench.callbacks --profile 8           # also py-spy `gongdan serve` at the highest concurrency
    python -m bench.callbacks --help

What it does, in one run:

1. `gongdan_bench_cb` is dropped and created, `gongdan migrate` builds the schema, `gongdan seed-demo` loads the demo
   org (skill groups, routing rules), and Redis db 13 is flushed.
2. For each concurrency (1, 16, 64) and each target, a fresh server is started with the same uvicorn worker count
   and MySQL pool size, loaded, and stopped again (so no idle pool holds connections during the next phase):
   - `bare`: bench.minimal_callback:bare_app, a Starlette route that reads the body and answers `success`;
   - `minimal`: bench.minimal_callback:app, verify msg_signature + timestamp, decrypt with wechatpy, one INSERT;
   - `gongdan`: `gongdan serve` with REDIS_URL set (the callback path stores an InboundEvent and enqueues
     `process_inbound_event` to arq, as in production) and the Official Account in safe mode from WECHAT_*; no
     `gongdan worker` runs, so the ack path is measured alone.
   Right before each phase, fresh distinct callbacks (distinct MsgIds and openids, a text that becomes a ticket,
   timestamps inside the 300 s window) are generated with simulator.crypto into a file that bench.load replays,
   each request once. Reported: req/s, p50/p90/p99, errors, CPU per request of server, MariaDB and Redis, and how
   long each group's threads waited for a core (`runqueue_wait_pct_of_core`: short of CPU, not of a lock).
3. Ratios gongdan/minimal (and each to bare) per concurrency, and the aim: at concurrency 64 gongdan keeps at least
   80% of the minimal handler's throughput with p99 under 50 ms.
4. End to end: the stored callbacks of the ack phases are discarded (rows deleted, Redis flushed), a fresh batch
   (3,000) is posted to `gongdan serve` at concurrency 16, then ONE `gongdan worker` is started against the
   WeChat simulator (in this process, the batch's customers known to it) and the database is polled until every
   event is processed: events/s and tickets/s from the first processed event to the drain, and the time to drain
   from the worker's start.
5. One JSON document, printed and written to bench/results/callbacks.json. The busy phase (`while_processing`)
   also says how the kernel shares the cores (`scheduling`): with autogroup scheduling each `gongdan worker`,
   started in a session of its own, is a group with the same share as the whole web server, whatever its nice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiomysql

from bench import api, minimal_callback, procs
from bench.load import Spec
from simulator import SimulatorState, crypto

DEFAULT_DB = "mysql://root:@127.0.0.1:3306/gongdan_bench_cb"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
TARGETS = ("bare", "minimal", "gongdan")
CONCURRENCIES = (1, 16, 64)
CALLBACK_PATH = "/callbacks/wechat"
#: the Official Account the benchmark plays (safe mode); fixed, so a report can be reproduced
APPID = "wxbe0c000000000001"
APP_SECRET = "bench-mp-secret-0123456789abcdef"
TOKEN = "gongdanbenchcb"
AES_KEY = "BenchCallbackAesKey0123456789abcdefghijklmn"  # 43 characters
ORIGINAL_ID = "gh_be0c00000001"
#: what each customer writes: an order number and 退款, so the conversion rules open a ticket for it
TEXT = "订单号 {order} 退款还没到账"
FIRST_MSG_ID = 24_000_000_000_000_000
#: the WeCom self-built app that sends assignees their ticket cards (end-to-end phase, simulator)
WECOM_AGENT_ID = 1000002
WECOM_AGENT_SECRET = "bench-wecom-agent-secret"
#: the aim of the issue: at AIM_CONCURRENCY, gongdan >= AIM_RATIO x minimal req/s and p99 < AIM_P99_MS
AIM_RATIO = 0.8
AIM_P99_MS = 50.0
AIM_CONCURRENCY = 64
#: req/s at most expected per target at concurrency 1 and above it; the replay file holds this many per second of
#: warm-up and window (times GENERATE_HEADROOM). If a server is faster the file runs out, the window is cut at the
#: last answer (reported as `exhausted`) and the next concurrency gets a larger file.
RATE_CAPS: dict[str, tuple[int, int]] = {"bare": (8000, 28000), "minimal": (2500, 5500), "gongdan": (2500, 5500)}
GENERATE_HEADROOM = 1.25
#: other work on the machine above this share of one core marks a phase as contended
CONTENDED_PCT = 25.0


@dataclass
class Config:
    database_url: str = DEFAULT_DB
    redis_url: str = DEFAULT_REDIS
    concurrencies: tuple[int, ...] = CONCURRENCIES
    targets: tuple[str, ...] = TARGETS
    duration_s: float = 8.0
    warmup_s: float = 1.5
    #: uvicorn worker processes, the same for every target
    workers: int = 2
    db_pool_size: int = 64
    #: load client processes sharing the concurrency (each gets its own part of the replay file)
    clients: int = 1
    #: seconds a client process gets to start before the load begins (plus reading its file, opening connections)
    client_start_s: float = 0.8
    #: callbacks of the end-to-end batch (0: skip the phase), posted at e2e_concurrency before the worker starts
    e2e_messages: int = 3000
    e2e_concurrency: int = 16
    #: give up waiting for the drain after this long (the report then says `drained: false`)
    e2e_timeout_s: float = 150.0
    #: after the events are drained, keep the worker running this long (at most) for the outbox deliveries
    e2e_outbox_wait_s: float = 20.0
    e2e_poll_s: float = 0.25
    #: workers processing during the busy phase (0: skip it): acknowledgements at AIM_CONCURRENCY while
    #: `gongdan worker` processes turn the same callbacks into tickets and acknowledgements
    busy_workers: int = 2
    #: after migrating, create the tables the models have and the committed migrations do not yet (a tree whose
    #: migrations are still to be written)
    fill_schema: bool = False
    #: seconds of py-spy on `gongdan serve` at the highest concurrency (0: no profile)
    profile_s: float = 0.0
    rate_caps: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(RATE_CAPS))
    output: Path | None = procs.RESULTS / "callbacks.json"
    #: server and worker logs, profiles
    log_dir: Path = procs.RESULTS
    #: the replay files (up to a few hundred MB while a phase runs); None: a temporary directory per run
    replay_dir: Path | None = None


# ---- callbacks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """The Official Account whose callbacks are generated (and configured into every server)."""

    appid: str = APPID
    token: str = TOKEN
    aes_key: str = AES_KEY
    original_id: str = ORIGINAL_ID


def openid_for(msg_id: int) -> str:
    """A distinct 28-character openid per message (every message comes from a new customer)."""
    return f"oBnch{msg_id % 10**23:023d}"


def callback_line(account: Account, msg_id: int, timestamp: int, nonce: str, *, openid: str | None = None,
                  text: str | None = None) -> str:
    """One safe-mode text callback as a bench.load replay line (by default from a new customer, opening a ticket)."""
    openid = openid or openid_for(msg_id)
    order = f"2025{msg_id % 10**12:012d}"
    xml = (f"<xml><ToUserName><![CDATA[{account.original_id}]]></ToUserName>"
           f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{timestamp}</CreateTime>"
           f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text or TEXT.format(order=order)}]]></Content>"
           f"<MsgId>{msg_id}</MsgId></xml>")
    encrypt = crypto.encrypt(account.aes_key, account.appid, xml.encode("utf-8"))
    ts = str(timestamp)
    query = urlencode({
        "signature": crypto.sign(account.token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": openid,
        "encrypt_type": "aes", "msg_signature": crypto.sign(account.token, ts, nonce, encrypt),
    })
    body = (f"<xml><ToUserName><![CDATA[{account.original_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    return json.dumps({"method": "POST", "path": f"{CALLBACK_PATH}?{query}", "body": body,
                       "content_type": "text/xml"})


def _write_part(path: str, account: Account, first: int, count: int, timestamp: int) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for msg_id in range(first, first + count):
            f.write(callback_line(account, msg_id, timestamp, str(1_000_000_000 + msg_id % 9_000_000_000)))
            f.write("\n")
    return path


class Callbacks:
    """Hands out distinct MsgIds and writes replay files of fresh callbacks (on every core: nothing else runs)."""

    def __init__(self, account: Account, first_msg_id: int = FIRST_MSG_ID) -> None:
        self.account = account
        self.next_msg_id = first_msg_id

    def generate(self, path: Path, count: int, *, parts: int = 1) -> list[Path]:
        """`parts` replay files (one per client process) holding `count` new callbacks together."""
        first, self.next_msg_id = self.next_msg_id, self.next_msg_id + count
        timestamp = int(time.time())
        jobs = max(1, min(os.cpu_count() or 1, 8, count // 2000 or 1))
        per_job = [count // jobs + (1 if i < count % jobs else 0) for i in range(jobs)]
        chunks: list[tuple[str, int, int]] = []
        start = first
        for i, n in enumerate(per_job):
            chunks.append((f"{path}.chunk{i}", start, n))
            start += n
        if jobs == 1:
            _write_part(chunks[0][0], self.account, chunks[0][1], chunks[0][2], timestamp)
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                list(pool.map(_write_part, [c[0] for c in chunks], [self.account] * jobs, [c[1] for c in chunks],
                              [c[2] for c in chunks], [timestamp] * jobs))
        # deal the lines out to the client processes in turn, keeping file order within each
        outputs = [path if parts == 1 else path.with_name(f"{path.name}.{i}") for i in range(parts)]
        handles = [p.open("w", encoding="utf-8") for p in outputs]
        try:
            n = 0
            for chunk, _, _ in chunks:
                with open(chunk, encoding="utf-8") as f:
                    for line in f:
                        handles[n % parts].write(line)
                        n += 1
                os.unlink(chunk)
        finally:
            for h in handles:
                h.close()
        return outputs


# ---- servers --------------------------------------------------------------------------------------------------


def server_env(cfg: Config, **extra: str) -> dict[str, str]:
    """The environment every target gets: database, pool, Redis, the Official Account (safe mode)."""
    return procs.gongdan_env(
        cfg.database_url, db_pool_size=cfg.db_pool_size, REDIS_URL=cfg.redis_url, WECHAT_APP_ID=APPID,
        WECHAT_APP_SECRET=APP_SECRET, WECHAT_TOKEN=TOKEN, WECHAT_AES_KEY=AES_KEY, **extra,
    )


def target_argv(target: str, port: int, workers: int) -> list[str]:
    if target == "gongdan":
        return api.serve_argv(port, workers)
    module = "bench.minimal_callback:bare_app" if target == "bare" else "bench.minimal_callback:app"
    return procs.uvicorn_argv(module, port=port, workers=workers)


def _db_pids() -> list[int]:
    return procs.pids_named("mariadbd") or procs.pids_named("mysqld")


def _redis_pids() -> list[int]:
    return procs.pids_named("redis-server")


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def fill_schema(database_url: str) -> None:
    """CREATE TABLE IF NOT EXISTS for every model (tables the migrations lack yet; existing ones untouched)."""
    from tortoise import Tortoise

    from app.db import tortoise_config
    from app.settings import load_settings

    settings = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": database_url}, env_file=None)
    await Tortoise.init(config=tortoise_config(settings))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MariaDB's "table already exists" notes for every migrated table
            await Tortoise.generate_schemas(safe=True)
    finally:
        await Tortoise.close_connections()


def prepare(cfg: Config) -> dict[str, Any]:
    """Fresh database (migrated, demo org), Redis db flushed; returns what was done and how long it took."""
    from bench import seed

    started = time.perf_counter()
    asyncio.run(seed.reset_database(cfg.database_url))
    env = server_env(cfg, DB_POOL_SIZE="8")
    procs.gongdan(["migrate"], env)
    if cfg.fill_schema:
        asyncio.run(fill_schema(cfg.database_url))
    procs.gongdan(["seed-demo"], env)
    asyncio.run(_sql(cfg.database_url, minimal_callback.CREATE_TABLE))
    flush_redis(cfg.redis_url)
    return {"database": cfg.database_url.rsplit("/", 1)[-1], "redis": cfg.redis_url.rsplit("/", 1)[-1],
            "prepare_s": round(time.perf_counter() - started, 1)}


# ---- measuring ------------------------------------------------------------------------------------------------


def _kernel_ticks() -> dict[str, int]:
    """/proc/stat's machine-wide irq, softirq and steal ticks (loopback TCP is processed in softirq)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return {"irq": int(fields[5]), "softirq": int(fields[6]), "steal": int(fields[7])}


class Meter(procs.CpuMeter):
    """procs.CpuMeter plus the machine's softirq and steal time, which belong to no process.

    Every round trip over loopback (client, MariaDB, Redis) costs softirq time that /proc/<pid>/stat does not
    show, so a path with more round trips leaves more of the machine unaccounted: that is our own traffic, not
    other people's work. `others_excl_softirq_steal_pct_of_core` is what is left of other work.
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        super().__init__(groups)
        self.ticks0: dict[str, int] = {}
        self.wait0: dict[str, float] = {}
        #: per group, the share of a core its threads spent runnable but waiting for one (set by end())
        self.waits: dict[str, float] = {}

    def begin(self) -> None:
        self.ticks0 = _kernel_ticks()
        self.wait0 = {name: procs.runqueue_wait_seconds(pids) for name, pids in self.groups.items()}
        super().begin()

    def end(self) -> dict[str, Any]:
        wall = max(1e-9, time.monotonic() - self.t0)
        out = super().end()
        now = _kernel_ticks()
        for name in ("softirq", "steal"):
            out[f"machine_{name}_pct_of_core"] = round(100 * (now[name] - self.ticks0[name]) / procs._TICK / wall, 1)
        self.waits = {name: round(100 * (procs.runqueue_wait_seconds(pids) - self.wait0.get(name, 0.0)) / wall, 1)
                      for name, pids in self.groups.items()}
        return out


class Client:
    """One `python -m bench.load` process; its answer is read on a thread so that a full pipe never blocks it."""

    def __init__(self, spec: Spec) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.load"], cwd=procs.ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out = self.err = ""
        self.reader = threading.Thread(target=self._read, args=(json.dumps(asdict(spec)),), daemon=True)
        self.reader.start()

    def _read(self, spec: str) -> None:
        self.out, self.err = self.proc.communicate(spec)

    def result(self, timeout: float) -> dict[str, Any]:
        self.reader.join(timeout)
        if self.reader.is_alive():
            self.proc.kill()
            self.reader.join(10)
            raise RuntimeError("load client did not finish")
        if self.proc.returncode != 0:
            raise RuntimeError(f"load client failed: {self.err[-2000:]}")
        parsed: dict[str, Any] = json.loads(self.out)
        return parsed


def replay(cfg: Config, *, port: int, files: list[Path], concurrency: int, meter: Meter | None,
           warmup_s: float, duration_s: float, record_times: bool = False) -> dict[str, Any]:
    """Replay `files` (one per client process) against a server and summarise as bench.api does; with
    `record_times`, also every request's [file line, sent at, answered at (0: failed)] (`times`), window or not."""
    per_client = [concurrency // len(files) + (1 if i < concurrency % len(files) else 0) for i in range(len(files))]
    lines = sum(1 for f in files for _ in f.open("rb"))
    # the clients read their file and open their connections before the shared start
    start_at = time.time() + cfg.client_start_s + lines * 12e-6 + concurrency * 0.006 + 0.2 * (len(files) - 1)
    specs = [Spec(host="127.0.0.1", port=port, kind="replay", replay_file=str(f), concurrency=c, start_at=start_at,
                  warmup_s=warmup_s, duration_s=duration_s, seed=i, record_times=record_times)
             for i, (f, c) in enumerate(zip(files, per_client, strict=True))]
    clients = [Client(spec) for spec in specs]
    window_end = start_at + warmup_s + duration_s
    time.sleep(max(0.0, start_at + warmup_s - time.time()))
    if meter is not None:
        meter.begin()
    for client in clients:  # they end at the end of the window, or earlier when a file runs out
        client.reader.join(max(0.0, window_end - time.time()))
    cpu = meter.end() if meter is not None else {}
    parts = [client.result(timeout=120) for client in clients]
    latencies = sorted(v for p in parts for v in p["latencies_ms"])
    window = max((p["window_s"] for p in parts), default=0.0) or duration_s
    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    done = len(latencies)
    rate = done / window if window else 0.0
    if meter is not None:
        cpu["client_pct_of_core"] = round(100 * sum(p["cpu_s"] for p in parts) / window, 1)
        ours = sum(v for k, v in cpu.items() if not k.startswith("machine_"))
        cpu["others_pct_of_core"] = round(max(0.0, cpu["machine_busy_pct_of_core"] - ours), 1)
        kernel = cpu.get("machine_softirq_pct_of_core", 0.0) + cpu.get("machine_steal_pct_of_core", 0.0)
        cpu["others_excl_softirq_steal_pct_of_core"] = round(max(0.0, cpu["others_pct_of_core"] - kernel), 1)
        if rate:
            for name in ("server", "db", "redis", "client", "machine_softirq"):
                if f"{name}_pct_of_core" in cpu:
                    cpu[f"{name}_cpu_ms_per_request"] = round(cpu[f"{name}_pct_of_core"] * 10 / rate, 3)
            # what one acknowledged callback costs the machine, whatever else runs on it
            cpu["total_cpu_ms_per_request"] = round(sum(
                cpu.get(f"{name}_cpu_ms_per_request", 0.0)
                for name in ("server", "db", "redis", "client", "machine_softirq")), 3)
    out: dict[str, Any] = {
        "requests": done,
        "req_per_s": round(rate, 1),
        "p50_ms": round(api._percentile(latencies, 50), 2),
        "p90_ms": round(api._percentile(latencies, 90), 2),
        "p99_ms": round(api._percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else 0.0,
        "mean_ms": round(sum(latencies) / done, 2) if done else 0.0,
        "errors": sum(p["errors"] for p in parts),
        "statuses": statuses,
        "error_samples": [s for p in parts for s in p["error_samples"]][:5],
        "window_s": round(window, 2),
        "sent": sum(p["sent"] for p in parts),
        "generated": lines,
        "exhausted": any(p["exhausted"] for p in parts),
        "cpu": cpu,
        # runnable but not running: a group short of CPU (not waiting on a lock or a round trip) shows it here
        "runqueue_wait_pct_of_core": meter.waits if meter is not None else {},
    }
    if record_times:
        out["times"] = [t for p in parts for t in p["times"]]
    return out


def _replay_dir(cfg: Config) -> Path:
    assert cfg.replay_dir is not None, "run() sets it"
    return cfg.replay_dir


def _to_generate(cfg: Config, target: str, concurrency: int, measured: dict[str, float]) -> int:
    low, high = cfg.rate_caps.get(target, RATE_CAPS["gongdan"])
    cap = max(low if concurrency == 1 else high, 1.6 * measured.get(target, 0.0))
    return max(200, math.ceil(cap * (cfg.warmup_s + cfg.duration_s) * GENERATE_HEADROOM))


def measure_acks(cfg: Config, callbacks: Callbacks) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every (concurrency, target) phase, each against a freshly started server; returns (results, server notes)."""
    results: dict[str, dict[str, Any]] = {}
    notes: dict[str, Any] = {"gongdan_log_crashes": 0, "gongdan_log_rejected": 0}
    measured: dict[str, float] = {}
    db_pids, redis_pids = _db_pids(), _redis_pids()
    for concurrency in cfg.concurrencies:
        row: dict[str, Any] = {}
        for target in cfg.targets:
            count = _to_generate(cfg, target, concurrency, measured)
            t0 = time.perf_counter()
            files = callbacks.generate(_replay_dir(cfg) / f"callbacks-{target}-c{concurrency}.jsonl", count,
                                       parts=cfg.clients)
            generate_s = time.perf_counter() - t0
            port = procs.free_port()
            server = procs.Server(f"cb-{target}", target_argv(target, port, cfg.workers), env=server_env(cfg),
                                  port=port, log_dir=cfg.log_dir, listeners=cfg.workers)
            with server:
                meter = Meter({"server": server.pids(), "db": db_pids, "redis": redis_pids})
                phase = replay(cfg, port=port, files=files, concurrency=concurrency, meter=meter,
                               warmup_s=cfg.warmup_s, duration_s=cfg.duration_s)
                if target == "gongdan" and cfg.profile_s and concurrency == max(cfg.concurrencies):
                    notes["profile"] = profile_gongdan(cfg, callbacks, server, port, concurrency)
            if target == "gongdan":
                notes["gongdan_log_crashes"] += server.log_lines("request.crashed")
                notes["gongdan_log_rejected"] += server.log_lines("callback.rejected")
            phase["generate_s"] = round(generate_s, 1)
            for f in files:
                f.unlink(missing_ok=True)
            measured[target] = max(measured.get(target, 0.0), phase["req_per_s"])
            row[target] = phase
        results[f"c{concurrency}"] = row
    return results, notes


def profile_gongdan(cfg: Config, callbacks: Callbacks, server: procs.Server, port: int,
                    concurrency: int) -> dict[str, Any]:
    """py-spy on every process of `gongdan serve` while it is loaded again at `concurrency`."""
    from bench.profile import summarize

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    count = math.ceil(cfg.rate_caps["gongdan"][1] * (1.0 + cfg.profile_s + 1.0) * GENERATE_HEADROOM)
    files = callbacks.generate(_replay_dir(cfg) / "callbacks-profile.jsonl", count, parts=cfg.clients)
    out = cfg.log_dir / "profile-callbacks.txt"
    result: dict[str, Any] = {}
    loader = threading.Thread(target=lambda: result.update(replay(
        cfg, port=port, files=files, concurrency=concurrency, meter=None, warmup_s=1.0,
        duration_s=cfg.profile_s + 1.0)))
    loader.start()
    time.sleep(2.5)
    assert server.proc is not None
    done = subprocess.run([spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--duration",
                           str(max(1, int(cfg.profile_s))), "--rate", "200", "--format", "raw", "--output", str(out),
                           "--nonblocking"], capture_output=True, text=True)
    loader.join()
    for f in files:
        f.unlink(missing_ok=True)
    if done.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {done.stderr.strip()[-500:]}"}
    summary = summarize(out, top=30)
    return {"while_sampled": {k: result.get(k) for k in ("req_per_s", "p50_ms", "p99_ms", "errors")},
            "collapsed_stacks": str(out), **summary}


# ---- end to end -----------------------------------------------------------------------------------------------


async def _db_counts(conn: aiomysql.Connection, first_event_id: int) -> dict[str, int]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT status, COUNT(*) FROM inbound_event WHERE id >= %s GROUP BY status",
                          (first_event_id,))
        counts = {str(status): int(n) for status, n in await cur.fetchall()}
        await cur.execute("SELECT COUNT(*) FROM ticket")
        row = await cur.fetchone()
        counts["tickets"] = int(row[0]) if row else 0
        await cur.execute("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")
        for status, n in await cur.fetchall():
            counts[f"outbox_{status}"] = int(n)
    return counts


async def _sql(database_url: str, *statements: str) -> list[Any]:
    from bench import seed

    conn = await seed._connect(database_url)
    out = []
    try:
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
                row = await cur.fetchone() if cur.description else None
                out.append(row[0] if row else None)
        await conn.commit()
    finally:
        conn.close()
    return out


def measure_e2e(cfg: Config, callbacks: Callbacks) -> dict[str, Any]:
    """Post a fresh batch to `gongdan serve` (no worker), then drain it with ONE `gongdan worker`."""
    from simulator import SimulatorServer
    from simulator.wecom.orggen import add_default_apps, load_demo_org

    # the ack phases' stored callbacks are not this phase's: drop them and their queued jobs
    discarded, = asyncio.run(_sql(cfg.database_url, "SELECT COUNT(*) FROM inbound_event"))
    asyncio.run(_sql(cfg.database_url, "DELETE FROM inbound_event", "DELETE FROM bench_minimal_inbox"))
    flush_redis(cfg.redis_url)
    sim_state = SimulatorState(template_job_finish=False)
    sim_state.add_mp_account(APPID, APP_SECRET, TOKEN, AES_KEY, original_id=ORIGINAL_ID, mode="safe")
    # the WeCom side too: each new ticket also sends its assignee a card through the self-built app
    add_default_apps(sim_state.wecom, agent_id=WECOM_AGENT_ID, app_secret=WECOM_AGENT_SECRET)
    load_demo_org(sim_state.wecom)
    first_msg_id = callbacks.next_msg_id
    files = callbacks.generate(_replay_dir(cfg) / "callbacks-e2e.jsonl", cfg.e2e_messages, parts=1)
    for msg_id in range(first_msg_id, first_msg_id + cfg.e2e_messages):
        # the customer wrote to the account just now: its 48-hour customer-service window is open
        sim_state.mp.record_interaction(APPID, openid_for(msg_id), "message")
    first_event_id, tickets_before = asyncio.run(_sql(
        cfg.database_url, "SELECT COALESCE(MAX(id), 0) + 1 FROM inbound_event", "SELECT COUNT(*) FROM ticket"))
    out: dict[str, Any] = {"messages": cfg.e2e_messages, "ack_phase_events_discarded": int(discarded or 0)}
    with SimulatorServer(sim_state) as sim:
        env = server_env(cfg, WECHAT_API_BASE=sim.api_base_url, WECOM_API_BASE=sim.wecom_api_base_url,
                         WECOM_CORP_ID=sim_state.wecom.corp_id, WECOM_AGENT_ID=str(WECOM_AGENT_ID),
                         WECOM_AGENT_SECRET=WECOM_AGENT_SECRET, WECOM_RATE_PER_MINUTE="1000000",
                         WECOM_RATE_PER_HOUR="10000000")
        port = procs.free_port()
        with procs.Server("cb-gongdan-e2e", api.serve_argv(port, cfg.workers), env=env, port=port,
                          log_dir=cfg.log_dir, listeners=cfg.workers) as server:
            posted = replay(cfg, port=port, files=files, concurrency=cfg.e2e_concurrency, meter=None, warmup_s=0.0,
                            duration_s=max(30.0, cfg.e2e_messages / 200), record_times=True)
            out["post"] = post_summary(posted["times"], cfg.e2e_messages, posted["error_samples"])
            out["gongdan_log_crashes"] = server.log_lines("request.crashed")
        for f in files:
            f.unlink(missing_ok=True)
        out.update(drain(cfg, env, first_event_id=int(first_event_id), tickets_before=int(tickets_before),
                         expected=out["post"]["requests"]))
        out["simulator_api_calls"] = _api_call_counts(sim_state)
    return out


def post_summary(times: list[list[float]], messages: int, error_samples: list[str]) -> dict[str, Any]:
    """A batch as posted (the end-to-end phase here, the whole of bench.burst), from every request the load client
    sent (`times`: [line, sent at, answered at or 0]) rather than from a measurement window: a batch has no
    warm-up or window, and the lines the client never sent are counted too (`unsent`)."""
    acked = sorted((answered - sent) * 1000 for _, sent, answered in times if answered)
    first = min((sent for _, sent, _ in times), default=0.0)
    last = max((answered for _, _, answered in times if answered), default=first)
    return {
        "sent": len(times),
        #: file lines the client never sent (its duration ran out first)
        "unsent": messages - len(times),
        #: acknowledged with 200 `success`
        "requests": len(acked),
        "errors": len(times) - len(acked),
        "req_per_s": round(len(acked) / (last - first), 1) if last > first else 0.0,
        "p50_ms": round(api._percentile(acked, 50), 2),
        "p99_ms": round(api._percentile(acked, 99), 2),
        "error_samples": error_samples,
    }


def _api_call_counts(state: SimulatorState) -> dict[str, int]:
    """The WeChat API calls the worker made, by path and errcode."""
    counts: dict[str, int] = {}
    for call in state.api_calls_for(None):
        key = f"{call.path} errcode={call.errcode or 0}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class Worker:
    """`gongdan worker` as a child process of its own session, stopped like procs.Server."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([*procs.GONGDAN, "worker"], env=self.env, cwd=procs.ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc.pid

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session this benchmark created for it
                self.proc.wait(timeout=10)

    def log_lines(self, needle: str) -> int:
        try:
            return sum(needle in line for line in self.log_path.read_text(errors="replace").splitlines())
        except OSError:
            return 0

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def drain(cfg: Config, env: dict[str, str], *, first_event_id: int, tickets_before: int,
          expected: int) -> dict[str, Any]:
    """Start ONE `gongdan worker` and poll until the stored events are all processed (or the timeout)."""

    async def poll(worker: Worker, meter: Meter) -> dict[str, Any]:
        from bench import seed

        conn = await seed._connect(cfg.database_url)
        await conn.autocommit(True)
        #: (seconds since the worker started, events processed, tickets created, outbox messages sent)
        timeline: list[tuple[float, int, int, int]] = []
        try:
            t_start = time.monotonic()
            meter.groups["worker"] = [worker.start()]
            meter.begin()
            first_done: float | None = None
            drained: tuple[float, dict[str, int], dict[str, Any]] | None = None
            counts: dict[str, int] = {}
            while True:
                await asyncio.sleep(cfg.e2e_poll_s)
                now = round(time.monotonic() - t_start, 2)
                counts = await _db_counts(conn, first_event_id)
                finished = sum(counts.get(s, 0) for s in ("done", "ignored", "failed"))
                timeline.append((now, finished, counts["tickets"] - tickets_before, counts.get("outbox_sent", 0)))
                if finished and first_done is None:
                    first_done = now
                if drained is None and finished >= expected:
                    drained = (now, dict(counts), meter.end())
                # then the notifications the new tickets queued (customer acknowledgement, assignee card), for a while
                outbox_open = counts.get("outbox_pending", 0) + counts.get("outbox_sending", 0)
                if drained is not None and (outbox_open == 0 or now > drained[0] + cfg.e2e_outbox_wait_s):
                    break
                if now > cfg.e2e_timeout_s:
                    break
                if worker.exited() is not None:
                    raise RuntimeError(f"gongdan worker exited with {worker.exited()}: {worker.log_tail()}")
            cpu_all = meter.end()
            drained_at, at_drain, cpu = drained if drained is not None else (now, counts, cpu_all)
            processed = next((t[1] for t in timeline if t[0] == drained_at), timeline[-1][1])
            tickets = next((t[2] for t in timeline if t[0] == drained_at), timeline[-1][2])
            busy = max(1e-9, drained_at - (first_done or drained_at))
            # the steady rate: between 10% and 90% of the batch, away from start-up and the tail
            lo = next((t for t in timeline if t[1] >= 0.1 * expected), timeline[0])
            hi = next((t for t in timeline if t[1] >= 0.9 * expected), timeline[-1])
            steady = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else 0.0
            outbox_open = counts.get("outbox_pending", 0) + counts.get("outbox_sending", 0)
            return {
                "drained": drained is not None,
                "events_processed": processed,
                "tickets_created": tickets,
                "worker_startup_s": round(first_done or 0.0, 2),
                "drain_s": drained_at,
                "events_per_s": round(processed / busy, 1),
                "tickets_per_s": round(tickets / busy, 1),
                "events_per_s_steady_10_90pct": round(steady, 1),
                "events_per_s_incl_startup": round(processed / max(1e-9, drained_at), 1),
                "counts_at_drain": {k: v for k, v in at_drain.items() if k != "tickets"},
                "cpu_until_drain": cpu,
                "outbox": {
                    "drained": outbox_open == 0,
                    "drain_s": timeline[-1][0],
                    "sent": counts.get("outbox_sent", 0),
                    "counts": {k.removeprefix("outbox_"): v for k, v in counts.items() if k.startswith("outbox_")},
                    "sent_per_s_after_inbound_drain": round(
                        (timeline[-1][3] - next((t[3] for t in timeline if t[0] == drained_at), 0))
                        / max(1e-9, timeline[-1][0] - drained_at), 1) if timeline[-1][0] > drained_at else None,
                    "cpu_until_outbox_drain": cpu_all,
                },
                "timeline_s_events_tickets_sent": [list(t) for t in timeline[:: max(1, len(timeline) // 40)]]
                + [list(timeline[-1])],
            }
        finally:
            conn.close()

    worker = Worker(env, cfg.log_dir / "cb-worker.log")
    meter = Meter({"db": _db_pids(), "redis": _redis_pids(), "simulator_and_harness": [os.getpid()]})
    try:
        result = asyncio.run(poll(worker, meter))
    finally:
        worker.stop()
    result["worker_log_failures"] = worker.log_lines("inbound.failed") + worker.log_lines("job.failed")
    result["worker_log_errors"] = worker.log_lines('"level": "error"') + worker.log_lines('"level":"error"')
    return result


# ---- the whole stack: acknowledgements while the workers process ----------------------------------------------


def sim_state_for(openids: list[str]) -> SimulatorState:
    """The WeChat side of a run: the Official Account, the WeCom app for staff cards, and these followers, each
    inside their 48-hour customer-service window (they just wrote)."""
    from simulator.wecom.orggen import add_default_apps, load_demo_org

    state = SimulatorState(template_job_finish=False)
    state.add_mp_account(APPID, APP_SECRET, TOKEN, AES_KEY, original_id=ORIGINAL_ID, mode="safe")
    add_default_apps(state.wecom, agent_id=WECOM_AGENT_ID, app_secret=WECOM_AGENT_SECRET)
    load_demo_org(state.wecom)
    for openid in openids:
        state.mp.record_interaction(APPID, openid, "message")
    return state


def peak_rss_mb(pids: list[int]) -> float:
    """The largest peak resident set (VmHWM) among these processes, in MiB."""
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return round(peak / 1024, 1)


class Stack:
    """The WeChat simulator (in this process), `gongdan serve --workers web` and `workers` x `gongdan worker`,
    configured as in production (MariaDB, Redis, the Official Account in safe mode)."""

    def __init__(self, cfg: Config, *, openids: list[str], web: int, workers: int, name: str) -> None:
        from simulator import SimulatorServer

        self.cfg = cfg
        self.state = sim_state_for(openids)
        self.sim = SimulatorServer(self.state)
        self.web = web
        self.n_workers = workers
        self.name = name
        self.server: procs.Server | None = None
        self.workers: list[Worker] = []
        self.port = procs.free_port()

    def __enter__(self) -> Stack:
        sim = self.sim.__enter__()
        self.env = server_env(self.cfg, WECHAT_API_BASE=sim.api_base_url, WECOM_API_BASE=sim.wecom_api_base_url,
                              WECOM_CORP_ID=self.state.wecom.corp_id, WECOM_AGENT_ID=str(WECOM_AGENT_ID),
                              WECOM_AGENT_SECRET=WECOM_AGENT_SECRET, WECOM_RATE_PER_MINUTE="1000000",
                              WECOM_RATE_PER_HOUR="10000000")
        self.server = procs.Server(f"{self.name}-web", api.serve_argv(self.port, self.web), env=self.env,
                                   port=self.port, log_dir=self.cfg.log_dir, listeners=self.web)
        self.server.start()
        self.workers = [Worker(self.env, self.cfg.log_dir / f"{self.name}-worker{i}.log")
                        for i in range(self.n_workers)]
        for w in self.workers:
            w.start()
        self.wait_workers_ready()
        return self

    def wait_workers_ready(self, timeout: float = 90.0) -> None:
        """Until every worker polls both lanes (arq writes each lane's health-check key when it starts polling):
        start-up (imports, the text model) is not part of what the phase measures."""
        import redis

        client = redis.Redis.from_url(self.cfg.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if all(w.exited() is None for w in self.workers) and client.exists(
                        "arq:queue:health-check") and client.exists("gongdan:outbox:health-check"):
                    # the keys are shared: the first worker to poll writes them while the others may still be
                    # importing, so also until every worker has gone quiet (under a tenth of a core for 0.5 s)
                    pids = [w.proc.pid for w in self.workers if w.proc is not None]
                    before = [procs.cpu_seconds([pid]) for pid in pids]
                    time.sleep(0.5)
                    if all(procs.cpu_seconds([pid]) - b < 0.05 for pid, b in zip(pids, before, strict=True)):
                        return
                    continue
                for w in self.workers:
                    if w.exited() is not None:
                        raise RuntimeError(f"gongdan worker exited with {w.exited()}: {w.log_tail()}")
                time.sleep(0.2)
        finally:
            client.close()
        raise RuntimeError("workers not ready in time")

    def __exit__(self, *exc: object) -> None:
        for w in self.workers:
            w.stop()
        if self.server is not None:
            self.server.stop()
        self.sim.__exit__(None, None, None)

    def web_pids(self) -> list[int]:
        return self.server.pids() if self.server is not None else []

    def worker_pids(self) -> list[int]:
        return [pid for w in self.workers if w.proc is not None for pid in procs.descendants(w.proc.pid)]

    def peak_rss(self) -> dict[str, float]:
        """Peak RSS of the largest web process and of the largest worker, so far (MiB)."""
        return {"web_mb": peak_rss_mb(self.web_pids()), "worker_mb": peak_rss_mb(self.worker_pids())}

    def log_failures(self) -> dict[str, int]:
        crashes = self.server.log_lines("request.crashed") if self.server is not None else 0
        return {"web_crashes": crashes,
                "worker_failures": sum(w.log_lines("inbound.failed") + w.log_lines("job.failed")
                                       for w in self.workers),
                "deadlocks": sum(w.log_lines("Deadlock") for w in self.workers)}


async def _discard_events(cfg: Config) -> None:
    await _sql(cfg.database_url, "DELETE FROM inbound_event", "DELETE FROM bench_minimal_inbox")


def measure_busy(cfg: Config, callbacks: Callbacks, minimal: dict[str, Any] | None) -> dict[str, Any]:
    """Acknowledgements at AIM_CONCURRENCY while `busy_workers` workers turn the same callbacks into tickets and
    send their acknowledgements; beside the minimal handler (measured here unless the ack phases did at that
    concurrency in this run)."""
    asyncio.run(_discard_events(cfg))
    flush_redis(cfg.redis_url)
    concurrency = AIM_CONCURRENCY
    count = _to_generate(cfg, "gongdan", concurrency, {})
    first = callbacks.next_msg_id
    files = callbacks.generate(_replay_dir(cfg) / "callbacks-busy.jsonl", count, parts=cfg.clients)
    openids = [openid_for(m) for m in range(first, first + count)]
    first_event_id, = asyncio.run(_sql(cfg.database_url, "SELECT COALESCE(MAX(id), 0) + 1 FROM inbound_event"))
    out: dict[str, Any] = {"concurrency": concurrency, "web_processes": cfg.workers, "workers": cfg.busy_workers}
    with Stack(cfg, openids=openids, web=cfg.workers, workers=cfg.busy_workers, name="cb-busy") as stack:
        meter = Meter({"server": stack.web_pids(), "workers": stack.worker_pids(), "db": _db_pids(),
                       "redis": _redis_pids()})
        phase = replay(cfg, port=stack.port, files=files, concurrency=concurrency, meter=meter,
                       warmup_s=cfg.warmup_s, duration_s=cfg.duration_s)
        # the workers' progress over the same seconds
        counts = asyncio.run(_counts_once(cfg, int(first_event_id)))
        out["scheduling"] = procs.scheduling({"web": stack.web_pids(), "workers": stack.worker_pids(),
                                              "db": _db_pids()})
        out["peak_rss"] = stack.peak_rss()
        out["logs"] = stack.log_failures()
    for f in files:
        f.unlink(missing_ok=True)
    out["gongdan"] = phase
    out["worker_progress_at_end"] = {"events_processed": sum(counts.get(k, 0) for k in ("done", "ignored", "failed")),
                                     "tickets": counts.get("tickets", 0),
                                     "outbox_sent": counts.get("outbox_sent", 0)}
    if minimal is None:
        port = procs.free_port()
        mfiles = callbacks.generate(_replay_dir(cfg) / "callbacks-busy-minimal.jsonl",
                                    _to_generate(cfg, "minimal", concurrency, {}), parts=cfg.clients)
        with procs.Server("cb-minimal-busy", target_argv("minimal", port, cfg.workers), env=server_env(cfg),
                          port=port, log_dir=cfg.log_dir, listeners=cfg.workers) as server:
            meter = Meter({"server": server.pids(), "db": _db_pids(), "redis": _redis_pids()})
            minimal = replay(cfg, port=port, files=mfiles, concurrency=concurrency, meter=meter,
                             warmup_s=cfg.warmup_s, duration_s=cfg.duration_s)
        for f in mfiles:
            f.unlink(missing_ok=True)
        out["minimal_measured_here"] = True
    out["minimal"] = minimal
    ratio = _ratio(phase["req_per_s"], minimal["req_per_s"]) or 0.0
    out["aim"] = {"ratio_vs_minimal": ratio, "target_ratio": AIM_RATIO, "p99_ms": phase["p99_ms"],
                  "target_p99_ms": AIM_P99_MS,
                  "pass": ratio >= AIM_RATIO and phase["p99_ms"] < AIM_P99_MS and phase["errors"] == 0}
    return out


async def _counts_once(cfg: Config, first_event_id: int) -> dict[str, int]:
    from bench import seed

    conn = await seed._connect(cfg.database_url)
    try:
        await conn.autocommit(True)
        return await _db_counts(conn, first_event_id)
    finally:
        conn.close()


# ---- reporting ------------------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, row in results.items():
        r: dict[str, Any] = {}
        if "gongdan" in row and "minimal" in row:
            r["gongdan_vs_minimal_req_per_s"] = _ratio(row["gongdan"]["req_per_s"], row["minimal"]["req_per_s"])
            r["gongdan_vs_minimal_p99_x"] = _ratio(row["gongdan"]["p99_ms"], row["minimal"]["p99_ms"])
            g_cpu, m_cpu = row["gongdan"]["cpu"], row["minimal"]["cpu"]
            r["gongdan_vs_minimal_server_cpu_per_request_x"] = _ratio(g_cpu.get("server_cpu_ms_per_request", 0.0),
                                                                      m_cpu.get("server_cpu_ms_per_request", 0.0))
            # on a machine the phase saturates, throughput is inversely proportional to the CPU a request costs
            # everything involved: the req/s ratio other people's work on the cores cannot skew
            r["gongdan_vs_minimal_req_per_s_from_cpu"] = _ratio(m_cpu.get("total_cpu_ms_per_request", 0.0),
                                                                g_cpu.get("total_cpu_ms_per_request", 0.0))
        if "bare" in row:
            for target in ("minimal", "gongdan"):
                if target in row:
                    r[f"{target}_vs_bare_req_per_s"] = _ratio(row[target]["req_per_s"], row["bare"]["req_per_s"])
        out[key] = r
    return out


def aims(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    row = results.get(f"c{AIM_CONCURRENCY}", {})
    if "gongdan" not in row or "minimal" not in row:
        return {"evaluated": False, "reason": f"needs gongdan and minimal at concurrency {AIM_CONCURRENCY}"}
    gongdan, minimal = row["gongdan"], row["minimal"]
    ratio = _ratio(gongdan["req_per_s"], minimal["req_per_s"]) or 0.0
    from_cpu = _ratio(minimal["cpu"].get("total_cpu_ms_per_request", 0.0),
                      gongdan["cpu"].get("total_cpu_ms_per_request", 0.0))
    throughput = {"target": AIM_RATIO, "measured": ratio, "gongdan_req_per_s": gongdan["req_per_s"],
                  "minimal_req_per_s": minimal["req_per_s"], "pass": ratio >= AIM_RATIO,
                  "from_cpu_per_request": from_cpu}
    p99 = {"target_ms": AIM_P99_MS, "measured_ms": gongdan["p99_ms"], "pass": gongdan["p99_ms"] < AIM_P99_MS}
    errors = {"gongdan": gongdan["errors"], "minimal": minimal["errors"],
              "pass": gongdan["errors"] == 0 and minimal["errors"] == 0}
    return {"evaluated": True, "concurrency": AIM_CONCURRENCY, "throughput_vs_minimal": throughput,
            "p99_ms": p99, "errors": errors, "pass": throughput["pass"] and p99["pass"] and errors["pass"]}


def report(cfg: Config, setup: dict[str, Any], results: dict[str, Any], notes: dict[str, Any],
           e2e: dict[str, Any] | None, elapsed: float) -> dict[str, Any]:
    busy = {f"{key}/{target}": phase["cpu"]["others_excl_softirq_steal_pct_of_core"] for key, row in results.items()
            for target, phase in row.items()
            if phase["cpu"].get("others_excl_softirq_steal_pct_of_core", 0) > CONTENDED_PCT}
    exhausted = [f"{key}/{target}" for key, row in results.items() for target, phase in row.items()
                 if phase["exhausted"]]
    aim = aims(results)
    return {
        "benchmark": "gongdan callbacks",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": api._machine(),
        "config": {
            **setup, "concurrencies": list(cfg.concurrencies), "targets": list(cfg.targets),
            "duration_s": cfg.duration_s, "warmup_s": cfg.warmup_s, "server_workers": cfg.workers,
            "db_pool_size": cfg.db_pool_size, "client_processes": cfg.clients, "client_engine": "raw",
            "mysql_driver": api._mysql_driver(), "callback": "MP safe mode (AES), text message, POST /callbacks/wechat",
            "gongdan_jobs": "arq via REDIS_URL, no worker during the ack phases",
            "targets_described": {
                "bare": "bench.minimal_callback:bare_app: reads the body, answers success",
                "minimal": "bench.minimal_callback:app: msg_signature (compare_digest) + window, wechatpy decrypt, "
                           "defusedxml, one INSERT (aiomysql pool, UNIQUE MsgId), success",
                "gongdan": "gongdan serve: app.channels.wechat_mp.endpoints.receive (InboundEvent + arq enqueue)",
            },
        },
        "results": results,
        "ratios": ratios(results),
        "aim": aim,
        "aim_pass": bool(aim.get("pass")),
        "end_to_end": e2e,
        "server_logs": {k: v for k, v in notes.items() if k != "profile"},
        "profile": notes.get("profile"),
        "replay_files_exhausted": {
            "phases": exhausted,
            "note": ("these servers answered faster than the generated callbacks lasted: their window ends at the "
                     "last answer (window_s)") if exhausted else None,
        },
        "contention": {
            "phases_sharing_cores_with_other_work": busy,
            "note": (f"other processes used more than {CONTENDED_PCT}% of a core during these phases (beyond the "
                     "machine's softirq and steal time): compare *_cpu_ms_per_request rather than req/s")
            if busy else None,
        },
        "elapsed_s": round(elapsed, 1),
    }


def run(cfg: Config) -> dict[str, Any]:
    """Prepare, measure the acks, then end to end; the report is also written to `cfg.output`."""
    started = time.perf_counter()
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gongdan-bench-cb-") as tmp:
        if cfg.replay_dir is None:
            cfg = replace(cfg, replay_dir=Path(tmp))
        _replay_dir(cfg).mkdir(parents=True, exist_ok=True)
        setup = prepare(cfg)
        callbacks = Callbacks(Account())
        results, notes = measure_acks(cfg, callbacks)
        busy = None
        if cfg.busy_workers > 0:
            busy = measure_busy(cfg, callbacks, results.get(f"c{AIM_CONCURRENCY}", {}).get("minimal"))
        e2e = measure_e2e(cfg, callbacks) if cfg.e2e_messages > 0 else None
    doc = report(cfg, setup, results, notes, e2e, time.perf_counter() - started)
    doc["while_processing"] = busy
    if busy is not None:
        print(f"acks at c={AIM_CONCURRENCY} while {busy['workers']} workers process: "
              f"{busy['gongdan']['req_per_s']} req/s (p99 {busy['gongdan']['p99_ms']} ms) vs minimal "
              f"{busy['minimal']['req_per_s']} req/s: ratio {busy['aim']['ratio_vs_minimal']}", file=sys.stderr)
    if cfg.output is not None:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc


def _csv(raw: str) -> Iterator[str]:
    return (x.strip() for x in raw.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.callbacks",
                                description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--database-url", default=os.environ.get("BENCH_CB_DATABASE_URL", DEFAULT_DB),
                   help="a MariaDB/MySQL URL whose database is named gongdan_bench* (it is dropped)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_CB_REDIS_URL", DEFAULT_REDIS),
                   help="a Redis database of its own (it is flushed)")
    p.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)), help="comma-separated")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per phase")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds of load before each measurement")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (every target)")
    p.add_argument("--db-pool-size", type=int, default=64)
    p.add_argument("--clients", type=int, default=1, help="load client processes")
    p.add_argument("--e2e-messages", type=int, default=3000, help="end-to-end batch (0 to skip)")
    p.add_argument("--busy-workers", type=int, default=2,
                   help=f"workers processing while acks are measured at c={AIM_CONCURRENCY} (0 to skip the phase)")
    p.add_argument("--fill-schema", action="store_true",
                   help="after `gongdan migrate`, create tables the models have and the migrations lack yet")
    p.add_argument("--e2e-timeout", type=float, default=150.0, help="seconds to wait for the worker to drain")
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="py-spy `gongdan serve` this long at the highest concurrency (needs py-spy)")
    p.add_argument("--output", default=str(procs.RESULTS / "callbacks.json"), help="'' to write no file")
    a = p.parse_args(argv)
    targets = tuple(_csv(a.targets))
    unknown = set(targets) - set(TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    try:
        concurrencies = tuple(int(x) for x in _csv(a.concurrency))
    except ValueError:
        p.error("--concurrency takes comma-separated whole numbers")
    return Config(
        database_url=a.database_url, redis_url=a.redis_url, concurrencies=concurrencies, targets=targets,
        duration_s=a.duration, warmup_s=a.warmup, workers=a.workers, db_pool_size=a.db_pool_size,
        clients=max(1, a.clients), e2e_messages=a.e2e_messages, busy_workers=a.busy_workers,
        fill_schema=a.fill_schema, e2e_timeout_s=a.e2e_timeout, profile_s=a.profile,
        output=Path(a.output) if a.output else None,
    )


def main(argv: list[str] | None = None) -> None:
    doc = run(parse_args(argv))
    print(json.dumps(doc, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
