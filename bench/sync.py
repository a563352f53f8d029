"""WeCom sync figures: a full directory and external-contact sync from the simulator, with its rate limits on.

    PYTHONPATH=. python -m bench.sync                          # 2,000 departments, 20,000 staff, 200,000 contacts
    PYTHONPATH=. python -m bench.sync --org 200,2000,20000     # smaller
    PYTHONPATH=. python -m bench.sync --per-minute 600         # tighter limits: the limiter becomes the bottleneck
    PYTHONPATH=. python -m bench.sync --db mysql               # the desk side on MariaDB (database gongdan_bench_sync)

The simulator runs in its own process (so our CPU time is ours alone) and answers 45009 past its per-corp, per-API
limits (default WeCom's 10,000/min and 150,000/h); our client keeps to ``--client-per-minute`` (default 90 % of
the simulator's). The desk side is a fresh SQLite file, or with ``--db mysql`` the MariaDB database
``gongdan_bench_sync`` on 127.0.0.1:3306 (dropped and created; tables from the models). The syncs run in this
process once its heap is settled as a worker's is (``app.heap.settle``: a sync job runs in one). Printed per sync: wall
time, API calls, seconds waited on our limiter, our process's CPU time and its share of the wall (``cpu_per_wall``),
the simulator's CPU time in the same span (``sim_cpu_s``: WeCom's side of the wall; with MariaDB its server's CPU is
in neither), peak RSS; then the time to apply one incremental event (change_contact update_user and
change_external_contact edit, each re-reading its object through the API).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _serve_simulator(org: str, per_minute: int, per_hour: int, port_queue: Any) -> None:
    import socket

    import uvicorn

    from simulator import SimulatorState, create_simulator_app
    from simulator.wecom.orggen import OrgSize, add_default_apps, generate_org

    state = SimulatorState()
    add_default_apps(state.wecom)
    started = time.perf_counter()
    generate_org(state.wecom, OrgSize.parse(org), seed=1)
    state.wecom.rate_limits.per_minute = per_minute
    state.wecom.rate_limits.per_hour = per_hour
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_queue.put((sock.getsockname()[1], time.perf_counter() - started))
    config = uvicorn.Config(create_simulator_app(state), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


async def _bench(args: argparse.Namespace, port: int) -> dict[str, Any]:
    from starlette.datastructures import Secret
    from tortoise import Tortoise

    from app import heap, setup
    from app.db import tortoise_config
    from app.logs import configure_logging
    from app.settings import WeComSettings, load_settings, set_settings
    from app.wecom.work import Purpose, wecom_api
    from wecom_sync import directory, external

    configure_logging(fmt="console", level="WARNING")
    if args.db == "mysql":
        await _create_mysql_db()
        database_url = f"mysql://root:@127.0.0.1:3306/{MYSQL_DB}"
    else:
        database_url = f"sqlite://{Path(tempfile.mkdtemp(prefix='gongdan-bench-sync-'))}/bench.sqlite3"
    settings = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": database_url}, env_file=None)
    settings = settings.with_overrides(
        wecom_api_base=f"http://127.0.0.1:{port}/qyapi/cgi-bin/",
        wecom=WeComSettings(corp_id="wwsimcorp0000000001", agent_id="1000002", agent_secret=Secret("sim-agent-secret"),
                            contact_secret=Secret("sim-contact-secret"), customer_secret=Secret("sim-customer-secret"),
                            rate_per_minute=args.client_per_minute, rate_per_hour=args.client_per_hour),
    )
    set_settings(settings)
    await Tortoise.init(config=tortoise_config(settings))
    await Tortoise.generate_schemas()
    heap.settle()  # what a worker and `gongdan sync` do once started, before a sync job runs in them
    out: dict[str, Any] = {}
    try:
        plan: list[tuple[str, Purpose, Any]] = [("directory", "contacts", directory),
                                                ("external_contacts", "customer", external)]
        for kind, purpose, module in plan:
            api = wecom_api(purpose)
            cpu, wall, sim = time.process_time(), time.perf_counter(), _cpu_of(args.sim_pid)
            report = await module.full_sync(api=api)
            out[kind] = {**_spent(cpu, wall, sim, args.sim_pid), "api_calls": report.api_calls,
                         "limiter_wait_s": round(report.limiter_wait, 2), "added": report.added,
                         "peak_rss_mb": _rss_mb()}
        # the nightly reconcile: the same organisation again, nothing to write
        api = wecom_api("customer")
        cpu, wall, sim = time.process_time(), time.perf_counter(), _cpu_of(args.sim_pid)
        report = await external.full_sync(api=api, resume=False)
        out["external_contacts_reconcile"] = {**_spent(cpu, wall, sim, args.sim_pid), "api_calls": report.api_calls,
                                              "limiter_wait_s": round(report.limiter_wait, 2),
                                              "changed": report.changed}
        rng = random.Random(5)
        userids = [u for u in await _userids() if not u.startswith("new")]
        samples = []
        api = wecom_api("contacts")
        for userid in rng.sample(userids, min(args.samples, len(userids))):
            started = time.perf_counter()
            await directory.apply_change(api=api, fields={"ChangeType": "update_user", "UserID": userid})
            samples.append(time.perf_counter() - started)
        out["incremental_update_user_ms"] = _summary(samples)
        from wecom_sync.models import ExternalFollow

        pairs = await ExternalFollow.all().limit(2000).values_list("userid", "contact__external_userid")
        samples = []
        customer_api = wecom_api("customer")
        for userid, ext in rng.sample(pairs, min(args.samples, len(pairs))):
            started = time.perf_counter()
            await external.apply_event(api=customer_api, fields={"ChangeType": "edit_external_contact",
                                                                 "UserID": userid, "ExternalUserID": ext})
            samples.append(time.perf_counter() - started)
        out["incremental_edit_external_contact_ms"] = _summary(samples)
    finally:
        await setup.shutdown()  # WeCom's keep-alive connections, as a worker closes them
        await Tortoise.close_connections()
    return out


MYSQL_DB = "gongdan_bench_sync"


async def _create_mysql_db() -> None:
    import aiomysql

    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS {MYSQL_DB}")
        await cur.execute(f"CREATE DATABASE {MYSQL_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _spent(cpu: float, wall: float, sim: float, sim_pid: int) -> dict[str, float]:
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_per_wall": round(cpu / wall, 2),
            "sim_cpu_s": round(_cpu_of(sim_pid) - sim, 2)}


async def _userids() -> list[str]:
    from app.staff.models import Staff

    return [str(u) for u in await Staff.all().values_list("userid", flat=True)]


def _summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50": round(statistics.median(ms), 1), "p95": round(ms[int(len(ms) * 0.95) - 1], 1), "n": len(ms)}


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--org", default="2000,20000,200000", help="departments,staff,external_contacts")
    parser.add_argument("--per-minute", type=int, default=10_000, help="the simulator's per-corp per-API limit")
    parser.add_argument("--per-hour", type=int, default=150_000)
    parser.add_argument("--client-per-minute", type=int, default=0, help="our limiter (default 90%% of the sim's)")
    parser.add_argument("--client-per-hour", type=int, default=0)
    parser.add_argument("--samples", type=int, default=200, help="incremental events timed per kind")
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite",
                        help=f"the desk side's database (mysql: {MYSQL_DB} on 127.0.0.1:3306, dropped first)")
    args = parser.parse_args()
    args.client_per_minute = args.client_per_minute or int(args.per_minute * 0.9)
    args.client_per_hour = args.client_per_hour or int(args.per_hour * 0.93)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve_simulator, args=(args.org, args.per_minute, args.per_hour, queue), daemon=True)
    proc.start()
    try:
        port, generated = queue.get(timeout=600)
        args.sim_pid = proc.pid
        time.sleep(0.5)
        print(f"org {args.org} generated in the simulator in {generated:.1f} s; limits {args.per_minute}/min, "
              f"{args.per_hour}/h (ours {args.client_per_minute}/min, {args.client_per_hour}/h)")
        result = asyncio.run(_bench(args, port))
    finally:
        proc.terminate()
        proc.join(10)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
