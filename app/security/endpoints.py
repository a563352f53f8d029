"""The audit-log API under /api/v1/audit (admins only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http import FastJSONResponse, api_scope, parse_time, query_int
from app.security import audit
from app.security.scope import Actor


@api_scope("admin")
async def list_audit(request: Request, actor: Actor) -> Response:
    """Read the audit log, newest first: filter by ticket_id, actor_id, action, object_type, since, until (cursor
    pagination; admins only)."""
    params = request.query_params
    page = await audit.list_entries(
        actor=actor,
        ticket_id=query_int(request, "ticket_id"),
        staff_id=query_int(request, "actor_id"),
        action=(params.get("action") or "")[:32] or None,
        cursor=params.get("cursor") or None,
        limit=query_int(request, "limit", 50) or 50,
        object_type=(params.get("object_type") or "")[:32] or None,
        since=parse_time(params.get("since"), "since"),
        until=parse_time(params.get("until"), "until"),
    )
    return FastJSONResponse({"items": await audit.serialize(page.items), "next_cursor": page.next_cursor})


@api_scope("admin")
async def verify_audit(request: Request, actor: Actor) -> Response:
    """Prove the audit log's hash chain intact, or name the first broken row (admins only)."""
    report = await audit.verify_chain(actor=actor)
    return FastJSONResponse(report.as_dict())


routes = [Route("/audit", list_audit, methods=["GET"]), Route("/audit/verify", verify_audit, methods=["GET"])]
