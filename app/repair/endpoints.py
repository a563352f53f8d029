"""The repair API under /api/v1/repair (admins, token scope admin): failed outbox messages and stored callbacks,
their replay one by one or in bulk."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http import DbId, FastJSONResponse, api_scope, parse_time, path_int, query_int, read_json
from app.openapi import BOOL, INT, STR, TIME, items_of, limit_query, model_body, nullable, obj, ok, op, path_id, query
from app.repair import service
from app.security.scope import Actor


class ReplayMany(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[DbId] = Field(min_length=1, max_length=service.MAX_BULK, description="the rows to replay")


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {"channel": (params.get("channel") or "")[:32] or None, "status": (params.get("status") or "")[:16] or None,
            "since": parse_time(params.get("since"), "since"), "until": parse_time(params.get("until"), "until"),
            "error": (params.get("error") or "")[:100] or None, "before_id": query_int(request, "before_id"),
            "limit": query_int(request, "limit", 50) or 50}


def _replay(result: service.Replay) -> dict[str, Any]:
    return {"id": result.id, "replayed": result.replayed, "status": result.status}


@api_scope("admin")
async def list_outbox(request: Request, actor: Actor) -> Response:
    """Outbox messages that failed, were dead-lettered or whose outcome is unknown (or of one status)."""
    rows = await service.list_outbox(actor=actor, **_filters(request))
    return FastJSONResponse({"items": [service.serialize_outbox(r) for r in rows]})


@api_scope("admin")
async def replay_outbox(request: Request, actor: Actor) -> Response:
    """Queue one outbox message again (202; replayed false when it was already queued; 409 once delivered)."""
    result = await service.replay_outbox(actor=actor, outbox_id=path_int(request, "outbox_id"))
    return FastJSONResponse(_replay(result), status_code=202)


@api_scope("admin")
async def replay_outbox_many(request: Request, actor: Actor) -> Response:
    """Queue several outbox messages again."""
    body = await read_json(request, ReplayMany)
    result = await service.replay_outbox_many(actor=actor, ids=list(body.ids))
    return FastJSONResponse(result.as_dict(), status_code=202)


@api_scope("admin")
async def list_inbound(request: Request, actor: Actor) -> Response:
    """Stored callbacks whose processing failed (or of one status)."""
    rows = await service.list_inbound(actor=actor, **_filters(request))
    return FastJSONResponse({"items": [service.serialize_inbound(r) for r in rows]})


@api_scope("admin")
async def replay_inbound(request: Request, actor: Actor) -> Response:
    """Process one failed callback again (202; replayed false when it was already queued; 409 once processed)."""
    result = await service.replay_inbound(actor=actor, event_id=path_int(request, "event_id"))
    return FastJSONResponse(_replay(result), status_code=202)


@api_scope("admin")
async def replay_inbound_many(request: Request, actor: Actor) -> Response:
    """Process several failed callbacks again."""
    body = await read_json(request, ReplayMany)
    result = await service.replay_inbound_many(actor=actor, ids=list(body.ids))
    return FastJSONResponse(result.as_dict(), status_code=202)


routes = [
    Route("/repair/outbox", list_outbox, methods=["GET"]),
    Route("/repair/outbox/replay", replay_outbox_many, methods=["POST"]),
    Route("/repair/outbox/{outbox_id}/replay", replay_outbox, methods=["POST"]),
    Route("/repair/inbound", list_inbound, methods=["GET"]),
    Route("/repair/inbound/replay", replay_inbound_many, methods=["POST"]),
    Route("/repair/inbound/{event_id}/replay", replay_inbound, methods=["POST"]),
]

_OUTBOX = obj({"id": INT, "channel": STR, "channel_label": STR, "kind": STR, "kind_label": STR, "status": STR,
               "status_label": STR, "replayable": BOOL, "attempts": INT, "recipient": STR, "error": STR,
               "delivery_state": nullable(STR), "ticket_id": nullable(INT), "created_at": nullable(STR),
               "next_attempt_at": nullable(STR), "sent_at": nullable(STR)})
_INBOUND = obj({"id": INT, "channel": STR, "channel_label": STR, "account_id": nullable(INT), "account_name": STR,
                "status": STR, "status_label": STR, "replayable": BOOL, "attempts": INT, "error": STR,
                "received_at": nullable(STR), "processed_at": nullable(STR)})
_REPLAY = obj({"id": INT, "replayed": BOOL, "status": STR})
_BULK = obj({"replayed": {"type": "array", "items": INT}, "already_queued": {"type": "array", "items": INT},
             "refused": {"type": "array", "items": obj({"id": INT, "message": STR})}})
_BIG_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def _list_params(statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    return [query("channel", {"type": "string", "maxLength": 32}, "channel kind (wechat_mp, wecom_kf, email, ...)"),
            query("status", {"enum": list(statuses)}, "one status instead of the ones that need a person"),
            query("since", TIME, "created or received at or after (ISO 8601)"),
            query("until", TIME, "created or received at or before (ISO 8601)"),
            query("error", {"type": "string", "maxLength": 100}, "words of the error"),
            query("before_id", _BIG_ID, "only rows older than this id"), limit_query(service.MAX_PAGE)]


#: this module's part of the OpenAPI document
OPENAPI_MODELS: list[type[BaseModel]] = [ReplayMany]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/repair/outbox": {
        "get": op("Outbox messages that failed, were dead-lettered or whose outcome is unknown (admin scope)",
                  {200: ok(items_of(_OUTBOX))}, errors=(403, 422), params=_list_params(service.OUTBOX_STATUSES)),
    },
    "/repair/outbox/replay": {
        "post": op("Queue several outbox messages again, each once (admin scope)", {202: ok(_BULK, "queued")},
                   errors=(403,), body=model_body(ReplayMany)),
    },
    "/repair/outbox/{outbox_id}/replay": {
        "post": op("Queue one outbox message again; replayed false when already queued (admin scope)",
                   {202: ok(_REPLAY, "queued")}, errors=(403, 404, 409),
                   params=[path_id("outbox_id", "outbox message id", maximum=2**63 - 1)]),
    },
    "/repair/inbound": {
        "get": op("Stored callbacks whose processing failed (admin scope)", {200: ok(items_of(_INBOUND))},
                  errors=(403, 422), params=_list_params(service.INBOUND_STATUSES)),
    },
    "/repair/inbound/replay": {
        "post": op("Process several failed callbacks again, each once (admin scope)", {202: ok(_BULK, "queued")},
                   errors=(403,), body=model_body(ReplayMany)),
    },
    "/repair/inbound/{event_id}/replay": {
        "post": op("Process one failed callback again; replayed false when already queued (admin scope)",
                   {202: ok(_REPLAY, "queued")}, errors=(403, 404, 409),
                   params=[path_id("event_id", "stored callback id", maximum=2**63 - 1)]),
    },
}
