"""The JSON API for routing rules (with a dry run), SLA configuration and reports, holiday notices, and staff
duty."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import yaml
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.errors import BadRequest, PermissionDenied, ValidationFailed
from app.http import DbId, api, path_int, read_json, require_scope
from app.security.scope import Actor
from app.tickets import assignment, holiday_notice, routing, sla, sla_config
from app.tickets import service as tickets
from app.tickets.models import RoutingRuleSet
from app.timeutil import utcnow


def _admin(actor: Actor) -> None:
    require_scope(actor, "admin")
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以修改路由规则和 SLA 配置", code="admin_only")


async def _document_body(request: Request) -> Any:
    """A JSON or YAML body (Content-Type decides; YAML is what `gongdan rules export` writes)."""
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    try:
        return yaml.safe_load(raw.decode("utf-8")) if "yaml" in kind else json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise BadRequest("请求体不是合法的 JSON/YAML", code="malformed_body") from exc


@api
async def get_rules(request: Request, actor: Actor) -> Response:
    """The routing rules in force (add ?format=yaml for the YAML export)."""
    ruleset = await routing.active_rules()
    row = await RoutingRuleSet.filter(id=1).first()
    if request.query_params.get("format") == "yaml":
        return PlainTextResponse(routing.to_yaml(ruleset), media_type="application/yaml; charset=utf-8")
    return JSONResponse({"source": "database" if row else "file", "revision": row.revision if row else None,
                         "document": routing.to_document(ruleset)})


@api
async def put_rules(request: Request, actor: Actor) -> Response:
    """Replace the routing rules (validated; every problem listed in error.details.errors)."""
    _admin(actor)
    ruleset = routing.parse_document(await _document_body(request))
    revision = await routing.store(ruleset=ruleset)
    return JSONResponse({"source": "database", "revision": revision, "document": routing.to_document(ruleset)})


class DryRun(BaseModel):
    text: str = ""
    channel: str = "wechat_mp"
    category: str = ""
    priority: str = "normal"
    customer_id: DbId | None = None
    vip_level: int | None = None
    customer_tags: list[str] | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    #: evaluate as if at this time (ISO 8601; default now)
    at: datetime | None = None
    #: a rule document to try instead of the one in force
    document: dict[str, Any] | None = None


@api
async def dry_run(request: Request, actor: Actor) -> Response:
    """Which rules a sample message would match, and what they would do (nothing is changed)."""
    body = await read_json(request, DryRun)
    ruleset = routing.parse_document(body.document) if body.document is not None else await routing.active_rules()
    customer = None
    if body.customer_id is not None:
        from app.customers.models import Customer

        customer = await Customer.get_or_none(id=body.customer_id)
    facts = await routing.facts_for(category=body.category, text=body.text, channel=body.channel, customer=customer,
                                    fields=body.fields, reason=body.reason, priority=body.priority,
                                    now=body.at or utcnow(), repeat_window_days=ruleset.repeat_window_days)
    if body.vip_level is not None:
        facts.vip_level = body.vip_level
    if body.customer_tags is not None:
        facts.customer_tags = tuple(body.customer_tags)
    decision = await routing.decide(facts=facts, ruleset=ruleset)
    return JSONResponse(decision.to_json())


@api
async def get_sla_config(request: Request, actor: Actor) -> Response:
    """Calendars, SLA policies and group settings."""
    return JSONResponse(await sla_config.export())


@api
async def put_sla_config(request: Request, actor: Actor) -> Response:
    """Import calendars, SLA policies and group settings (by name; others stay)."""
    _admin(actor)
    document = sla_config.parse_document(await _document_body(request))
    return JSONResponse({"stored": await sla_config.store(document=document), **await sla_config.export()})


@api
async def ticket_sla(request: Request, actor: Actor) -> Response:
    """A ticket's SLA: policy, clocks, warnings, breaches and escalations."""
    ticket = await tickets.get(actor=actor, ticket_id=path_int(request, "ticket_id"))
    return JSONResponse(await sla.ticket_sla(ticket=ticket))


