"""Web processes each listen on their own socket, so connections opened at once spread over all of them."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import listen
from bench.procs import ESTABLISHED, LISTEN, socket_inodes, tcp_sockets

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not listen.AVAILABLE, reason="SO_REUSEPORT is Linux's")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_unpickling_binds_a_socket_of_its_own_on_the_same_address() -> None:
    port = _free_port()
    parent = listen.OwnSockets("127.0.0.1", port)
    assert list(parent) == []  # the parent holds no socket a connection could wait on
    first, second = pickle.loads(pickle.dumps(parent)), pickle.loads(pickle.dumps(parent))
    try:
        assert len(first) == len(second) == 1
        assert first[0].fileno() != second[0].fileno()
        for sock in (*first, *second):
            sock.listen(8)
            assert sock.getsockname() == ("127.0.0.1", port)
        # both listen at once: the kernel hands each new connection to one of them
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        assert pickle.loads(pickle.dumps(first)).port == port  # a child's list pickles the same way
    finally:
        for sock in (*first, *second):
            sock.close()


def test_an_address_held_by_another_listener_is_refused_in_the_parent() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(listen.AddressTaken, match="Address already in use"):
            listen.check_free(host="127.0.0.1", port=taken.getsockname()[1])


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _web_processes(pid: int, port: int) -> list[int]:
    """The supervisor's children that listen on `port` (multiprocessing's resource tracker is a child too)."""
    listening = tcp_sockets(port, state=LISTEN)
    return [child for child in _children(pid) if socket_inodes(child) & listening]


@pytest.mark.e2e
def test_connections_opened_at_once_are_spread_over_both_web_processes(tmp_path: Path) -> None:
    # seen: with one socket shared by two web processes, a client opening its 16 keep-alive connections at once left
    # one process at 84% of a core and the other at 26%, and creates were slower than with one process alone
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))},
           "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite://{tmp_path}/gongdan.sqlite3",
           "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve", "--port",
                                 str(port), "--workers", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while len(_web_processes(proc.pid, port)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(32)]
        for client in clients:
            client.sendall(request)
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200")  # each answered, and kept open
        connections = tcp_sockets(port, state=ESTABLISHED)
        per_process = sorted(len(socket_inodes(child) & connections) for child in _web_processes(proc.pid, port))
        assert sum(per_process) == 32
        # spread by the kernel's hash of each connection: fewer than 6 of 32 on one process, 1 in 9,000 at random
        assert per_process[0] >= 6, per_process
        assert not socket_inodes(proc.pid) & tcp_sockets(port, state=LISTEN), "the supervisor must not listen"
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
