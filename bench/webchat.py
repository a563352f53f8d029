"""Web chat figures: visitor messages per second through the WebSocket with many visitors connected, and the
latency each message gets from the desk, beside a bare WebSocket echo server measured in the same run.

    python -m bench.webchat [--visitors 500] [--seconds 20] [--probes 200]
                            [--database mysql://root:@127.0.0.1:3306/gongdan_bench_webchat]

The desk is `gongdan serve` (one uvicorn process, jobs in-process, as `make run` and a small site run it) on the
database given (MariaDB by default: dropped and created, schema from the models, the demo organisation, an
always-open calendar and one web chat site without the bot). The rate limits are lifted for the bench's site and
server process only: they count per IP address, and every visitor here comes from 127.0.0.1. The baseline is a bare
starlette WebSocket app on the same uvicorn that answers ``hello`` with ``welcome`` and each ``message`` with an
``ack``: the same frames, no database, no intake.

`--visitors` sockets connect and say hello (each becomes a customer on the desk). Then:

- throughput: every visitor sends a message, waits for its ack, sends the next, for `--seconds`; messages/s is
  acks received over the time. Each message goes through the intake flow (customer lock, conversation, message,
  the first of each visitor opens a ticket and its acknowledgement goes back through the outbox and the hub).
- latency: `--probes` messages one at a time, from visitors in turn, while all stay connected: p50/p99 of the time
  from send to ack; the desk's minus the bare server's is the latency the desk adds per message.

CPU: the server's, the database's and the whole machine's share of a core during the throughput phase, and the
server's CPU time per message (the machine is shared: when it is busy with other work, messages/s says more about
the share the server got than about the desk). Only figures of one run compare: the VM's
speed drifts between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench import api, procs

DATABASE = "mysql://root:@127.0.0.1:3306/gongdan_bench_webchat"
ORIGIN = "https://shop.example.com"
SITE = "shop"
WAIT = 30.0

PREPARE = """
import asyncio
from tortoise import Tortoise
from app.db import tortoise_config
from app.settings import load_settings

async def main():
    from app.channels.webchat import accounts
    from app.seed import ensure_org
    from app.staff.models import Staff
    from app.tickets.models import BusinessCalendar

    await Tortoise.init(config=tortoise_config(load_settings()))
    await Tortoise.generate_schemas()
    await ensure_org()
    await Staff.all().update(on_duty=True)
    await BusinessCalendar.filter(is_default=True).update(is_default=False)
    await BusinessCalendar.create(name="全天", weekly={str(d): [["00:00", "24:00"]] for d in range(1, 8)},
                                  public_holidays=False, is_default=True)
    site = await accounts.upsert_account(key=%(site)r, name="示例商城", origins=[%(origin)r], bot=False)
    # every bench visitor comes from 127.0.0.1: the per-IP and per-visitor limits would refuse the load itself
    site.config = {**site.config, "per_visitor": 10 ** 9, "per_ip": 10 ** 9}
    await site.save(update_fields=["config"])
    await Tortoise.close_connections()

asyncio.run(main())
"""

SERVE_DESK = """
import sys
import uvicorn
from app.channels.webchat import visitors
from app.settings import get_settings
from app.logs import configure_logging

# every bench visitor comes from 127.0.0.1: the per-IP and per-visitor limits would refuse the load itself
visitors.PER_VISITOR = visitors.PER_IP = visitors.visitor_limiter.limit = visitors.ip_limiter.limit = 10 ** 9
s = get_settings()
configure_logging(fmt=s.log_format, level=s.log_level)
uvicorn.run("app.main:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
            access_log=False)
"""

SERVE_BARE = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def ws(socket: WebSocket) -> None:
    await socket.accept()
    n = 0
    try:
        while True:
            frame = await socket.receive_json()
            if frame.get("type") == "hello":
                await socket.send_json({"type": "welcome", "visitor": "v", "online": True})
            elif frame.get("type") == "message":
                n += 1
                await socket.send_json({"type": "ack", "client_id": frame.get("client_id"), "id": n})
    except WebSocketDisconnect:
        pass


async def ready(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[WebSocketRoute("/webchat/ws", ws), Route("/readyz", ready)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
"""


@dataclass
class Visitor:
    ws: ClientConnection
    waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            await self._read()
        except BaseException as exc:  # the waiting messages fail with it instead of timing out
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(RuntimeError(f"the socket failed: {exc!r}"))
            raise

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame.get("type") == "ack":
                future = self.waiting.pop(str(frame.get("client_id")), None)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())
            elif frame.get("type") == "error":
                raise RuntimeError(f"the server refused a message: {frame}")

    async def say(self, client_id: str) -> float:
        """Send one message; seconds until its ack."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[client_id] = future
        started = time.perf_counter()
        await self.ws.send(json.dumps({"type": "message", "text": "你好，我想问一下订单什么时候发货",
                                       "client_id": client_id}, ensure_ascii=False))
        return await asyncio.wait_for(future, WAIT) - started


async def _open(url: str, n: int) -> list[Visitor]:
    async def one() -> Visitor:
        ws = await connect(url, origin=ORIGIN, open_timeout=WAIT, max_queue=None)  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello"}))
        while json.loads(await asyncio.wait_for(ws.recv(), WAIT)).get("type") != "welcome":
            pass
        v = Visitor(ws)
        v.reader = asyncio.create_task(v.read())
        return v

    out: list[Visitor] = []
    for start in range(0, n, 50):  # in waves: a burst of 500 handshakes only measures the accept backlog
        out.extend(await asyncio.gather(*(one() for _ in range(min(50, n - start)))))
    return out


def _pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1) of seconds, in milliseconds (nearest rank, as every bench reports it)."""
    return api._percentile(sorted(values), q * 100) * 1000


