"""Several web processes, each listening on a socket of its own (SO_REUSEPORT) so the kernel spreads connections.

uvicorn's `--workers` binds one socket in the parent and every child accepts from it. A process woken for a new
connection accepts all that are waiting (asyncio accepts up to the backlog a wake-up), so a load balancer or a
client that opens its keep-alive pool at once lands most of it on one process: measured on two cores with 16
connections, one web process at 84% of a core and the other at 26%, creates 10% slower than one process alone.
With SO_REUSEPORT each process has its own listening socket and the kernel hashes each new connection to one of
them.

uvicorn's supervisor is kept (restart of a dead child, SIGHUP, SIGTTIN/SIGTTOU): it hands every child it starts the
same `sockets` object, pickled for the spawned process. `OwnSockets` pickles as the address, and unpickling binds
a new socket in the child: each child, a restarted one too, gets its own. The parent never listens, so no
connection waits on a socket nobody accepts from.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

#: SO_REUSEPORT with the kernel's balancing between listeners: Linux (3.9+); elsewhere the shared socket is used
AVAILABLE = hasattr(socket, "SO_REUSEPORT") and socket.SO_REUSEPORT != 0


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _in_child(host: str, port: int) -> OwnSockets:
    """Unpickling in a spawned web process: a socket of its own, listened on by uvicorn's server."""
    return OwnSockets(host, port, [_bound(host, port)])


class OwnSockets(list[socket.socket]):
    """The `sockets` uvicorn's supervisor hands each child: empty in the parent, one new socket in each child."""

    def __init__(self, host: str, port: int, sockets: list[socket.socket] | None = None) -> None:
        super().__init__(sockets or [])
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, ...]:
        return (_in_child, (self.host, self.port))


class AddressTaken(Exception):
    """Another process listens on the address (without SO_REUSEPORT, or as another user)."""


def check_free(*, host: str, port: int) -> None:
    """Fail now, in the parent, when the address is taken (each child would otherwise fail on its own)."""
    try:
        _bound(host, port).close()
    except OSError as exc:
        raise AddressTaken(f"{host}:{port}: {exc.strerror or exc}") from None


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve the ASGI app `module:attribute` with uvicorn in `workers` processes, each on its own socket."""
    import uvicorn

    if workers == 1 or not AVAILABLE:
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    from uvicorn.supervisors import Multiprocess

    check_free(host=host, port=port)
    Multiprocess(uvicorn.Config(app, host=host, port=port, workers=workers, **options),
                 sockets=OwnSockets(host, port)).run()


def main(argv: list[str] | None = None) -> None:
    """`python -m app.listen module:app --port N --workers N`: the benchmarks' baselines, served as the desk is."""
    p = argparse.ArgumentParser(prog="python -m app.listen")
    p.add_argument("app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    serve(args.app, host=args.host, port=args.port, workers=args.workers, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
