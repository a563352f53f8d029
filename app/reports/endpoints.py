"""The reports JSON API under /api/v1/reports: sections of figures, the tickets behind a segment, lost callbacks,
and exports. Every answer comes from `app.reports.service`, so the console pages and the API show the same numbers
with the same scope (admins and leads see their scope, agents only their own figures)."""

from __future__ import annotations

import os
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.errors import BadRequest, NotFound
from app.http import MAX_ID, api, query_int
from app.openapi import INT, NUM, OBJ, STR, items_of, nullable, obj, ok, op, query
from app.reports import export, service
from app.reports.service import SECTIONS, Drill, ReportFilter
from app.security.scope import Actor

MAX_PAGE = 200
MAX_OFFSET = 100_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@api
async def list_sections(request: Request, actor: Actor) -> Response:
    """The report sections, in display order."""
    return JSONResponse({"items": [{"key": k, "title": t} for k, t in SECTIONS]})


@api
async def get_section(request: Request, actor: Actor) -> Response:
    """One section's figures (each with the previous period), series and tables."""
    name = request.path_params["section"]
    if name not in dict(SECTIONS):
        raise NotFound("没有这个报表", code="unknown_report")
    flt = ReportFilter.from_params(request.query_params)
    return JSONResponse(service.to_json(await service.section(actor=actor, flt=flt, name=name)))


def _page(request: Request) -> tuple[int, int]:
    limit = query_int(request, "limit", 50) or 50
    offset = query_int(request, "offset", 0) or 0
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"limit 为 1 到 {MAX_PAGE}，offset 为 0 到 {MAX_OFFSET}", code="invalid_parameter")
    return limit, offset


@api
async def get_drill(request: Request, actor: Actor) -> Response:
    """The tickets (or conversations) behind a figure or a chart segment, newest first."""
    drill = Drill.from_params(request.query_params)
    limit, offset = _page(request)
    page = await service.drill_page(actor=actor, drill=drill, limit=limit, offset=offset)
    return JSONResponse({"total": page.total, "items": service.to_json(page.rows), "drill": drill.to_params()})


@api
async def get_lost_inbound(request: Request, actor: Actor) -> Response:
    """Callbacks that failed or still wait (received in the period), newest first."""
    flt = ReportFilter.from_params(request.query_params)
    limit, _ = _page(request)
    rows = await service.lost_inbound(actor=actor, flt=flt, limit=limit)
    return JSONResponse({"items": service.to_json(rows)})


@api
async def get_export(request: Request, actor: Actor) -> Response:
    """Download the rows behind a drill: ?format=csv (streamed) or xlsx, one row per ticket or conversation."""
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("format 必须是 csv 或 xlsx", code="invalid_parameter")
    drill = Drill.from_params(request.query_params)
    service.drill_scope(actor, drill)  # refuse (403) before a byte is sent
    disposition = {"Content-Disposition": f'attachment; filename="{export.filename(drill, fmt)}"'}
    if fmt == "csv":
        return StreamingResponse(export.csv_chunks(actor=actor, drill=drill), media_type="text/csv; charset=utf-8",
                                 headers=disposition)
    path = await export.xlsx_file(actor=actor, drill=drill)
    return FileResponse(path, media_type=XLSX, headers=disposition, background=BackgroundTask(os.unlink, path))


routes = [
    Route("/reports", list_sections, methods=["GET"]),
    Route("/reports/drill", get_drill, methods=["GET"]),
    Route("/reports/lost-inbound", get_lost_inbound, methods=["GET"]),
    Route("/reports/export", get_export, methods=["GET"]),
    Route("/reports/{section}", get_section, methods=["GET"]),
]


# ---- OpenAPI (picked up by app.openapi from the mounted routes) ------------------------------------------------

