"""The ticket JSON API under /api/v1/tickets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import intake
from app.customers import service as customers
from app.errors import BadRequest, NotFound, ValidationFailed
from app.http import FastJSONResponse, api, path_int, query_int, read_json
from app.integrations import customers as integration_customers
from app.integrations import idempotency, polling
from app.security import service as security
from app.security.scope import Actor
from app.tickets import closing, ratings, serializers, service
from app.tickets.models import TicketEvent
from app.tickets.schemas import ReplyCreate, RevealRequest, TicketCreate, TicketPatch
from app.tickets.states import Status

#: the longest search text (ticket numbers, order numbers, words of a subject)
MAX_QUERY_LENGTH = 200


@api
async def list_tickets(request: Request, actor: Actor) -> Response:
    """List tickets in your scope, newest activity first (cursor pagination)."""
    params = request.query_params
    if "updated_since" in params:
        return await _poll(request, actor)
    statuses = [s for s in params.get("status", "").split(",") if s]
    for s in statuses:
        if s not in Status.__members__.values():
            raise BadRequest(f"未知状态 {s}", code="invalid_parameter")
    if len(params.get("q", "")) > MAX_QUERY_LENGTH:
        raise ValidationFailed(f"搜索内容最多 {MAX_QUERY_LENGTH} 个字符", code="query_too_long")
    assignee = params.get("assignee")
    page = await service.list_tickets(
        actor=actor,
        status=statuses or None,
        group_id=query_int(request, "group_id"),
        assignee_id=actor.staff_id if assignee == "me" else query_int(request, "assignee_id"),
        unassigned=assignee == "none",
        customer_id=query_int(request, "customer_id"),
        text=params.get("q") or None,
        cursor=params.get("cursor") or None,
        limit=query_int(request, "limit", 50) or 50,
        light=True,
        replica=True,  # a list an integration pages through: a replica's lag of a moment is harmless here
    )
    # light rows carry their rating: one statement for the page
    items = [serializers.list_item(t, actor=actor) for t in page.items]
    return FastJSONResponse({"items": items, "next_cursor": page.next_cursor})


async def _poll(request: Request, actor: Actor) -> Response:
    """Tickets changed at or after updated_since, oldest change first (for platforms that poll)."""
    page = await polling.updated_since(actor=actor, since=polling.parse_since(request.query_params["updated_since"]),
                                       cursor=request.query_params.get("cursor") or None,
                                       limit=query_int(request, "limit", 100) or 100)
    return FastJSONResponse({"items": [serializers.ticket(t, actor=actor) for t in page.items],
                             "next_cursor": page.next_cursor})


@api
async def create_ticket(request: Request, actor: Actor) -> Response:
    """Create a ticket for a customer named by id or by any identity (honours an Idempotency-Key header)."""

    async def handle() -> Response:
        body = await read_json(request, TicketCreate)
        if body.customer is not None:
            customer = await integration_customers.upsert(actor=actor, ref=body.customer)
        else:
            # a customer outside the caller's scope is as unknown as one that does not exist (same answer)
            customer = await customers.get(customer_id=body.customer_id or 0, actor=actor)
        ticket = await intake.staff_ticket(
            actor=actor, customer=customer, subject=body.subject, description=body.description,
            priority=body.priority if "priority" in body.model_fields_set else None, order_no=body.order_no,
            phone=body.phone, category=body.category, tags=body.tags, custom_fields=body.custom_fields,
            group_id=body.group_id, assignee_id=body.assignee_id, assign_to_self=False, source="api")
        return FastJSONResponse(serializers.ticket(ticket, actor=actor, detail=True), status_code=201)

    return await idempotency.run(request, actor, endpoint="tickets", handler=handle)


@api
async def get_ticket(request: Request, actor: Actor) -> Response:
    """One ticket, with its audit trail."""
    ticket = await service.get(actor=actor, ticket_id=path_int(request, "ticket_id"))
    out = serializers.ticket(ticket, actor=actor, detail=True)
    # the ticket is already scope-checked: read its events directly rather than through list_events (a second get)
    events = await TicketEvent.filter(ticket_id=ticket.id).order_by("id")
    out["events"] = [serializers.event(e, actor=actor) for e in events]
    rating = await ratings.current_rating(ticket_id=ticket.id)
    out["rating"] = ratings.as_dict(rating) if rating is not None else None
    return FastJSONResponse(out)


@api
async def patch_ticket(request: Request, actor: Actor) -> Response:
    """Change a ticket; the body carries the version you read, and a close needs "confirm": true."""
    body = await read_json(request, TicketPatch)
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version")
    confirmed = bool(changes.pop("confirm", False))
    ticket_id = path_int(request, "ticket_id")
    if changes.get("status"):
        current = await service.get(actor=actor, ticket_id=ticket_id)
        closing.require_close_confirmation(ticket=current, to=changes["status"], confirmed=confirmed)
    ticket = await service.update(actor=actor, ticket_id=ticket_id, expected_version=version, changes=changes)
    return FastJSONResponse(serializers.ticket(ticket, actor=actor, detail=True))


@api
async def list_messages(request: Request, actor: Actor) -> Response:
    """The ticket's messages: customer, staff replies, internal notes."""
    ticket_id = path_int(request, "ticket_id")
    messages = await service.list_messages(
        actor=actor, ticket_id=ticket_id, after_id=query_int(request, "after_id", 0) or 0
    )
    return FastJSONResponse({"items": [serializers.message(m, actor=actor) for m in messages]})


