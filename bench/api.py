"""API benchmark: ticket create, an agent's "my open tickets" and a ticket detail on 100k tickets, beside a bare route.

    python -m bench.api                  # seed gongdan_bench (100k tickets), measure, print JSON
    python -m bench.api --reuse          # keep an already seeded gongdan_bench
    python -m bench.api --help

What it does, in one run:

1. `gongdan_bench` is dropped and created, `gongdan migrate` builds the schema, and bench.seed fills it (the demo
   org through app.seed.ensure_org, then 20k customers, 100k tickets and their events through bulk INSERTs).
2. A bare Starlette app with one JSON route is served by uvicorn with the same worker count and loaded with the
   same client at the same concurrency: the ceiling of this machine, client and server together.
3. `gongdan serve` (GONGDAN_ENV=production, no REDIS_URL: jobs in-process) is loaded in phases: POST
   /api/v1/tickets, GET "my open tickets", GET one ticket, and GET one group's whole queue.
4. One JSON document with every figure, the ratios to the bare route and the comparison with django-helpdesk's
   figures measured on this machine is printed and written to bench/results/api.json; then one line per target
   (create >= 10x django-helpdesk's 130/s, "my open tickets" p99 < 50 ms, both at c=16) says PASS or FAIL on
   stderr, and whether other work shared the cores during that phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Spec
from bench.seed import LOAD_CATEGORY, Dataset, Plan

DEFAULT_DB = "mysql://root:@127.0.0.1:3306/gongdan_bench"
MY_OPEN = "/api/v1/tickets?assignee=me&status=new,open,pending&limit=50"
#: django-helpdesk, measured on this machine against the same MariaDB (docs/architecture.md)
DJANGO_HELPDESK = {
    "create_per_s": 130, "create_p99_ms": 170, "queue_list_p99_ms": 1500, "queue_list_p50_ms": 1400,
    "concurrency": 16,
}
#: issue 15: create at least 10x django-helpdesk's rate, "my open tickets" p99 under 50 ms, both at c=16
CREATE_TARGET_FACTOR = 10
LIST_P99_TARGET_MS = 50.0
PHASES = ("bare", "create", "list", "detail", "queue")
#: the longest wait for the create phase's rollups to drain before the next phase
ROLLUP_WAIT_S = 120.0
#: other work on the machine above this share of one core marks a phase as contended
CONTENDED_PCT = 25.0


@dataclass
class Config:
    database_url: str = DEFAULT_DB
    plan: Plan = field(default_factory=Plan)
    reuse: bool = False
    concurrency: int = 16
    duration_s: float = 20.0
    warmup_s: float = 2.0
    #: uvicorn worker processes, for `gongdan serve` and the bare app alike
    workers: int = 2
    #: load client processes sharing the concurrency
    clients: int = 1
    engine: str = "raw"
    accept_encoding: str = "gzip, deflate"
    #: seconds the client processes get to start and connect before the load begins
    client_start_s: float = 1.5
    db_pool_size: int = 64
    phases: tuple[str, ...] = PHASES
    output: Path | None = procs.RESULTS / "api.json"
    #: where the servers' output goes (bare.log, gongdan.log)
    log_dir: Path = procs.RESULTS


# ---- measuring ------------------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    # nearest rank: the smallest value with at least q% of the values at or below it
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run_phase(cfg: Config, spec: Spec, meter: procs.CpuMeter) -> dict[str, Any]:
    """Run one phase with `cfg.clients` client processes and summarise it."""
    per_client = [cfg.concurrency // cfg.clients + (1 if i < cfg.concurrency % cfg.clients else 0)
                  for i in range(cfg.clients)]
    start_at = time.time() + cfg.client_start_s + 0.2 * (cfg.clients - 1)
    children = []
    for i, conc in enumerate(per_client):
        child_spec = replace(spec, concurrency=conc, start_at=start_at, seed=spec.seed * 100 + i,
                             warmup_s=cfg.warmup_s, duration_s=cfg.duration_s, engine=cfg.engine,
                             accept_encoding=cfg.accept_encoding)
        child = subprocess.Popen([sys.executable, "-m", "bench.load"], cwd=procs.ROOT, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdin is not None
        child.stdin.write(json.dumps(asdict(child_spec)))
        child.stdin.close()
        children.append(child)
    window_start = start_at + cfg.warmup_s
    time.sleep(max(0.0, window_start - time.time()))
    meter.begin()
    time.sleep(max(0.0, window_start + cfg.duration_s - time.time()))
    cpu = meter.end()
    latencies: list[float] = []
    errors, client_cpu, window = 0, 0.0, cfg.duration_s
    statuses: dict[str, int] = {}
    samples: list[str] = []
    for child in children:
        assert child.stdout is not None and child.stderr is not None
        out = child.stdout.read()
        err = child.stderr.read()
        if child.wait(timeout=60) != 0:
            raise RuntimeError(f"load client failed: {err[-2000:]}")
        part = json.loads(out)
        latencies.extend(part["latencies_ms"])
        errors += part["errors"]
        for k, v in part["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        samples.extend(part["error_samples"])
        client_cpu += part["cpu_s"]
        window = part["window_s"] or window
    latencies.sort()
    done = len(latencies)
    cpu["client_pct_of_core"] = round(100 * client_cpu / window, 1)
    ours = sum(v for k, v in cpu.items() if k != "machine_busy_pct_of_core")
    cpu["others_pct_of_core"] = round(max(0.0, cpu["machine_busy_pct_of_core"] - ours), 1)
    # CPU per request moves much less than req/s when other work shares the cores: compare these across runs
    rate = done / window if window else 0.0
    for name in ("server", "db"):
        if f"{name}_pct_of_core" in cpu and rate:
            cpu[f"{name}_cpu_ms_per_request"] = round(cpu[f"{name}_pct_of_core"] * 10 / rate, 3)
    return {
        "requests": done,
        "req_per_s": round(done / window, 1),
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p90_ms": round(_percentile(latencies, 90), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else 0.0,
        "mean_ms": round(sum(latencies) / done, 2) if done else 0.0,
        "errors": errors,
        "statuses": statuses,
        "error_samples": samples[:5],
        "cpu": cpu,
    }


def serve_argv(port: int, workers: int) -> list[str]:
    return [*procs.GONGDAN, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def bare_argv(port: int, workers: int) -> list[str]:
    return procs.uvicorn_argv("bench.bare:app", port=port, workers=workers)


def _db_pids() -> list[int]:
    return procs.pids_named("mariadbd") or procs.pids_named("mysqld")


def prepare(cfg: Config) -> Dataset:
    """Seed the benchmark database, or reuse it (migrated, load tickets removed) when asked and possible."""
    from bench import seed

    env = procs.gongdan_env(cfg.database_url, db_pool_size=8)
    started = time.perf_counter()
    reused = cfg.reuse and asyncio.run(seed.is_seeded(cfg.database_url, cfg.plan))
    if reused:
        procs.gongdan(["migrate"], env)
        asyncio.run(seed.remove_load_tickets(cfg.database_url))
    else:
        asyncio.run(seed.reset_database(cfg.database_url))
        procs.gongdan(["migrate"], env)
        asyncio.run(seed.seed(cfg.database_url, cfg.plan))
    dataset = asyncio.run(seed.describe(cfg.database_url))
    dataset.reused = bool(reused)
    dataset.seed_seconds = round(time.perf_counter() - started, 1)
    return dataset


def phase_specs(dataset: Dataset, *, port: int, token: str, create_token: str | None = None) -> dict[str, Spec]:
    """What each phase of `gongdan serve` sends, as the measured agent (tickets for customers the agent does not
    see yet are opened by an integration's admin token: an agent cannot pull a customer into their scope)."""
    base = Spec(host="127.0.0.1", port=port, token=token)
    return {
        "create": replace(base, token=create_token or token, kind="create", customer_id_min=dataset.customer_id_min,
                          customer_id_max=dataset.customer_id_max, group_id=dataset.agent_group_id,
                          category=LOAD_CATEGORY, seed=2),
        "list": replace(base, paths=[MY_OPEN], seed=3),
        "detail": replace(base, paths=[f"/api/v1/tickets/{i}" for i in dataset.detail_ids] or ["/api/v1/tickets/1"],
                          seed=4),
        "queue": replace(base, paths=[f"/api/v1/tickets?group_id={dataset.agent_group_id}&limit=50"], seed=5),
    }


def drain_rollups(cfg: Config, meter: procs.CpuMeter, *, requests: int) -> dict[str, Any]:
    """Wait for the server to roll up the tickets the create phase made (its in-process `reports_refresh`), so the
    next phase starts on a quiet machine, and say what that cost: part of every create's work runs after it."""
    from bench import seed

    backlog = asyncio.run(seed.rollup_backlog(cfg.database_url))
    meter.begin()
    started = time.monotonic()
    left = backlog
    while left and time.monotonic() - started < ROLLUP_WAIT_S:
        time.sleep(0.5)
        left = asyncio.run(seed.rollup_backlog(cfg.database_url))
    cpu = meter.end()
    drain_s = time.monotonic() - started
    return {"backlog_at_end": backlog, "left": left, "drain_s": round(drain_s, 1),
            "server_cpu_ms_per_request": round(cpu["server_pct_of_core"] * drain_s * 10 / requests, 3)
            if requests else None}


def measure(cfg: Config, dataset: Dataset) -> dict[str, Any]:
    """Run the phases against the bare app and `gongdan serve`."""
    phases: dict[str, Any] = {}
    db_pids = _db_pids()
    if "bare" in cfg.phases:
        port = procs.free_port()
        with procs.Server("bare", bare_argv(port, cfg.workers), env=procs.gongdan_env(cfg.database_url),
                          port=port, log_dir=cfg.log_dir, listeners=cfg.workers) as server:
            meter = procs.CpuMeter({"server": server.pids(), "db": db_pids})
            phases["bare"] = run_phase(cfg, Spec(host="127.0.0.1", port=port, paths=["/"], seed=1), meter)

    wanted = [p for p in cfg.phases if p != "bare"]
    if not wanted:
        return phases
    env = procs.gongdan_env(cfg.database_url, db_pool_size=cfg.db_pool_size)
    token = procs.gongdan(["token", "create", "--staff", "lina", "--name", "bench"], env).strip().splitlines()[-1]
    admin = procs.gongdan(["token", "create", "--staff", "admin", "--name", "bench-api"], env).strip().splitlines()[-1]
    port = procs.free_port()
    with procs.Server("gongdan", serve_argv(port, cfg.workers), env=env, port=port, log_dir=cfg.log_dir,
                      listeners=cfg.workers) as server:
        meter = procs.CpuMeter({"server": server.pids(), "db": db_pids})
        specs = phase_specs(dataset, port=port, token=token, create_token=admin)
        for name in wanted:
            phases[name] = run_phase(cfg, specs[name], meter)
            if name == "create":
                phases[name]["rollups"] = drain_rollups(cfg, meter, requests=phases[name]["requests"])
        crashed = server.log_lines("request.crashed")
    phases["server_log_crashes"] = crashed
    return phases


# ---- reporting ------------------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}


def _mysql_driver() -> str:
    """The driver tortoise uses in the server processes: asyncmy when installed, else aiomysql."""
    import importlib.util

    return "asyncmy" if importlib.util.find_spec("asyncmy") else "aiomysql"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def report(cfg: Config, dataset: Dataset, phases: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """The JSON document: figures, ratios to the bare route, targets and the django-helpdesk comparison."""
    bare = phases.get("bare")
    ratios: dict[str, Any] = {}
    if bare:
        for name in ("create", "list", "detail", "queue"):
            if name in phases:
                ratios[name] = {
                    "req_per_s": _ratio(phases[name]["req_per_s"], bare["req_per_s"]),
                    "p50_x": _ratio(phases[name]["p50_ms"], bare["p50_ms"]),
                    "p99_x": _ratio(phases[name]["p99_ms"], bare["p99_ms"]),
                }
    targets: dict[str, Any] = {}

    def contention(phase: str) -> dict[str, Any]:
        # a target missed while other work held the cores says little about this code: the reader is told
        others = phases[phase]["cpu"].get("others_pct_of_core", 0.0)
        return {"errors": phases[phase]["errors"], "contended": others > CONTENDED_PCT,
                "others_pct_of_core": others}

    if "create" in phases:
        rate = phases["create"]["req_per_s"]
        goal = CREATE_TARGET_FACTOR * DJANGO_HELPDESK["create_per_s"]
        targets["create_per_s"] = {"target": goal, "measured": rate, "x_django_helpdesk":
                                   _ratio(rate, DJANGO_HELPDESK["create_per_s"]),
                                   "pass": rate >= goal and phases["create"]["errors"] == 0,
                                   "rollups": phases["create"].get("rollups"), **contention("create")}
    if "list" in phases:
        p99 = phases["list"]["p99_ms"]
        targets["list_p99_ms"] = {"target": LIST_P99_TARGET_MS, "measured": p99,
                                  "pass": p99 < LIST_P99_TARGET_MS and phases["list"]["errors"] == 0,
                                  **contention("list")}
    if "queue" in phases:
        targets["queue_list_p99_vs_django_helpdesk"] = {
            "django_helpdesk_ms": DJANGO_HELPDESK["queue_list_p99_ms"], "measured": phases["queue"]["p99_ms"],
            "x_faster": _ratio(DJANGO_HELPDESK["queue_list_p99_ms"], phases["queue"]["p99_ms"]),
        }
    busy = {name: r["cpu"]["others_pct_of_core"] for name, r in phases.items()
            if isinstance(r, dict) and r.get("cpu", {}).get("others_pct_of_core", 0) > CONTENDED_PCT}
    client_note = None
    if bare:
        client_note = (
            f"the bare route at {bare['req_per_s']} req/s is the ceiling of client and server together on this "
            f"machine; the client used {bare['cpu']['client_pct_of_core']}% of a core there"
        )
    return {
        "benchmark": "gongdan api",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "database": cfg.database_url.rsplit("/", 1)[-1], "concurrency": cfg.concurrency,
            "duration_s": cfg.duration_s, "warmup_s": cfg.warmup_s, "server_workers": cfg.workers,
            "client_processes": cfg.clients, "client_engine": cfg.engine, "accept_encoding": cfg.accept_encoding,
            "db_pool_size": cfg.db_pool_size, "mysql_driver": _mysql_driver(),
            "jobs": "in-process (no REDIS_URL)", "my_open_tickets": MY_OPEN,
            "queue_list": "/api/v1/tickets?group_id=G&limit=50: the agent's skill group, every status, first page",
        },
        "dataset": dataset.summary(),
        "results": phases,
        "ratios_vs_bare": ratios,
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets.values() if "pass" in t),
        "django_helpdesk": DJANGO_HELPDESK,
        "client_ceiling": client_note,
        "contention": {
            "phases_sharing_cores_with_other_work": busy,
            "note": (f"other processes used more than {CONTENDED_PCT}% of a core during these phases: their req/s "
                     "and latencies understate this code; compare *_cpu_ms_per_request instead") if busy else None,
        },
        "elapsed_s": round(elapsed, 1),
    }