_DATE: dict[str, Any] = {"type": "string", "format": "date"}
_ID: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_FILTER = [
    query("from", _DATE, "first local day (Asia/Shanghai), default 6 days before `to`"),
    query("to", _DATE, "last local day, default today; at most 400 days"),
    query("channel", {"type": "string", "pattern": "^[a-z0-9_]{1,32}$"}, "channel kind: wechat_mp, wecom_kf, ..."),
    query("group", _ID, "skill group id"),
    query("agent", _ID, "staff id (agents may give only their own)"),
]
_BOOL01: dict[str, Any] = {"enum": ["0", "1"]}
_DRILL = [
    *_FILTER,
    query("kind", {"enum": ["ticket", "conversation"]}, "tickets (default) or conversations"),
    query("basis", {"enum": ["created", "resolved", "rated"]}, "which day the period filters (default created)"),
    query("reason", {"enum": list(service.REASON_LABELS)}, "conversion reason"),
    query("hour", {"type": "integer", "minimum": 0, "maximum": 23}, "local hour of creation"),
    query("weekday", {"type": "integer", "minimum": 1, "maximum": 7}, "ISO weekday of creation"),
    query("csat", {"type": "integer", "minimum": 1, "maximum": 5}, "rating"),
    query("policy", _ID, "SLA policy id"),
    query("clock", {"enum": list(service.CLOCK_FIELDS)}, "SLA clock"),
    query("sla", {"enum": ["met", "breached"]}, "SLA outcome"),
    query("escalated", _BOOL01, "escalated at least once"),
    query("reopened", _BOOL01, "reopened at least once"),
    query("handoff", {"enum": [*service.HANDOFF_LABELS, "none"]}, "bot hand-off reason; none: the bot answered"),
    query("backlog", _BOOL01, "still open"),
    query("age", {"enum": [a[0] for a in service.AGE_BUCKETS]}, "backlog age bucket"),
]
_PAGE = [query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "page size"),
         query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, "rows to skip")]
_DRILL_OUT = {"type": "object", "additionalProperties": STR}


def _arr(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


_FIGURE = obj({"key": STR, "label": STR, "unit": STR, "value": nullable(NUM), "previous": nullable(NUM),
               "change": nullable(NUM), "change_ratio": nullable(NUM), "numerator": nullable(NUM),
               "denominator": nullable(NUM), "drill": nullable(_DRILL_OUT)})
_POINT = obj({"key": STR, "label": STR, "value": nullable(NUM), "drill": nullable(_DRILL_OUT),
              "previous": nullable(NUM)})
_SERIES = obj({"key": STR, "label": STR, "unit": STR, "kind": STR, "points": _arr(_POINT)})
_TABLE = obj({"key": STR, "label": STR, "columns": {"type": "array", "items": {"type": "array"}},
              "rows": {"type": "array", "items": OBJ}})
_SECTION = obj({"key": STR, "title": STR, "filter": _DRILL_OUT, "figures": _arr(_FIGURE),
                "series": _arr(_SERIES), "tables": _arr(_TABLE)})
_ROW = obj({"ticket_id": nullable(INT), "number": nullable(STR), "conversation_id": nullable(INT), "channel": STR,
            "group_id": nullable(INT), "agent_id": nullable(INT), "status": STR, "created_at": STR,
            "resolved_at": nullable(STR), "frt_business": nullable(INT), "resolution_business": nullable(INT),
            "csat": nullable(INT), "reason": STR})
_LOST = obj({"id": INT, "account_id": nullable(INT), "channel": STR, "status": STR, "attempts": INT, "error": STR,
             "received_at": STR})

OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/reports": {
        "get": op("The report sections, in display order",
                  {200: ok(items_of(obj({"key": STR, "title": STR})))}),
    },
    "/reports/{section}": {
        "get": op("One report section: figures with the previous period's value and the change, chart series and "
                  "tables; every segment carries the drill parameters of its tickets",
                  {200: ok(_SECTION)}, errors=(400, 403, 404), params=[
                      {"name": "section", "in": "path", "required": True, "description": "section key",
                       "schema": {"enum": [k for k, _ in SECTIONS]}}, *_FILTER]),
    },
    "/reports/drill": {
        "get": op("The tickets (or conversations) behind a figure or a chart segment, newest first",
                  {200: ok(items_of(_ROW, total=INT, drill=_DRILL_OUT))},
                  errors=(400, 403), params=[*_DRILL, *_PAGE]),
    },
    "/reports/lost-inbound": {
        "get": op("Callbacks received in the period that failed or still wait after ten minutes (admins, leads)",
                  {200: ok(items_of(_LOST))}, errors=(400, 403), params=[*_FILTER, _PAGE[0]]),
    },
    "/reports/export": {
        "get": op("Export the rows behind a drill, one per ticket or conversation (CSV streamed, or xlsx)",
                  {200: {"description": "the file", "content": {
                      "text/csv; charset=utf-8": {"schema": STR}, XLSX: {"schema": STR}}}},
                  errors=(400, 403), params=[*_DRILL, query("format", {"enum": ["csv", "xlsx"]}, "csv (default)")]),
    },
}

__all__ = ["OPENAPI_PATHS", "routes"]
