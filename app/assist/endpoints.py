"""The assistance JSON API under /api/v1: a ticket's suggestions, staff's accept/dismiss, and the accuracy report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.assist import service
from app.http import api, parse_time, path_int, read_json
from app.security.scope import Actor


class SuggestionDecision(BaseModel):
    decision: Literal["accepted", "dismissed"]


@api
async def ticket_assist(request: Request, actor: Actor) -> Response:
    """Suggested category and priority, similar resolved tickets, summary and emotion hint of a ticket."""
    return JSONResponse(await service.suggestions(actor=actor, ticket_id=path_int(request, "ticket_id")))


@api
async def decide(request: Request, actor: Actor) -> Response:
    """Accept or dismiss a suggestion (accepting a category or priority applies it to the ticket)."""
    body = await read_json(request, SuggestionDecision)
    return JSONResponse(await service.decide(actor=actor, suggestion_id=path_int(request, "suggestion_id"),
                                             decision=body.decision))


@api
async def accuracy(request: Request, actor: Actor) -> Response:
    """How often staff accepted each kind of suggestion, and the classifiers' held-out accuracy."""
    since = parse_time(request.query_params.get("since"), "since")
    return JSONResponse(await service.accuracy(since=since))


routes = [
    Route("/tickets/{ticket_id:int}/assist", ticket_assist, methods=["GET"]),
    Route("/assist/suggestions/{suggestion_id:int}", decide, methods=["POST"]),
    Route("/assist/accuracy", accuracy, methods=["GET"]),
]
