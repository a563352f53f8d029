"""The OpenAPI 3.1 document of /api/v1, assembled from the routes' docstrings and the pydantic body models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app import __version__
from app.customers.endpoints import MergeRequest, UnmergeRequest, VerifyRequest
from app.tickets.schemas import ReplyCreate, RevealRequest, TicketCreate, TicketPatch

ERROR = {"$ref": "#/components/schemas/Error"}
_P = dict[str, Any]


def _param(name: str, where: str, kind: str, desc: str) -> _P:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}, "description": desc}


def _op(summary: str, *, body: type[BaseModel] | None = None, params: list[_P] | None = None,
        ok: int = 200) -> _P:
    op: _P = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": params or [],
        "responses": {
            str(ok): {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "malformed request", "content": {"application/json": {"schema": ERROR}}},
            "401": {"description": "missing or invalid token", "content": {"application/json": {"schema": ERROR}}},
            "404": {"description": "not found or outside your scope",
                    "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}},
        }
        op["responses"]["422"] = {"description": "invalid fields", "content": {"application/json": {"schema": ERROR}}}
    return op


TICKET_ID = _param("ticket_id", "path", "integer", "ticket id")
CUSTOMER_ID = _param("customer_id", "path", "integer", "customer id")


def build() -> dict[str, Any]:
    """Return the OpenAPI document."""
    models: list[type[BaseModel]] = [TicketCreate, TicketPatch, ReplyCreate, RevealRequest, MergeRequest,
                                     UnmergeRequest, VerifyRequest]
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}},
        }
    }
    for model in models:
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    patch = _op("Change a ticket (optimistic lock on version)", body=TicketPatch, params=[TICKET_ID])
    patch["responses"]["409"] = {"description": "version conflict or invalid transition (carries the current "
                                                "state), or confirmation_required: a close without confirm: true",
                                 "content": {"application/json": {"schema": ERROR}}}
    audit = _op("Read the audit log, newest first (admins only)", params=[
        _param("ticket_id", "query", "integer", "reveals of this ticket"),
        _param("actor_id", "query", "integer", "staff id of who did it"),
        _param("action", "query", "string", "action, e.g. 'reveal'"),
        _param("cursor", "query", "string", "next_cursor of the previous page"),
        _param("limit", "query", "integer", "page size, at most 200"),
    ])
    audit["responses"]["403"] = {"description": "not an admin", "content": {"application/json": {"schema": ERROR}}}
    reveal = _op("Reveal the ticket's phone (its own or its customer's) or the customer's email (audited)",
                 body=RevealRequest, params=[TICKET_ID])
    reveal["responses"]["403"] = {"description": "no reveal right",
                                  "content": {"application/json": {"schema": ERROR}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gongdan API", "version": __version__,
                 "description": "工单 helpdesk API. Authenticate with `Authorization: Bearer <token>` "
                                "(`gongdan token create --staff USERID`)."},
        "servers": [{"url": "/api/v1"}],
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/tickets": {
                "get": _op("List tickets in your scope, newest activity first", params=[
                    _param("status", "query", "string", "comma-separated statuses"),
                    _param("group_id", "query", "integer", "skill group"),
                    _param("assignee", "query", "string", "'me' or 'none'"),
                    _param("assignee_id", "query", "integer", "assignee staff id"),
                    _param("customer_id", "query", "integer", "customer"),
                    _param("q", "query", "string", "number, order number or words of the subject"),
                    _param("cursor", "query", "string", "next_cursor of the previous page"),
                    _param("limit", "query", "integer", "page size, at most 200"),
                ]),
                "post": _op("Create a ticket", body=TicketCreate, ok=201),
            },
            "/tickets/{ticket_id}": {"get": _op("Get a ticket with its audit trail", params=[TICKET_ID]),
                                     "patch": patch},
            "/tickets/{ticket_id}/messages": {
                "get": _op("List a ticket's messages", params=[TICKET_ID,
                                                               _param("after_id", "query", "integer", "after id")]),
                "post": _op("Reply to the customer or add an internal note", body=ReplyCreate,
                            params=[TICKET_ID], ok=201),
            },
            "/tickets/{ticket_id}/reveal": {"post": reveal},
            "/staff/me/stats": {"get": _op("My rating figures (我的评分): count, average, share of 4-5")},
            "/customers": {"get": _op("Search customers", params=[_param("q", "query", "string", "search text")])},
            "/customers/{customer_id}": {"get": _op("Get a customer (masked)", params=[CUSTOMER_ID])},
            "/customers/{customer_id}/identities": {"get": _op("A customer's identities", params=[CUSTOMER_ID])},
            "/customers/{customer_id}/reveal": {"post": _op("Reveal a customer's phone or email (audited)",
                                                            body=RevealRequest, params=[CUSTOMER_ID])},
            "/customers/{customer_id}/verify": {"post": _op(
                "Confirm a customer's phone or email with them (audited): verified contacts suggest merges",
                body=VerifyRequest, params=[CUSTOMER_ID])},
            "/customers/{customer_id}/merges": {"get": _op("Merges that kept this customer", params=[CUSTOMER_ID])},
            "/customers/merge-suggestions": {"get": _op(
                "Customers sharing a verified phone or email (admins and leads)",
                params=[_param("limit", "query", "integer", "at most this many")])},
            "/customers/merges": {"post": _op("Merge a customer into another (admins and leads, audited)",
                                              body=MergeRequest, ok=201)},
            "/customers/merges/{merge_id}/undo": {"post": _op(
                "Undo a merge: what moved goes back (admins and leads, audited)", body=UnmergeRequest,
                params=[_param("merge_id", "path", "integer", "merge id")])},
            "/audit": {"get": audit},
        },
    }
