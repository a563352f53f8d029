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

Request kinds: "get" and "create" make their requests up as they go; "replay" sends pre-generated requests from
`replay_file` (JSON lines `{"method", "path", "body", "content_type"}`, the path with its query string, the body as
UTF-8 text) in file order across the connections, each exactly once, and stops when the file is exhausted; an
answer counts as OK when it is 200 with the body `success` (a WeChat callback's acknowledgement). When the file
runs out inside the window, the window is cut at the last counted answer and `exhausted` says so.
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
    #: "get": GET one of `paths` at random; "create": POST /api/v1/tickets with a random customer; "replay": the
    #: requests of `replay_file`, each once, in order (see the module docstring)
    kind: str = "get"
    paths: list[str] = field(default_factory=lambda: ["/"])
    token: str | None = None
    concurrency: int = 16
    start_at: float = 0.0
    warmup_s: float = 1.0
    duration_s: float = 5.0
    engine: str = "raw"
    #: what real clients send (httpx's default; browsers add br): the desk's GZipMiddleware then compresses
    #: answers over 1 KiB, which is part of the cost of serving them
    accept_encoding: str = "gzip, deflate"
    customer_id_min: int = 1
    customer_id_max: int = 1
    group_id: int | None = None
    category: str = "bench-load"
    seed: int = 0
    replay_file: str | None = None
    #: "replay" only: requests per second this client starts at most (0: as fast as answers come back), the n-th
    #: request of the file no earlier than start_at + n / rate (a paced burst rather than a closed loop)
    rate: float = 0.0
    #: "replay" only: report each request's wall-clock send and answer times, in file order
    record_times: bool = False


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    window_s: float = 0.0
    cpu_s: float = 0.0
    #: "replay" only: the file ran out before the end of the window (window_s then ends at the last answer)
    exhausted: bool = False
    #: "replay" only: requests taken from the file (warm-up included)
    sent: int = 0
    #: "replay" with record_times: [file line, sent at, answered at (0: failed)] wall-clock, per request
    times: list[list[float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms, "errors": self.errors, "statuses": self.statuses,
            "error_samples": self.error_samples, "window_s": self.window_s, "cpu_s": self.cpu_s,
            "exhausted": self.exhausted, "sent": self.sent, "times": self.times,
        }


JSON = "application/json"
#: (method, path, body, content type)
Request = tuple[str, str, bytes, str]
Send = Callable[[str, str, bytes, str], Awaitable[tuple[int, bytes]]]
#: forget a connection after an error; the next request opens a new one
Reset = Callable[[], Awaitable[None]]


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

    async def send(self, method: str, path: str, body: bytes, content_type: str = JSON) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        extra = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n" if body else ""
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
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


#: pause between opening two connections: a burst of connects all lands on one uvicorn worker (measured: 16/0 of
#: 16 with no pause, 8/8 with 2 ms), which would halve a multi-worker server's capacity in the benchmark
CONNECT_STAGGER_S = 0.005


async def _senders(spec: Spec, headers: dict[str, str]) -> tuple[list[tuple[Send, Reset]],
                                                                 Callable[[], Awaitable[None]]]:
    """One sender per connection, every connection opened (one after another) before the load starts."""
    if spec.engine == "httpx":
        import httpx

        clients = []
        for _ in range(spec.concurrency):
            client = httpx.AsyncClient(base_url=f"http://{spec.host}:{spec.port}", headers=headers, timeout=30,
                                       limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            await client.get("/readyz")  # opens this client's one connection
            clients.append(client)
            await asyncio.sleep(CONNECT_STAGGER_S)

        def sender(client: httpx.AsyncClient) -> Send:
            async def send(method: str, path: str, body: bytes, content_type: str = JSON) -> tuple[int, bytes]:
                extra = {"content-type": content_type} if body else None
                answer = await client.request(method, path, content=body or None, headers=extra)
                return answer.status_code, answer.content

            return send

        async def close_clients() -> None:
            await asyncio.gather(*(c.aclose() for c in clients))

        async def keep() -> None:  # httpx's pool replaces a broken connection by itself
            return None

        return [(sender(c), keep) for c in clients], close_clients

    conns = [RawConnection(spec.host, spec.port, headers) for _ in range(spec.concurrency)]
    for conn in conns:
        await conn.open()
        await asyncio.sleep(CONNECT_STAGGER_S)

    async def close_all() -> None:
        await asyncio.gather(*(c.close() for c in conns))

    return [(c.send, c.close) for c in conns], close_all


async def run(spec: Spec) -> Result:
    """Drive the load described by `spec` and return what was measured."""
    headers = {"Accept": "application/json", "Accept-Encoding": spec.accept_encoding}
    if spec.token:
        headers["Authorization"] = f"Bearer {spec.token}"
    replay = iter(read_replay(spec.replay_file)) if spec.kind == "replay" else None
    senders, close = await _senders(spec, headers)
    result = Result()
    # one clock for the whole process: the shared wall-clock start, translated to perf_counter
    origin = time.perf_counter() + (spec.start_at - time.time())
    window_start = origin + spec.warmup_s
    window_end = window_start + spec.duration_s
    expected = 201 if spec.kind == "create" else 200
    rng = random.Random(spec.seed)
    counter = 0
    #: "replay": when the last counted answer arrived, where the window ends if the file runs out
    last_counted = window_start

    def request() -> Request | None:
        nonlocal counter
        if replay is not None:
            item = next(replay, None)
            if item is None:
                result.exhausted = True
            else:
                result.sent += 1
            return item
        if spec.kind == "create":
            counter += 1
            body = {"customer_id": rng.randint(spec.customer_id_min, spec.customer_id_max),
                    "subject": f"压测工单 {spec.seed}-{counter}: 快递三天没有更新物流信息",
                    "description": "客户来电反映物流停滞, 请跟进。", "category": spec.category,
                    "group_id": spec.group_id, "priority": "normal"}
            return "POST", "/api/v1/tickets", json.dumps(body, ensure_ascii=False).encode(), JSON
        return "GET", rng.choice(spec.paths), b"", JSON

    def ok(status: int, payload: bytes) -> bool:
        return status == expected and (replay is None or payload == b"success")

    async def worker(send: Send, reset: Reset) -> None:
        nonlocal last_counted
        while True:
            started = time.perf_counter()
            if started >= window_end:
                return
            next_request = request()
            if next_request is None:
                return
            line = result.sent - 1
            if spec.rate > 0:
                await asyncio.sleep(max(0.0, origin + line / spec.rate - time.perf_counter()))
                started = time.perf_counter()
            method, path, body, content_type = next_request
            try:
                status, payload = await send(method, path, body, content_type)
            except Exception as exc:  # reset, refused, a malformed answer, httpx's own errors
                status, payload = 0, repr(exc).encode()
                await reset()
            finished = time.perf_counter()
            if spec.record_times:
                wall = time.time() - time.perf_counter()
                result.times.append([line, round(started + wall, 4),
                                     round(finished + wall, 4) if ok(status, payload) else 0.0])
            if started < window_start or finished > window_end:
                continue
            key = str(status)
            result.statuses[key] = result.statuses.get(key, 0) + 1
            last_counted = max(last_counted, finished)
            if ok(status, payload):
                result.latencies_ms.append(round((finished - started) * 1000, 3))
            else:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{status} {payload[:300].decode(errors='replace')}")

    async def cpu_clock() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        finally:  # cancelled when a replay file runs out: the window is what was measured until then
            result.cpu_s = round(time.process_time() - c0, 3)
            result.window_s = round(time.perf_counter() - t0, 3)

    await asyncio.sleep(max(0.0, origin - time.perf_counter()))
    # uvloop's timers are in milliseconds and may wake a fraction of one early: with no warm-up the first request of
    # every connection would then start before the window and go uncounted (20 posts counted as 16)
    while time.perf_counter() < origin:  # noqa: ASYNC110 - under a millisecond; no event marks a clock time
        await asyncio.sleep(0)
    clock = asyncio.create_task(cpu_clock())
    try:
        await asyncio.gather(*(worker(send, reset) for send, reset in senders))
        if result.exhausted and not clock.done():
            clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
    finally:
        await close()
    if result.exhausted:
        result.window_s = round(max(0.0, min(result.window_s, last_counted - window_start)), 3)
    return result


def read_replay(path: str | None) -> list[Request]:
    """The requests of a replay file (JSON lines: method, path, body, content_type), in file order."""
    if not path:
        raise ValueError("kind 'replay' needs replay_file")
    out: list[Request] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                out.append((item.get("method", "POST"), item["path"], item.get("body", "").encode("utf-8"),
                            item.get("content_type") or JSON))
    return out


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
