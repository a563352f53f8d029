"""Webhook delivery figures: signed deliveries per second through the outbox, beside a bare baseline.

    python -m bench.webhooks [--events 2000] [--concurrency 16]

A receiver (starlette on uvicorn in a thread) verifies every Standard Webhooks signature. The desk side runs on an
in-memory SQLite database: `--events` events are published to one subscription (one delivery and one outbox row
each), then delivered by `deliver_outbox` with `--concurrency` deliveries at a time (claim, load, sign, POST,
record the attempt). The baseline POSTs the same bodies to the same receiver with plain httpx (a client per
request with the shared TLS context, as the adapter does), unsigned and without a database. Only figures of one
run compare: the VM's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tortoise import Tortoise

from app.db import MODEL_MODULES
from app.outbox.jobs import deliver_outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.setup import setup
from app.uow import atomic
from app.webhooks import service
from app.webhooks.outbound import tls_context
from simulator.server import UvicornThread


@dataclass
class Receiver:
    secret: str = ""
    verify: bool = True
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            if self.verify:
                Webhook(self.secret).verify(body, dict(request.headers))
            with self.lock:
                self.received += 1
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def _gather_limited(coros: list[Any], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def run(*, events: int, concurrency: int) -> dict[str, Any]:
    """Measure both sides; returns the figures."""
    setup()
    await Tortoise.init(db_url="sqlite://:memory:", modules={"gongdan": MODEL_MODULES})
    await Tortoise.generate_schemas()
    receiver = Receiver()
    try:
        with UvicornThread(receiver.app()) as server:
            url = f"{server.url}/hook"
            _sub, receiver.secret = await service.create(actor=SYSTEM, url=url, events=["ticket.created"])
            async with atomic():
                for n in range(events):
                    await service.publish(event="ticket.created", data={"ticket": {"id": n, "subject": "测试"}})
            ids = [r.id for r in await OutboxMessage.filter(channel="webhook").order_by("id")]
            started = time.perf_counter()
            results = await _gather_limited([deliver_outbox({}, i) for i in ids], concurrency)
            desk_s = time.perf_counter() - started
            assert results.count("sent") == events and receiver.received == events, (results[:3], receiver.received)

            receiver.verify, receiver.received = False, 0
            body = json.dumps({"type": "ticket.created", "data": {"ticket": {"id": 0, "subject": "测试"}}},
                              ensure_ascii=False).encode()

            async def bare() -> int:
                async with httpx.AsyncClient(timeout=10, verify=tls_context()) as client:
                    return (await client.post(url, content=body)).status_code

            started = time.perf_counter()
            codes = await _gather_limited([bare() for _ in range(events)], concurrency)
            bare_s = time.perf_counter() - started
            assert codes.count(200) == events
    finally:
        await Tortoise.close_connections()
    desk_rate, bare_rate = events / desk_s, events / bare_s
    return {"events": events, "concurrency": concurrency, "deliveries_per_s": round(desk_rate, 1),
            "bare_posts_per_s": round(bare_rate, 1), "ratio": round(desk_rate / bare_rate, 3),
            "added_ms_per_delivery": round((desk_s - bare_s) / events * 1000 * concurrency, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    figures = asyncio.run(run(events=args.events, concurrency=args.concurrency))
    print(f"webhook deliveries/s (signed, through the outbox, SQLite): {figures['deliveries_per_s']}")
    print(f"bare httpx POSTs/s to the same receiver:                   {figures['bare_posts_per_s']}")
    print(f"ratio: {figures['ratio']}  added per delivery: {figures['added_ms_per_delivery']} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
