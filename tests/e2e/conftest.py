"""End-to-end tier: `gongdan serve` as a real uvicorn process (and `gongdan worker` processes with Redis), the
simulator in a thread of the test process playing WeChat on both sides.

Two deployments: embedded (SQLite, jobs in-process) and production-like (MariaDB, Redis, an arq worker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer, SimulatorState, WeChatDriver
from tests.conftest import IN_CI, redis_url_or_skip

ROOT = Path(__file__).resolve().parents[2]
APPID = "wxe2e0000000000001"
SECRET = "e2e-secret-0123456789abcdef"
TOKEN = "gongdane2e"
AES_KEY = "E2eAesKey0123456789abcdefghijklmnopqrstuvwx"
TEMPLATE_ID = "TPL_e2e_ticket_update"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gongdan(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `gongdan` CLI command to completion."""
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=check)


def spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)


@dataclass
class Desk:
    url: str
    env: dict[str, str]
    token: str
    sim: SimulatorState
    driver: WeChatDriver
    kind: str
    logs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> Any:
        """Poll until predicate() returns something truthy (the desk works asynchronously)."""
        return poll_until(predicate, timeout=timeout, interval=0.1, logs=self.logs)

    def tail(self) -> str:
        return tail_logs(self.logs)


def tail_logs(logs: list[Path]) -> str:
    """The end of each process log, for an assertion message."""
    return "\n".join(f"== {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in logs if p.exists())


def poll_until(predicate: Any, *, timeout: float, interval: float, logs: list[Path]) -> Any:
    """Poll until predicate() returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; desk logs:\n" + tail_logs(logs))


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"desk exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"desk not ready:\n{log.read_text(errors='replace')[-3000:]}")


def _mysql_database(name: str) -> str:
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI and is unreachable: {exc}")
        pytest.skip(f"MariaDB not reachable: {exc}")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    return f"mysql://root:@127.0.0.1:3306/{name}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp(f"desk-{request.param}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim_state = SimulatorState(template_job_finish=False)
    account = sim_state.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, callback_url=f"{url}/callbacks/wechat",
                                       mode="safe")
    server = SimulatorServer(sim_state).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_"))},
        "GONGDAN_ENV": "production",
        "SECRET_KEY": "e2e-secret-key-0123456789-abcdefghijklmnop",
        "DATA_DIR": str(tmp / "data"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PUBLIC_URL": url,
        "WECHAT_API_BASE": server.api_base_url,
        "WECHAT_APP_ID": APPID,
        "WECHAT_APP_SECRET": SECRET,
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_AES_KEY": AES_KEY,
        "WECHAT_TEMPLATE_ID": TEMPLATE_ID,
        "PYTHONPATH": str(ROOT),
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    if request.param == "sqlite":
        env["DATABASE_URL"] = f"sqlite://{tmp}/gongdan.sqlite3"
    else:
        env["DATABASE_URL"] = _mysql_database(f"gongdan_e2e_{os.getpid()}")
        redis_url = redis_url_or_skip().rsplit("/", 1)[0] + "/14"
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env["REDIS_URL"] = redis_url
        env["DB_POOL_SIZE"] = "10"
    gongdan(env, "migrate")
    gongdan(env, "seed-demo")
    token = gongdan(env, "token", "create", "--staff", "admin").stdout.strip()
    log = tmp / "serve.log"
    logs.append(log)
    serve = spawn(env, "serve", "--port", str(port), log=log)
    procs.append(serve)
    try:
        _wait_ready(url, serve, log)
        if request.param == "mysql":
            wlog = tmp / "worker.log"
            logs.append(wlog)
            procs.append(spawn(env, "worker", log=wlog))
        driver = WeChatDriver(sim_state, account, f"{url}/callbacks/wechat")
        yield Desk(url=url, env=env, token=token, sim=sim_state, driver=driver, kind=request.param, logs=logs,
                   procs=procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
