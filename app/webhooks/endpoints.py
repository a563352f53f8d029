"""The webhook API under /api/v1/webhooks (admins, with a token carrying the admin scope): subscriptions, their
delivery log, and replay."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http import FastJSONResponse, api_scope, path_int, query_int, read_json
from app.openapi import BOOL, INT, OBJ, STR, STRS, items_of, limit_query, model_body, nullable, obj, ok, op, path_id
from app.openapi import query as query_param
from app.security.scope import Actor
from app.webhooks import service

EventType = Literal["ticket.created", "ticket.updated", "ticket.status_changed", "message.created", "sla.warning",
                    "sla.breached", "csat.submitted", "approval.decided"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=500, pattern=r"^https?://[^\s/?#]+[^\s]*$",
                     description="where events are POSTed (http or https)")
    events: list[EventType] = Field(min_length=1, max_length=len(service.EVENT_TYPES))
    description: str = Field(default="", max_length=200)


@api_scope("admin")
async def list_webhooks(request: Request, actor: Actor) -> Response:
    """Every webhook subscription."""
    subs = await service.list_subscriptions(actor=actor)
    return FastJSONResponse({"items": [service.serialize(s) for s in subs]})


@api_scope("admin")
async def create_webhook(request: Request, actor: Actor) -> Response:
    """Subscribe a URL to events; the answer carries the signing secret, shown this once."""
    body = await read_json(request, WebhookCreate)
    sub, secret = await service.create(actor=actor, url=body.url, events=list(body.events),
                                       description=body.description)
    return FastJSONResponse({**service.serialize(sub), "secret": secret}, status_code=201)


@api_scope("admin")
async def get_webhook(request: Request, actor: Actor) -> Response:
    """One webhook subscription."""
    sub = await service.get(actor=actor, subscription_id=path_int(request, "subscription_id"))
    return FastJSONResponse(service.serialize(sub))


@api_scope("admin")
async def delete_webhook(request: Request, actor: Actor) -> Response:
    """Remove a subscription and its delivery log."""
    await service.delete(actor=actor, subscription_id=path_int(request, "subscription_id"))
    return Response(status_code=204)


@api_scope("admin")
async def enable_webhook(request: Request, actor: Actor) -> Response:
    """Switch a subscription on again (its failure count starts afresh)."""
    sub = await service.set_active(actor=actor, subscription_id=path_int(request, "subscription_id"), active=True)
    return FastJSONResponse(service.serialize(sub))


@api_scope("admin")
async def disable_webhook(request: Request, actor: Actor) -> Response:
    """Switch a subscription off (nothing is sent to it until it is enabled)."""
    sub = await service.set_active(actor=actor, subscription_id=path_int(request, "subscription_id"), active=False)
    return FastJSONResponse(service.serialize(sub))


@api_scope("admin")
async def list_deliveries(request: Request, actor: Actor) -> Response:
    """A subscription's delivery log, newest first (next page: before_id = the last id)."""
    rows = await service.list_deliveries(actor=actor, subscription_id=path_int(request, "subscription_id"),
                                         before_id=query_int(request, "before_id"),
                                         limit=query_int(request, "limit", 50) or 50)
    return FastJSONResponse({"items": [service.serialize_delivery(d) for d in rows]})


@api_scope("admin")
async def replay_delivery(request: Request, actor: Actor) -> Response:
    """Send a logged delivery again (same webhook-id)."""
    delivery = await service.replay(actor=actor, subscription_id=path_int(request, "subscription_id"),
                                    delivery_id=path_int(request, "delivery_id"))
    return FastJSONResponse(service.serialize_delivery(delivery), status_code=202)


routes = [
    Route("/webhooks", list_webhooks, methods=["GET"]),
    Route("/webhooks", create_webhook, methods=["POST"]),
    Route("/webhooks/{subscription_id}", get_webhook, methods=["GET"]),
    Route("/webhooks/{subscription_id}", delete_webhook, methods=["DELETE"]),
    Route("/webhooks/{subscription_id}/enable", enable_webhook, methods=["POST"]),
    Route("/webhooks/{subscription_id}/disable", disable_webhook, methods=["POST"]),
    Route("/webhooks/{subscription_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/webhooks/{subscription_id}/deliveries/{delivery_id}/replay", replay_delivery, methods=["POST"]),
]

_SUB = obj({"id": INT, "url": STR, "description": STR, "events": STRS, "active": BOOL,
            "disabled_reason": nullable(STR), "disabled_at": nullable(STR), "consecutive_failures": INT,
            "owner_id": nullable(INT), "created_at": nullable(STR)})
_DELIVERY = obj({"id": INT, "subscription_id": INT, "event_type": STR, "msg_id": STR, "status": STR,
                 "attempts": INT, "last_status_code": nullable(INT), "last_error": nullable(STR),
                 "ticket_id": nullable(INT), "payload": OBJ, "created_at": nullable(STR),
                 "delivered_at": nullable(STR)})
_SUB_ID = path_id("subscription_id", "webhook subscription id")
_BEFORE = query_param("before_id", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                      "only deliveries older than this id")
#: this module's part of the OpenAPI document
OPENAPI_MODELS: list[type[BaseModel]] = [WebhookCreate]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/webhooks": {
        "get": op("Every webhook subscription (admin scope)", {200: ok(items_of(_SUB))}, errors=(403,)),
        "post": op("Subscribe a URL to events; the answer carries the signing secret once (admin scope)",
                   {201: ok({"allOf": [_SUB, obj({"secret": STR})]}, "created")}, errors=(403,),
                   body=model_body(WebhookCreate)),
    },
    "/webhooks/{subscription_id}": {
        "get": op("One webhook subscription", {200: ok(_SUB)}, errors=(403, 404), params=[_SUB_ID]),
        "delete": op("Remove a subscription and its delivery log", {204: {"description": "deleted"}},
                     errors=(403, 404), params=[_SUB_ID]),
    },
    "/webhooks/{subscription_id}/enable": {
        "post": op("Switch a subscription on again", {200: ok(_SUB)}, errors=(403, 404), params=[_SUB_ID]),
    },
    "/webhooks/{subscription_id}/disable": {
        "post": op("Switch a subscription off", {200: ok(_SUB)}, errors=(403, 404), params=[_SUB_ID]),
    },
    "/webhooks/{subscription_id}/deliveries": {
        "get": op("A subscription's delivery log, newest first", {200: ok(items_of(_DELIVERY))},
                  errors=(403, 404), params=[_SUB_ID, _BEFORE, limit_query(200)]),
    },
    "/webhooks/{subscription_id}/deliveries/{delivery_id}/replay": {
        "post": op("Send a logged delivery again, with the same webhook-id", {202: ok(_DELIVERY, "queued")},
                   errors=(403, 404, 409), params=[_SUB_ID, path_id("delivery_id", "delivery id",
                                                                    maximum=2**63 - 1)]),
    },
}