@api
async def post_message(request: Request, actor: Actor) -> Response:
    """Reply to the customer (through their channel, via the outbox) or add an internal note."""
    body = await read_json(request, ReplyCreate)
    ticket_id = path_int(request, "ticket_id")
    if body.internal:
        message = await service.add_note(actor=actor, ticket_id=ticket_id, text=body.text)
    else:
        if body.status:
            current = await service.get(actor=actor, ticket_id=ticket_id)
            closing.require_close_confirmation(ticket=current, to=body.status, confirmed=body.confirm)
        message = await service.reply(actor=actor, ticket_id=ticket_id, text=body.text, status=body.status)
    return FastJSONResponse(serializers.message(message, actor=actor), status_code=201)


@api
async def reveal_ticket_phone(request: Request, actor: Actor) -> Response:
    """Show the ticket's phone number (its own, else its customer's) or the customer's e-mail in clear; every
    reveal needs the right and writes an audit row, whatever the role."""
    body = await read_json(request, RevealRequest)
    ticket = await service.get(actor=actor, ticket_id=path_int(request, "ticket_id"))
    value = await security.reveal(
        actor=actor, object_type="ticket", object_id=str(ticket.id), field=body.field, reason=body.reason,
        value=await security.ticket_contact(ticket=ticket, field=body.field),
    )
    return FastJSONResponse({"field": body.field, "value": value})


@api
async def my_stats(request: Request, actor: Actor) -> Response:
    """My figures (我的评分): the count, average and share of 4-5 of the current ratings of my tickets."""
    if actor.staff_id is None:
        raise NotFound("该令牌不属于任何客服")
    summary = await ratings.staff_summary(staff_id=actor.staff_id)
    return FastJSONResponse({"staff_id": actor.staff_id, "ratings": summary.as_dict()})


routes = [
    Route("/tickets", list_tickets, methods=["GET"]),
    Route("/tickets", create_ticket, methods=["POST"]),
    Route("/tickets/{ticket_id}", get_ticket, methods=["GET"]),
    Route("/tickets/{ticket_id}", patch_ticket, methods=["PATCH"]),
    Route("/tickets/{ticket_id}/messages", list_messages, methods=["GET"]),
    Route("/tickets/{ticket_id}/messages", post_message, methods=["POST"]),
    Route("/tickets/{ticket_id}/reveal", reveal_ticket_phone, methods=["POST"]),
    Route("/staff/me/stats", my_stats, methods=["GET"]),
]