def run(cfg: Config) -> dict[str, Any]:
    """Seed (or reuse), measure, report; the report is also written to `cfg.output`."""
    started = time.perf_counter()
    dataset = prepare(cfg)
    phases = measure(cfg, dataset)
    doc = report(cfg, dataset, phases, time.perf_counter() - started)
    if cfg.output is not None:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB),
                   help="a MariaDB/MySQL URL whose database is named gongdan_bench* (it is dropped)")
    p.add_argument("--reuse", action="store_true", help="keep an existing database seeded with the same plan")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--agent-open", type=int, default=200, help="live tickets assigned to the measured agent")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (gongdan and bare)")
    p.add_argument("--clients", type=int, default=1, help="load client processes")
    p.add_argument("--engine", choices=("raw", "httpx"), default="raw", help="load client (see bench.load)")
    p.add_argument("--accept-encoding", default="gzip, deflate", help="'identity' to measure without compression")
    p.add_argument("--db-pool-size", type=int, default=64)
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--output", default=str(procs.RESULTS / "api.json"), help="'' to write no file")
    a = p.parse_args(argv)
    phases = tuple(x for x in a.phases.split(",") if x)
    unknown = set(phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return Config(
        database_url=a.database_url, reuse=a.reuse, concurrency=a.concurrency, duration_s=a.duration,
        warmup_s=a.warmup, workers=a.workers, clients=max(1, a.clients), engine=a.engine,
        accept_encoding=a.accept_encoding,
        db_pool_size=a.db_pool_size, phases=phases, output=Path(a.output) if a.output else None,
        plan=Plan(tickets=a.tickets, customers=a.customers, agent_open=a.agent_open),
    )


def verdicts(doc: dict[str, Any]) -> list[str]:
    """One line per target: what it asks, what was measured, PASS or FAIL, and whether other work shared the
    cores meanwhile (then a FAIL may be the machine's, and the phase's *_cpu_ms_per_request tell more)."""
    concurrency = doc["config"]["concurrency"]
    lines = []
    for key, target in doc["targets"].items():
        if key == "create_per_s":
            ask = (f"create >= {target['target']} req/s ({CREATE_TARGET_FACTOR}x django-helpdesk's "
                   f"{DJANGO_HELPDESK['create_per_s']}/s) at c={concurrency}")
            got = f"{target['measured']} req/s ({target['x_django_helpdesk']}x)"
            if target.get("rollups"):
                r = target["rollups"]
                got += (f"; their rollups: {r['backlog_at_end']} left at the end, drained in {r['drain_s']} s "
                        f"(+{r['server_cpu_ms_per_request']} ms of server CPU a create)")
        elif key == "list_p99_ms":
            ask = f"my open tickets p99 < {target['target']:g} ms at c={concurrency}"
            got = f"p99 {target['measured']} ms"
        else:
            lines.append(f"queue p99 {target['measured']} ms vs django-helpdesk's {target['django_helpdesk_ms']} ms: "
                         f"{target['x_faster']}x faster (a comparison, no target)")
            continue
        verdict = "PASS" if target["pass"] else "FAIL"
        notes = [f"{target['errors']} errors"] if target["errors"] else []
        if target["contended"]:
            notes.append(f"contended: other work used {target['others_pct_of_core']}% of a core")
        lines.append(f"{verdict}  {ask}: {got}" + (f" [{'; '.join(notes)}]" if notes else ""))
    return lines


def main(argv: list[str] | None = None) -> None:
    doc = run(parse_args(argv))
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    # the verdicts go to stderr: stdout stays one JSON document for whoever reads it
    for line in verdicts(doc):
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
