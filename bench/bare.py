"""The baseline: a bare Starlette app with one JSON route, served by the same uvicorn as the desk.

    python -m app.listen bench.bare:app --workers N   # uvicorn, each web process on its own socket, as the desk
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def ticket(request: Request) -> Response:
    """A small, fixed JSON body, about the size of one ticket's summary."""
    return JSONResponse({"id": 42, "number": "GD-20260101-0042", "subject": "退款还没到账", "status": "open"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/", ticket), Route("/readyz", healthz)])
