"""Run the simulator (or any ASGI app) with real uvicorn in a background thread (for tests and for ``gongdan run``).

Same idea as httpx's test ``serve_in_thread``: a ``uvicorn.Server`` on its own event loop in a daemon thread,
listening on a socket we bind first so that port 0 (any free port) has no race.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from simulator.app import create_simulator_app
from simulator.state import SimulatorState

__all__ = ["SimulatorServer", "UvicornThread"]


class UvicornThread:
    """Any ASGI app served by real uvicorn in a daemon thread: ``with UvicornThread(app) as s: s.url``."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def _bound(self) -> None:
        """Hook called once the port is known, before serving starts."""

    def start(self, timeout: float = 10.0) -> Self:
        """Bind, start serving in a thread and wait until uvicorn reports it is ready."""
        if self._server is not None:
            raise RuntimeError("already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._bound()
        # a server in a thread must not reconfigure the host process's logging: uvicorn.Config sets its loggers'
        # levels and detaches "uvicorn.access" from the root (and with it from the redaction every line goes
        # through) as a side effect, so their state is put back once the config exists
        loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")]
        kept = {lg.name: (lg.level, lg.propagate, list(lg.handlers)) for lg in loggers}
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False, log_config=None)
        for name, (level, propagate, handlers) in kept.items():
            lg = logging.getLogger(name)
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers = handlers
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-thread"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SimulatorServer(UvicornThread):
    """The simulator on a real port: ``with SimulatorServer(state) as sim: sim.api_base_url``."""

    def __init__(self, state: SimulatorState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or SimulatorState()
        super().__init__(create_simulator_app(self.state), host=host, port=port)

    @property
    def api_base_url(self) -> str:
        """What to give wechatpy as ``API_BASE_URL``."""
        return f"{self.url}/cgi-bin/"

    @property
    def wecom_api_base_url(self) -> str:
        """What to give the WeCom client as ``WECOM_API_BASE`` (WeCom routes live under ``/qyapi/cgi-bin/``)."""
        return f"{self.url}/qyapi/cgi-bin/"

    def _bound(self) -> None:
        self.state.public_base_url = self.url
