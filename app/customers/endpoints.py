"""The customer JSON API under /api/v1/customers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.customers import service
from app.http import api, path_int, query_int, read_json
from app.security import service as security
from app.security.scope import Actor
from app.tickets.schemas import RevealRequest


@api
async def search_customers(request: Request, actor: Actor) -> Response:
    """Search customers in your scope by name, phone, email or identity."""
    found = await service.search(actor=actor, q=request.query_params.get("q", ""),
                                 limit=query_int(request, "limit", 20) or 20)
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


routes = [
    Route("/customers", search_customers, methods=["GET"]),
    Route("/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/customers/{customer_id}/identities", list_identities, methods=["GET"]),
    Route("/customers/{customer_id}/reveal", reveal_customer_field, methods=["POST"]),
]
