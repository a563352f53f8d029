"""The approvals JSON API: request on a ticket, the approver's inbox, a decision."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.http import api, path_int, read_json
from app.openapi import BOOL, INT, OBJ, STR, TICKET_ID, items_of, model_body, nullable, obj, ok, op, path_id
from app.security.scope import Actor
from approvals import service
from approvals.models import ApprovalRequest, ApprovalStep

#: no refund or compensation reaches a billion yuan; larger numbers also overflow the two-decimal rounding
MAX_AMOUNT = Decimal("1000000000")


class ApprovalParams(BaseModel):
    """The request's parameters; ``amount`` is checked here (a number, positive, finite, below ``MAX_AMOUNT``)."""

    model_config = ConfigDict(extra="allow")

    amount: Decimal | None = Field(default=None, gt=0, lt=MAX_AMOUNT, allow_inf_nan=False)


class ApprovalCreate(BaseModel):
    kind: Literal["transfer", "urgent", "refund", "compensation"]
    reason: str = Field(min_length=1, max_length=500)
    #: {"group_id": 3} for a transfer, {"amount": "1500"} for money
    params: ApprovalParams = Field(default_factory=ApprovalParams)

    def params_dict(self) -> dict[str, Any]:
        """The parameters as JSON values (the amount as a decimal string), for the service."""
        return self.params.model_dump(mode="json", exclude_none=True)


class Decision(BaseModel):
    approve: bool
    comment: str = Field(default="", max_length=500)


async def serialize(req: ApprovalRequest) -> dict[str, Any]:
    """An approval as the API returns it."""
    steps = await ApprovalStep.filter(request_id=req.id).order_by("id").prefetch_related("approver")
    return {
        "id": req.id, "ticket_id": req.ticket_id, "kind": req.kind, "status": req.status,  # type: ignore[attr-defined]
        "channel": req.channel, "sp_no": req.sp_no, "reason": req.reason, "params": req.params,
        "level": req.level, "levels": len(req.chain or []), "requester_id": req.requester_id,  # type: ignore[attr-defined]
        "decision_comment": req.decision_comment,
        "step_due_at": req.step_due_at.isoformat() if req.step_due_at else None,
        "steps": [{"level": s.level, "approver": s.approver.userid, "status": s.status, "comment": s.comment,
                   "decided_at": s.decided_at.isoformat() if s.decided_at else None} for s in steps],
    }


@api
async def create_approval(request: Request, actor: Actor) -> Response:
    """Ask for an approval on a ticket (201), or 200 with applied=true when none was needed."""
    body = await read_json(request, ApprovalCreate)
    req = await service.request(actor=actor, ticket_id=path_int(request, "ticket_id"), kind=body.kind,
                                reason=body.reason, params=body.params_dict())
    if req is None:
        return JSONResponse({"applied": True})
    return JSONResponse(await serialize(req), status_code=201)


@api
async def ticket_approvals(request: Request, actor: Actor) -> Response:
    """A ticket's approvals, newest first."""
    rows = await service.list_for_ticket(actor=actor, ticket_id=path_int(request, "ticket_id"))
    return JSONResponse({"items": [await serialize(r) for r in rows]})


@api
async def waiting(request: Request, actor: Actor) -> Response:
    """Approvals waiting for my decision."""
    return JSONResponse({"items": [await serialize(r) for r in await service.list_waiting(actor=actor)]})


@api
async def get_approval(request: Request, actor: Actor) -> Response:
    """One approval with its steps."""
    return JSONResponse(await serialize(await service.get(actor=actor, approval_id=path_int(request, "approval_id"))))


@api
async def decide(request: Request, actor: Actor) -> Response:
    """Approve or reject (the approver whose turn it is)."""
    body = await read_json(request, Decision)
    req = await service.decide(actor=actor, approval_id=path_int(request, "approval_id"), approve=body.approve,
                               comment=body.comment)
    return JSONResponse(await serialize(req))


routes = [
    Route("/tickets/{ticket_id}/approvals", create_approval, methods=["POST"]),
    Route("/tickets/{ticket_id}/approvals", ticket_approvals, methods=["GET"]),
    Route("/approvals", waiting, methods=["GET"]),
    Route("/approvals/{approval_id}", get_approval, methods=["GET"]),
    Route("/approvals/{approval_id}/decision", decide, methods=["POST"]),
]

#: this package's part of the OpenAPI document (app.openapi collects it from the mounted routes)
_APPROVAL = obj({"id": INT, "ticket_id": INT, "kind": STR, "status": STR, "channel": STR, "sp_no": nullable(STR),
                 "reason": STR, "params": OBJ, "level": INT, "levels": INT, "requester_id": nullable(INT),
                 "decision_comment": nullable(STR), "step_due_at": nullable(STR),
                 "steps": {"type": "array", "items": obj({"level": INT, "approver": STR, "status": STR,
                                                          "comment": nullable(STR), "decided_at": nullable(STR)})}})
_APPROVAL_ID = path_id("approval_id", "approval id")
OPENAPI_MODELS: list[type[BaseModel]] = [ApprovalCreate, Decision]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/tickets/{ticket_id}/approvals": {
        "get": op("A ticket's approvals, newest first", {200: ok(items_of(_APPROVAL))},
                  errors=(400, 404), params=[TICKET_ID]),
        "post": op("Ask for an approval on a ticket (201), or 200 with applied=true when none was needed",
                   {201: ok(_APPROVAL, "requested"), 200: ok(obj({"applied": BOOL}), "applied at once")},
                   errors=(403, 404, 409), params=[TICKET_ID], body=model_body(ApprovalCreate)),
    },
    "/approvals": {
        "get": op("Approvals waiting for my decision", {200: ok(items_of(_APPROVAL))}),
    },
    "/approvals/{approval_id}": {
        "get": op("One approval with its steps", {200: ok(_APPROVAL)}, errors=(400, 404), params=[_APPROVAL_ID]),
    },
    "/approvals/{approval_id}/decision": {
        "post": op("Approve or reject (the approver whose turn it is)", {200: ok(_APPROVAL)},
                   errors=(403, 404, 409), params=[_APPROVAL_ID], body=model_body(Decision)),
    },
}
