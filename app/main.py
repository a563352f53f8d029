"""create_app(): routes, middleware, and the lifespan that opens the database and the job runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from tortoise import connections

from app import heap, openapi
from app import setup as wiring
from app.assist import endpoints as assist_endpoints
from app.customers import endpoints as customer_endpoints
from app.db import close_db, init_db
from app.errors import DomainError
from app.http import (
    CompressionMiddleware,
    RequestContextMiddleware,
    domain_error_handler,
    http_error_handler,
    unhandled_error_handler,
)
from app.integrations import endpoints as integration_endpoints
from app.kb import endpoints as kb_endpoints
from app.logs import configure_logging, get_logger
from app.outbox import endpoints as outbox_endpoints
from app.repair import endpoints as repair_endpoints
from app.reports import endpoints as report_endpoints
from app.security import endpoints as security_endpoints
from app.settings import Settings, get_settings
from app.tickets import endpoints as ticket_endpoints
from app.tickets import rules_endpoints
from app.webhooks import endpoints as webhook_endpoints
from app.worker import JobRuntime

log = get_logger(__name__)


async def healthz(request: Request) -> Response:
    """Alive."""
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Ready: the database answers, and Redis when it is configured."""
    checks: dict[str, str] = {}
    status = 200
    try:
        await connections.get("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        status = 503
    settings: Settings = request.app.state.settings
    if settings.redis_url:
        try:
            from app.redisconn import async_client

            client = async_client(settings.redis_url)
            try:
                await client.ping()
            finally:
                await client.aclose()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
            status = 503
    return JSONResponse({"status": "ok" if status == 200 else "unavailable", "checks": checks}, status_code=status)


async def openapi_json(request: Request) -> Response:
    """The API description (of every operation mounted under /api/v1)."""
    api = next(r for r in request.app.routes if isinstance(r, Mount) and r.path == "/api/v1")
    return JSONResponse(openapi.build(api.routes))


INDEX_HTML = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>工单 Gongdan</title>
<style>body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;max-width:640px;margin:2em auto;
padding:0 1em;color:#222}a{color:#07c160}li{margin:.4em 0}</style></head><body>
<h1>工单 Gongdan 服务台</h1><p>服务运行中。</p><ul>
<li><a href="/h5/">移动工作台（企业微信）</a></li>
<li><a href="/api/v1/openapi.json">API 文档（OpenAPI）</a></li>
<li><a href="/healthz">健康检查</a></li></ul></body></html>"""


async def index(request: Request) -> Response:
    """A landing page with the ways in."""
    return HTMLResponse(INDEX_HTML)


def _extra_routes() -> list[BaseRoute]:
    """Routes of the channels, the knowledge-base pages and the H5 workbench."""
    from app.channels import endpoints as channel_endpoints

    return [*channel_endpoints.routes, *kb_endpoints.page_routes, *wiring.page_routes()]


async def _ensure_channels(settings: Settings) -> None:
    """Mirror env-configured channel accounts into the database (several processes may race: first one wins)."""
    from tortoise.exceptions import IntegrityError

    from app.channels.wechat_mp.accounts import ensure_env_account

    try:
        await ensure_env_account(settings)
    except IntegrityError:
        log.info("channels.ensure_raced")


def create_app(settings: Settings | None = None, *, run_jobs: bool = True) -> Starlette:
    """Build the ASGI application."""
    settings = settings or get_settings()
    wiring.setup()
    # uvicorn's worker processes (`serve --workers N`) import the app afresh: configure their logging here
    configure_logging(fmt=settings.log_format, level=settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await init_db(settings)
        await _ensure_channels(settings)
        runtime = JobRuntime(settings) if run_jobs else None
        if runtime is not None:
            await runtime.start()
        log.info("app.started", database="mysql" if settings.is_mysql else "sqlite",
                 jobs="arq" if settings.redis_url else "in-process", frozen_objects=heap.settle())
        try:
            yield {}
        finally:
            if runtime is not None:
                await runtime.close()
            await wiring.shutdown()
            await close_db()
            log.info("app.stopped")

    api_routes: list[BaseRoute] = [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *ticket_endpoints.routes,
        *customer_endpoints.routes,
        *rules_endpoints.routes,
        *wiring.api_routes(),
        *kb_endpoints.routes,
        *assist_endpoints.routes,
        *security_endpoints.routes,
        *outbox_endpoints.routes,
        *repair_endpoints.routes,
        *report_endpoints.routes,
        *webhook_endpoints.routes,
        *integration_endpoints.routes,
    ]
    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Mount("/api/v1", routes=api_routes),
        *_extra_routes(),
    ]
    app = Starlette(
        debug=settings.debug,
        routes=routes,
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(CompressionMiddleware, minimum_size=1024, compresslevel=5),
        ],
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: http_error_handler,
            Exception: unhandled_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.page_session = wiring.page_session
    return app
