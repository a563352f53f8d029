"""The processes a benchmark starts and measures: `gongdan serve`, the bare uvicorn app, one-shot `gongdan` commands.

Everything runs as a child of the benchmark, on a free loopback port, with its output in bench/results/, and is
stopped with SIGTERM (then SIGKILL of its own process group) when the phase is over. CPU time is read from /proc,
so each phase can say how the two cores were shared between the server, MariaDB and the load client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: `gongdan` without an installed console script: the same entry point, from this checkout
GONGDAN = [sys.executable, "-c", "from app.cli import main; main()"]
BENCH_SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_argv(app: str, *, port: int, workers: int) -> list[str]:
    """A baseline ASGI app served as `gongdan serve` serves the desk: uvicorn, each web process on its own socket."""
    return [sys.executable, "-m", "app.listen", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]


def gongdan_env(database_url: str, *, db_pool_size: int = 64, **extra: str) -> dict[str, str]:
    """The environment of a production-like `gongdan` process: no REDIS_URL, so jobs run in-process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GONGDAN_", "REDIS_", "DATABASE_", "DB_"))}
    env.update(
        GONGDAN_ENV="production",
        SECRET_KEY=BENCH_SECRET,
        DATABASE_URL=database_url,
        DB_POOL_SIZE=str(db_pool_size),
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


def gongdan(args: list[str], env: dict[str, str], *, timeout: float = 120) -> str:
    """Run one `gongdan` command to completion and return its standard output."""
    done = subprocess.run([*GONGDAN, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"gongdan {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


class Server:
    """A web server in a child process, ready once `ready_path` answers 200."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], port: int,
                 ready_path: str = "/readyz", log_dir: Path = RESULTS, listeners: int = 1) -> None:
        self.name = name
        #: sockets listening on the port before the load may start: each web process has its own (app.listen), and
        #: connections opened before the last one listens would all land on the others
        self.listeners = listeners
        self.argv = argv
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200 and len(tcp_sockets(self.port, state=LISTEN)) >= self.listeners:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # uvicorn: finish in-flight requests, stop the workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this benchmark created for it
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_lines(self, needle: str) -> int:
        """How many lines of the server's output contain `needle` (e.g. crashed requests)."""
        try:
            return sum(needle in line for line in self.log_path.read_text(errors="replace").splitlines())
        except OSError:
            return 0

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn's workers)."""
        return [] if self.proc is None else descendants(self.proc.pid)


LISTEN = "0A"
ESTABLISHED = "01"


def tcp_sockets(port: int, *, state: str) -> set[int]:
    """Inodes of this machine's IPv4 TCP sockets on local `port` in `state` (LISTEN, ESTABLISHED)."""
    found: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == state:
            found.add(int(cols[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open."""
    found: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces: fields start after its closing parenthesis
    return raw[raw.rindex(")") + 2:].split()


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pids_named(name: str) -> list[int]:
    """Processes whose command name is `name` (e.g. mariadbd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def runqueue_wait_seconds(pids: list[int]) -> float:
    """Time the threads of these processes have spent runnable but waiting for a core, so far (schedstat): a
    process that waits here is short of CPU, not waiting on a lock or a round trip."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def scheduling(groups: dict[str, list[int]]) -> dict[str, Any]:
    """How the kernel shares the cores between these processes. With autogroup scheduling on, every session is a
    group with an equal share whatever its processes' nice values (nice orders only a group's own processes): two
    workers started in sessions of their own get two shares to the web's one, and `nice` on them changes nothing.
    Per group: the distinct (autogroup, its nice) and the processes' own nice values."""
    flag = Path("/proc/sys/kernel/sched_autogroup_enabled")
    out: dict[str, Any] = {"autogroup_enabled": flag.exists() and flag.read_text().strip() == "1"}
    for name, pids in groups.items():
        autogroups: set[str] = set()
        nices: set[int] = set()
        for pid in pids:
            try:
                autogroups.add(" ".join(Path(f"/proc/{pid}/autogroup").read_text().split()))
            except OSError:
                pass
            fields = _stat(pid)
            if fields:
                nices.add(int(fields[16]))  # nice
        out[name] = {"autogroups": sorted(autogroups), "nice": sorted(nices)}
    return out


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    return (sum(values) - values[3] - values[4]) / _TICK


class CpuMeter:
    """CPU used by groups of processes between two readings, as a share of one core, and by the whole machine.

    The machine is shared (other people's tests, installs): `machine_busy_pct_of_core` minus the groups and the
    client shows how much of it went to work that is not this benchmark's.
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start: dict[str, float] = {}
        self.t0 = 0.0
        self.busy0 = 0.0

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.start = {name: cpu_seconds(pids) for name, pids in self.groups.items()}

    def end(self) -> dict[str, Any]:
        wall = max(1e-9, time.monotonic() - self.t0)
        out = {f"{name}_pct_of_core": round(100 * (cpu_seconds(pids) - self.start[name]) / wall, 1)
               for name, pids in self.groups.items()}
        out["machine_busy_pct_of_core"] = round(100 * (machine_busy_seconds() - self.busy0) / wall, 1)
        return out


class CountingQueue:
    """Keeps the jobs the measured steps enqueue (their names counted), running none of them."""

    def __init__(self) -> None:
        self.jobs: Counter[str] = Counter()

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        self.jobs[name] += 1

    async def waiting(self, lane: str) -> int:
        return 0  # nothing runs: nothing waits
