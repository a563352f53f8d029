"""The customer JSON API under /api/v1/customers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.customers import merging, privacy, service
from app.errors import ValidationFailed
from app.http import DbId, api, api_scope, path_int, query_int, read_json
from app.security import service as security
from app.security.scope import Actor
from app.tickets.schemas import RevealRequest

#: the longest search text: names and identity values have at most 128 characters, so a longer one matches nothing
MAX_QUERY_LENGTH = 128
MAX_LIMIT = 100


@api
async def search_customers(request: Request, actor: Actor) -> Response:
    """Search customers in your scope by name, phone, email or identity."""
    q = request.query_params.get("q", "")
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationFailed(f"搜索内容最多 {MAX_QUERY_LENGTH} 个字符", code="query_too_long")
    limit = query_int(request, "limit", 20) or 20
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit 必须在 1 到 {MAX_LIMIT} 之间", code="invalid_limit")
    found = await service.search(actor=actor, q=q, limit=limit)
    return JSONResponse({"items": [await service.serialize(c, actor=actor) for c in found]})


@api
async def get_customer(request: Request, actor: Actor) -> Response:
    """One customer (contact fields masked)."""
    customer = await service.get(customer_id=path_int(request, "customer_id"), actor=actor)
    return JSONResponse(await service.serialize(customer, actor=actor, with_identities=True))


@api
async def list_identities(request: Request, actor: Actor) -> Response:
    """The customer's identities on every channel."""
    customer = await service.get(customer_id=path_int(request, "customer_id"), actor=actor)
    data = await service.serialize(customer, actor=actor, with_identities=True)
    return JSONResponse({"items": data["identities"]})


@api
async def reveal_customer_field(request: Request, actor: Actor) -> Response:
    """Show a masked field in clear (audited; needs the reveal right)."""
    body = await read_json(request, RevealRequest)
    customer = await service.get(customer_id=path_int(request, "customer_id"), actor=actor)
    await security.audit_reveal(
        actor=actor, object_type="customer", object_id=str(customer.id), field=body.field, reason=body.reason
    )
    value = service.phone_of(customer) if body.field == "phone" else service.email_of(customer)
    return JSONResponse({"field": body.field, "value": value})


class MergeRequest(BaseModel):
    survivor_id: DbId
    merged_id: DbId
    comment: str = Field(default="", max_length=500)


class UnmergeRequest(BaseModel):
    comment: str = Field(default="", max_length=500)


class VerifyRequest(BaseModel):
    field: Literal["phone", "email"]


class ExportRequest(BaseModel):
    reason: str = Field(default="", max_length=500)


class EraseRequest(BaseModel):
    #: erasure cannot be undone: without true the answer is 409 confirmation_required and nothing changes
    confirm: StrictBool = False
    reason: str = Field(default="", max_length=500)


@api_scope("admin")
async def export_customer(request: Request, actor: Actor) -> Response:
    """Everything held about the customer, JSON plus a Chinese summary (PIPL access right; admins; audited)."""
    body = await read_json(request, ExportRequest) if await request.body() else ExportRequest()
    return JSONResponse(await privacy.export(actor=actor, customer_id=path_int(request, "customer_id"),
                                             reason=body.reason))


@api_scope("admin")
async def erase_customer(request: Request, actor: Actor) -> Response:
    """Erase the customer's personal data, keeping the tickets' figures (PIPL erasure; admins; audited)."""
    body = await read_json(request, EraseRequest)
    return JSONResponse(await privacy.erase(actor=actor, customer_id=path_int(request, "customer_id"),
                                            confirm=body.confirm, reason=body.reason))


@api
async def merge_suggestions(request: Request, actor: Actor) -> Response:
    """Pairs of customers sharing a verified phone or e-mail (admins and leads)."""
    found = await merging.merge_suggestions(actor=actor, limit=query_int(request, "limit", 50) or 50)
    return JSONResponse({"items": [
        {"customers": [await service.serialize(c, actor=actor) for c in s.customers], "matched": s.matched,
         "label": s.label} for s in found]})


@api
async def merge_customers(request: Request, actor: Actor) -> Response:
    """Merge one customer into another (admins and leads; audited)."""
    body = await read_json(request, MergeRequest)
    record = await merging.merge_customers(actor=actor, survivor_id=body.survivor_id, merged_id=body.merged_id,
                                           comment=body.comment)
    return JSONResponse(await merging.serialize_merge(record), status_code=201)


@api
async def unmerge_customers(request: Request, actor: Actor) -> Response:
    """Undo a merge: what moved goes back (admins and leads; audited)."""
    body = await read_json(request, UnmergeRequest)
    record = await merging.unmerge(actor=actor, merge_id=path_int(request, "merge_id"), comment=body.comment)
    return JSONResponse(await merging.serialize_merge(record))


@api
async def customer_merges(request: Request, actor: Actor) -> Response:
    """The merges that kept this customer, newest first."""
    rows = await merging.list_merges(actor=actor, customer_id=path_int(request, "customer_id"))
    return JSONResponse({"items": [await merging.serialize_merge(r) for r in rows]})


@api
async def verify_contact(request: Request, actor: Actor) -> Response:
    """Confirm the customer's phone or e-mail with them (audited): verified contacts suggest merges."""
    body = await read_json(request, VerifyRequest)
    customer = await merging.verify_contact(actor=actor, customer_id=path_int(request, "customer_id"),
                                            field=body.field)
    return JSONResponse(await service.serialize(customer, actor=actor))


routes = [
    # fixed paths before /customers/{customer_id}
    Route("/customers/merge-suggestions", merge_suggestions, methods=["GET"]),
    Route("/customers/merges", merge_customers, methods=["POST"]),
    Route("/customers/merges/{merge_id}/undo", unmerge_customers, methods=["POST"]),
    Route("/customers", search_customers, methods=["GET"]),
    Route("/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/customers/{customer_id}/identities", list_identities, methods=["GET"]),
    Route("/customers/{customer_id}/reveal", reveal_customer_field, methods=["POST"]),
    Route("/customers/{customer_id}/merges", customer_merges, methods=["GET"]),
    Route("/customers/{customer_id}/verify", verify_contact, methods=["POST"]),
    Route("/customers/{customer_id}/export", export_customer, methods=["POST"]),
    Route("/customers/{customer_id}/erase", erase_customer, methods=["POST"]),
]