async def measure(url: str, *, visitors: int, seconds: float, probes: int,
                  pids: list[int]) -> dict[str, Any]:
    """Connect the visitors, run both phases against one server; its figures."""
    crowd = await _open(url, visitors)
    ids = itertools.count()
    try:
        stop_at = time.perf_counter() + seconds
        latencies: list[float] = []

        async def chat(v: Visitor) -> int:
            sent = 0
            while time.perf_counter() < stop_at:
                latencies.append(await v.say(f"t{next(ids)}"))
                sent += 1
            return sent

        db = procs.pids_named("mariadbd") or procs.pids_named("mysqld")
        cpu0, db0, busy0 = procs.cpu_seconds(pids), procs.cpu_seconds(db), procs.machine_busy_seconds()
        t0 = time.perf_counter()
        counts = await asyncio.gather(*(chat(v) for v in crowd))
        elapsed = time.perf_counter() - t0
        cpu, db_cpu = procs.cpu_seconds(pids) - cpu0, procs.cpu_seconds(db) - db0
        busy = procs.machine_busy_seconds() - busy0
        probe = [await crowd[i % len(crowd)].say(f"p{next(ids)}") for i in range(probes)]
    finally:
        for v in crowd:
            if v.reader is not None:
                v.reader.cancel()
            await v.ws.close()
    return {"messages": sum(counts), "messages_per_s": round(sum(counts) / elapsed, 1),
            "loaded_p50_ms": round(_pct(latencies, 0.5), 2), "loaded_p99_ms": round(_pct(latencies, 0.99), 2),
            "p50_ms": round(_pct(probe, 0.5), 2), "p99_ms": round(_pct(probe, 0.99), 2),
            "mean_ms": round(statistics.fmean(probe) * 1000, 2),
            "server_cpu_pct_of_core": round(cpu / elapsed * 100, 1),
            # what one message costs the web process, whatever share of the machine it got
            "server_cpu_ms_per_message": round(cpu / max(1, sum(counts)) * 1000, 3),
            "database_cpu_pct_of_core": round(db_cpu / elapsed * 100, 1),
            "machine_busy_pct_of_core": round(busy / elapsed * 100, 1)}


async def run(*, visitors: int, seconds: float, probes: int, database_url: str = DATABASE) -> dict[str, Any]:
    """Prepare the desk's database, measure the desk and the bare server in turn; the figures."""
    with tempfile.TemporaryDirectory(prefix="gongdan-bench-webchat-") as tmp:
        if database_url.startswith("mysql"):
            from bench.seed import drop_database

            await drop_database(database_url, create=True)
        env = procs.gongdan_env(database_url, db_pool_size=16, DATA_DIR=str(Path(tmp) / "data"),
                                PUBLIC_URL="http://127.0.0.1")
        prep = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PREPARE % {"site": SITE, "origin": ORIGIN}, env=env, cwd=procs.ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await prep.communicate()
        if prep.returncode != 0:
            raise RuntimeError(f"preparing the database failed: {out.decode(errors='replace')[-2000:]}")
        figures: dict[str, Any] = {"visitors": visitors, "seconds": seconds, "probes": probes,
                                   "database": database_url.split(":", 1)[0]}
        for name, script in (("desk", SERVE_DESK), ("bare", SERVE_BARE)):
            port = procs.free_port()
            server = procs.Server(f"webchat-{name}", [sys.executable, "-c", script, str(port)], env=env, port=port,
                                  log_dir=procs.RESULTS)
            with server:
                figures[name] = await measure(f"ws://127.0.0.1:{port}/webchat/ws?site={SITE}", visitors=visitors,
                                              seconds=seconds, probes=probes, pids=server.pids())
        if database_url.startswith("mysql"):
            from bench.seed import drop_database

            await drop_database(database_url)
    desk, bare = figures["desk"], figures["bare"]
    figures["ratio"] = round(desk["messages_per_s"] / bare["messages_per_s"], 3)
    figures["added_p50_ms"] = round(desk["p50_ms"] - bare["p50_ms"], 2)
    figures["added_p99_ms"] = round(desk["p99_ms"] - bare["p99_ms"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--visitors", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--database", default=os.environ.get("BENCH_WEBCHAT_DATABASE", DATABASE))
    args = parser.parse_args()
    f = asyncio.run(run(visitors=args.visitors, seconds=args.seconds, probes=args.probes,
                        database_url=args.database))
    desk, bare = f["desk"], f["bare"]
    print(f"{f['visitors']} visitors connected, {f['seconds']:.0f} s of load, {f['probes']} probes ({f['database']})")
    print(f"desk: {desk['messages_per_s']} messages/s (each through intake), latency p50 {desk['p50_ms']} ms, "
          f"p99 {desk['p99_ms']} ms; under load p50 {desk['loaded_p50_ms']} ms, p99 {desk['loaded_p99_ms']} ms; "
          f"CPU (% of a core): server {desk['server_cpu_pct_of_core']}, database {desk['database_cpu_pct_of_core']}, "
          f"whole machine {desk['machine_busy_pct_of_core']}; server CPU per message "
          f"{desk['server_cpu_ms_per_message']} ms")
    print(f"bare: {bare['messages_per_s']} messages/s (echo), latency p50 {bare['p50_ms']} ms, "
          f"p99 {bare['p99_ms']} ms; under load p50 {bare['loaded_p50_ms']} ms, p99 {bare['loaded_p99_ms']} ms")
    print(f"ratio: {f['ratio']}  added per message: p50 {f['added_p50_ms']} ms, p99 {f['added_p99_ms']} ms")
    print(json.dumps(f))


if __name__ == "__main__":
    main()
