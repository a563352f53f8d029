"""A tiny stand-in for the desk's callback endpoint, scripted per test (imported by bare name)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    method: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """Records every request; each one pops the next scripted behaviour (default: answer ``success``)."""

    script: list[dict[str, Any]] = field(default_factory=list)
    reply: Callable[[Received], str | bytes] | None = None
    requests: list[Received] = field(default_factory=list)
    #: set whenever a request arrives (the receiver may run on another thread)
    arrived: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def callback(request: Request) -> Response:
            got = Received(request.method, dict(request.query_params), await request.body(), dict(request.headers))
            self.requests.append(got)
            self.arrived.set()
            if request.method == "GET":
                return PlainTextResponse(request.query_params.get("echostr", ""))
            step = self.script.pop(0) if self.script else {}
            if step.get("delay"):
                await asyncio.sleep(step["delay"])
            if step.get("status"):
                return PlainTextResponse("boom", status_code=step["status"])
            if "body" in step:
                return Response(step["body"], media_type="text/xml")
            if self.reply is not None:
                return Response(self.reply(got), media_type="text/xml")
            return PlainTextResponse("success")

        return Starlette(routes=[Route("/callbacks/wechat", callback, methods=["GET", "POST"])])