@api
async def breaches(request: Request, actor: Actor) -> Response:
    """SLA breaches per group and clock in a period (?since=&until=, ISO 8601; default the last 30 days)."""
    try:
        until = datetime.fromisoformat(request.query_params["until"]) if "until" in request.query_params else utcnow()
        since = (datetime.fromisoformat(request.query_params["since"]) if "since" in request.query_params
                 else until - timedelta(days=30))
    except ValueError as exc:
        raise BadRequest("since/until 应为 ISO 8601 时间", code="invalid_parameter") from exc
    groups = None if actor.group_ids is None else sorted(actor.group_ids)
    return JSONResponse(await sla.breach_report(since=since, until=until, group_ids=groups))


async def _notice_body(request: Request) -> dict[str, Any]:
    """A notice from the body: JSON (the document, or {"text": ..., "year": ...}) or YAML/plain text as is."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("请求体应为 UTF-8 文本", code="invalid_notice",
                               details={"errors": ["请求体不是 UTF-8"]}) from exc
    year_param = request.query_params.get("year")
    try:
        year = int(year_param) if year_param else None
    except ValueError as exc:
        raise ValidationFailed("year 应为整数", code="invalid_notice", details={"errors": ["year 应为整数"]}) from exc
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(text or "null")
        except ValueError as exc:
            raise ValidationFailed("请求体不是合法的 JSON", code="invalid_notice",
                                   details={"errors": ["JSON 格式错误"]}) from exc
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            raw_year = data.get("year", year)
            return holiday_notice.parse(data["text"], year=raw_year if isinstance(raw_year, int) else year)
        return holiday_notice.parse_document(data)
    return holiday_notice.parse(text, year=year)


@api
async def get_notices(request: Request, actor: Actor) -> Response:
    """The imported State Council holiday notices, and the year missing one (if any)."""
    missing = await holiday_notice.missing_notice()
    return JSONResponse({"notices": await holiday_notice.list_notices(),
                         "missing": {"year": missing.year, "message": missing.message} if missing else None})


@api
async def import_notice(request: Request, actor: Actor) -> Response:
    """Import a year's holiday notice (admins; YAML, JSON or the notice's text; replaces that year's notice)."""
    require_scope(actor, "admin")
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以导入节假日通知", code="admin_only")
    document = await _notice_body(request)
    if request.query_params.get("check") in ("1", "true"):
        return JSONResponse({"stored": None, "document": document,
                             "warnings": holiday_notice.law_mismatches(document)})
    name = actor.name if actor.staff_id is None else f"staff:{actor.staff_id}"
    return JSONResponse(await holiday_notice.store(document=document, imported_by=name), status_code=201)


@api
async def calendar_year(request: Request, actor: Actor) -> Response:
    """A year's days off and 调休 working days as the business calendars see them, and where each comes from."""
    return JSONResponse(await holiday_notice.year_view(year=path_int(request, "year")))


class Duty(BaseModel):
    on_duty: bool


@api
async def set_duty(request: Request, actor: Actor) -> Response:
    """Come on or go off duty (yourself; admins and leads for anyone); coming on duty takes waiting tickets."""
    staff_id = path_int(request, "staff_id")
    if staff_id != actor.staff_id and actor.role not in ("admin", "lead") and not actor.is_admin:
        raise PermissionDenied("只能修改自己的值班状态", code="not_yourself")
    body = await read_json(request, Duty)
    assigned = await assignment.set_on_duty(staff_id=staff_id, on_duty=body.on_duty)
    return JSONResponse({"staff_id": staff_id, "on_duty": body.on_duty, "assigned": assigned})


routes = [
    Route("/routing/rules", get_rules, methods=["GET"]),
    Route("/routing/rules", put_rules, methods=["PUT"]),
    Route("/routing/dry-run", dry_run, methods=["POST"]),
    Route("/sla/config", get_sla_config, methods=["GET"]),
    Route("/sla/config", put_sla_config, methods=["PUT"]),
    Route("/sla/breaches", breaches, methods=["GET"]),
    Route("/tickets/{ticket_id}/sla", ticket_sla, methods=["GET"]),
    Route("/calendar/notices", get_notices, methods=["GET"]),
    Route("/calendar/notices", import_notice, methods=["POST"]),
    Route("/calendar/years/{year}", calendar_year, methods=["GET"]),
    Route("/staff/{staff_id}/duty", set_duty, methods=["POST"]),
]
