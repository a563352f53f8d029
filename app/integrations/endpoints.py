"""The events API (POST /api/v1/events, token scope "events") and the event rules (/api/v1/event-rules, admins
with the admin scope)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http import FastJSONResponse, api_scope, path_int, read_json
from app.integrations import events, idempotency
from app.integrations.schemas import EventIn, EventRuleIn, EventRulePatch
from app.openapi import (
    BOOL,
    IDEMPOTENCY_KEY,
    INT,
    OBJ,
    STR,
    STRS,
    items_of,
    model_body,
    nullable,
    obj,
    ok,
    op,
    path_id,
)
from app.security.scope import Actor


@api_scope("events")
async def post_event(request: Request, actor: Actor) -> Response:
    """Take a business event; matching rules open a proactive ticket and/or message the customer."""

    async def handle() -> Response:
        body = await read_json(request, EventIn)
        return FastJSONResponse(await events.receive(actor=actor, body=body), status_code=201)

    return await idempotency.run(request, actor, endpoint="events", handler=handle)


@api_scope("admin")
async def list_rules(request: Request, actor: Actor) -> Response:
    """Every event rule."""
    return FastJSONResponse({"items": [events.serialize_rule(r) for r in await events.list_rules(actor=actor)]})


@api_scope("admin")
async def create_rule(request: Request, actor: Actor) -> Response:
    """Add an event rule."""
    body = await read_json(request, EventRuleIn)
    return FastJSONResponse(events.serialize_rule(await events.create_rule(actor=actor, body=body)), status_code=201)


@api_scope("admin")
async def get_rule(request: Request, actor: Actor) -> Response:
    """One event rule."""
    rule = await events.get_rule(actor=actor, rule_id=path_int(request, "rule_id"))
    return FastJSONResponse(events.serialize_rule(rule))


@api_scope("admin")
async def patch_rule(request: Request, actor: Actor) -> Response:
    """Change an event rule."""
    body = await read_json(request, EventRulePatch)
    rule = await events.update_rule(actor=actor, rule_id=path_int(request, "rule_id"), body=body)
    return FastJSONResponse(events.serialize_rule(rule))


@api_scope("admin")
async def delete_rule(request: Request, actor: Actor) -> Response:
    """Remove an event rule."""
    await events.delete_rule(actor=actor, rule_id=path_int(request, "rule_id"))
    return Response(status_code=204)


routes = [
    Route("/events", post_event, methods=["POST"]),
    Route("/event-rules", list_rules, methods=["GET"]),
    Route("/event-rules", create_rule, methods=["POST"]),
    Route("/event-rules/{rule_id}", get_rule, methods=["GET"]),
    Route("/event-rules/{rule_id}", patch_rule, methods=["PATCH"]),
    Route("/event-rules/{rule_id}", delete_rule, methods=["DELETE"]),
]

_RULE = obj({"id": INT, "name": STR, "event_type": STR, "conditions": {"type": "array", "items": OBJ},
             "action": STR, "subject": STR, "description": STR, "message": STR, "priority": nullable(STR),
             "category": STR, "tags": STRS, "active": BOOL})
_RESULT = obj({"rule_id": INT, "ticket_id": nullable(INT), "ticket_number": nullable(STR),
               "message": nullable(STR)})
_EVENT = obj({"id": INT, "type": STR, "customer_id": INT, "results": {"type": "array", "items": _RESULT}})
_RULE_ID = path_id("rule_id", "event rule id")
OPENAPI_MODELS: list[type[BaseModel]] = [EventIn, EventRuleIn, EventRulePatch]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/events": {
        "post": op("Take a business event (token scope events): upsert the customer by any identity; matching "
                   "rules open a proactive ticket and/or message the customer",
                   {201: ok(_EVENT, "received")}, errors=(403, 404, 409), params=[IDEMPOTENCY_KEY],
                   body=model_body(EventIn)),
    },
    "/event-rules": {
        "get": op("Every business-event rule (admin scope)", {200: ok(items_of(_RULE))}, errors=(403,)),
        "post": op("Add a business-event rule (admin scope)", {201: ok(_RULE, "created")}, errors=(403,),
                   body=model_body(EventRuleIn)),
    },
    "/event-rules/{rule_id}": {
        "get": op("One business-event rule", {200: ok(_RULE)}, errors=(403, 404), params=[_RULE_ID]),
        "patch": op("Change a business-event rule", {200: ok(_RULE)}, errors=(403, 404), params=[_RULE_ID],
                    body=model_body(EventRulePatch)),
        "delete": op("Remove a business-event rule", {204: {"description": "deleted"}}, errors=(403, 404),
                     params=[_RULE_ID]),
    },
}
