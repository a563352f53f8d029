"""The load client: N keep-alive connections, each sending its next request as soon as the last one is answered.

Run as a process of its own (`python -m bench.load` reads a JSON spec on stdin, writes a JSON result on stdout),
so a phase can use several client processes when one Python process cannot keep up with the server. Requests
start together at the spec's wall-clock `start_at`; only requests that start after the warm-up and finish before
the end of the window are counted. The client reports its own CPU time, so a phase can tell whether the client,
rather than the server, was the limit.

Two engines send the same requests:

- `raw`: a minimal HTTP/1.1 client on asyncio streams (uvloop when installed) that costs the client as little
  CPU as possible, which matters on a 2-core machine where client and server share the cores;
- `httpx`: httpx.AsyncClient, as a typical Python client would.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Spec:
    host: str
    port: int
    #: "get": GET one of `paths` at random; "create": POST /api/v1/tickets with a random customer
    kind: str = "get"
    paths: list[str] = field(default_factory=lambda: ["/"])
    token: str | None = None
    concurrency: int = 16
    start_at: float = 0.0
    warmup_s: float = 1.0
    duration_s: float = 5.0
    engine: str = "raw"
    customer_id_min: int = 1
    customer_id_max: int = 1
    group_id: int | None = None
    category: str = "bench-load"
    seed: int = 0


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    window_s: float = 0.0
    cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms, "errors": self.errors, "statuses": self.statuses,
            "error_samples": self.error_samples, "window_s": self.window_s, "cpu_s": self.cpu_s,
        }


Send = Callable[[str, str, bytes], Awaitable[tuple[int, bytes]]]


class RawConnection:
    """One keep-alive HTTP/1.1 connection; enough protocol for uvicorn's answers (Content-Length or chunked)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = self.reader = None

    async def send(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.fixed}{extra}\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length: int | None = None
        chunked = close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            payload = await self._chunks()
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload, close = await self.reader.read(), True
        if close:
            await self.close()
        return status, payload

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


async def _senders(spec: Spec, headers: dict[str, str]) -> tuple[list[Send], Callable[[], Awaitable[None]]]:
    if spec.engine == "httpx":
        import httpx

        client = httpx.AsyncClient(
            base_url=f"http://{spec.host}:{spec.port}", headers=headers, timeout=30,
            limits=httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency),
        )

        async def send(method: str, path: str, body: bytes) -> tuple[int, bytes]:
            extra = {"content-type": "application/json"} if body else None
            answer = await client.request(method, path, content=body or None, headers=extra)
            return answer.status_code, answer.content

        return [send] * spec.concurrency, client.aclose

    conns = [RawConnection(spec.host, spec.port, headers) for _ in range(spec.concurrency)]
    await asyncio.gather(*(c.open() for c in conns))

    async def close_all() -> None:
        await asyncio.gather(*(c.close() for c in conns))

    return [c.send for c in conns], close_all


async def run(spec: Spec) -> Result:
    """Drive the load described by `spec` and return what was measured."""
    headers = {"Accept": "application/json"}
    if spec.token:
        headers["Authorization"] = f"Bearer {spec.token}"
    senders, close = await _senders(spec, headers)
    result = Result()
    # one clock for the whole process: the shared wall-clock start, translated to perf_counter
    origin = time.perf_counter() + (spec.start_at - time.time())
    window_start = origin + spec.warmup_s
    window_end = window_start + spec.duration_s
    expected = 201 if spec.kind == "create" else 200
    rng = random.Random(spec.seed)
    counter = 0

    def request() -> tuple[str, str, bytes]:
        nonlocal counter
        if spec.kind == "create":
            counter += 1
            body = {"customer_id": rng.randint(spec.customer_id_min, spec.customer_id_max),
                    "subject": f"压测工单 {spec.seed}-{counter}: 快递三天没有更新物流信息",
                    "description": "客户来电反映物流停滞, 请跟进。", "category": spec.category,
                    "group_id": spec.group_id, "priority": "normal"}
            return "POST", "/api/v1/tickets", json.dumps(body, ensure_ascii=False).encode()
        return "GET", rng.choice(spec.paths), b""

    async def worker(send: Send) -> None:
        while True:
            started = time.perf_counter()
            if started >= window_end:
                return
            method, path, body = request()
            try:
                status, payload = await send(method, path, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                status, payload = 0, repr(exc).encode()
            except Exception as exc:  # httpx's own errors
                status, payload = 0, repr(exc).encode()
            finished = time.perf_counter()
            if started < window_start or finished > window_end:
                continue
            key = str(status)
            result.statuses[key] = result.statuses.get(key, 0) + 1
            if status == expected:
                result.latencies_ms.append(round((finished - started) * 1000, 3))
            else:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{status} {payload[:300].decode(errors='replace')}")

    async def cpu_clock() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.cpu_s = round(time.process_time() - c0, 3)
        result.window_s = round(time.perf_counter() - t0, 3)

    await asyncio.sleep(max(0.0, origin - time.perf_counter()))
    try:
        await asyncio.gather(cpu_clock(), *(worker(s) for s in senders))
    finally:
        await close()
    return result


def run_in_loop(spec: Spec) -> Result:
    """Run on uvloop when it is installed (as uvicorn does), else on asyncio's default loop."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run(spec))


def main() -> None:
    spec = Spec(**json.loads(sys.stdin.read()))
    json.dump(run_in_loop(spec).as_dict(), sys.stdout)


if __name__ == "__main__":
    main()
