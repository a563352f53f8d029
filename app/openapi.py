"""The OpenAPI 3.1 document of /api/v1: every mounted operation, its parameters (types and bounds), request bodies
(from the pydantic models the endpoints validate with), responses and the one error shape.

The optional packages document their own operations beside their endpoints (see `_extensions`).
`tests/app/test_openapi.py` walks the real route table and fails when an /api/v1 route has no operation here;
`tests/app/test_api_contract.py` runs Schemathesis against the app with this document.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute

from app import __version__
from app.assist.endpoints import SuggestionDecision
from app.customers.endpoints import MAX_LIMIT as CUSTOMER_MAX_LIMIT
from app.customers.endpoints import (
    MAX_QUERY_LENGTH,
    EraseRequest,
    ExportRequest,
    MergeRequest,
    UnmergeRequest,
    VerifyRequest,
)
from app.http import MAX_ID
from app.integrations.idempotency import MAX_KEY_LENGTH
from app.kb.endpoints import ArticleIn, ArticlePatch, HotTopicDraftIn, ImportIn, PublishPendingIn, VerdictIn
from app.tickets.rules_endpoints import DryRun, Duty
from app.tickets.schemas import ReplyCreate, RevealRequest, TicketCreate, TicketPatch

_P = dict[str, Any]

#: the pydantic models of the request bodies, documented under components/schemas by their class name
BODY_MODELS: list[type[BaseModel]] = [
    TicketCreate, TicketPatch, ReplyCreate, RevealRequest, MergeRequest, UnmergeRequest, VerifyRequest, ExportRequest,
    EraseRequest, DryRun, Duty,
    ArticleIn, ArticlePatch, ImportIn, PublishPendingIn,
    SuggestionDecision, VerdictIn, HotTopicDraftIn,
]

#: what each error status means, whichever operation answers it
ERROR_MEANINGS = {
    400: "malformed request: not JSON, not an object, a parameter of the wrong type",
    401: "missing or invalid token",
    403: "not allowed for your role, or your API token lacks the scope (read, write, events, admin)",
    404: "not found, or outside your scope",
    409: "conflict: a stale version, a transition that is not allowed, or a state that forbids the change",
    422: "invalid fields (error.details says which)",
}


# ---- schema helpers --------------------------------------------------------------------------------------------


def ref(name: str) -> _P:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: _P) -> _P:
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


STR: _P = {"type": "string"}
INT: _P = {"type": "integer"}
NUM: _P = {"type": "number"}
BOOL: _P = {"type": "boolean"}
OBJ: _P = {"type": "object"}
TIME: _P = {"type": "string", "format": "date-time"}
STRS: _P = {"type": "array", "items": STR}


def obj(props: dict[str, _P], *, optional: dict[str, _P] | None = None) -> _P:
    """An object whose ``props`` are all present (others may be added later without breaking clients)."""
    return {"type": "object", "required": list(props), "properties": {**props, **(optional or {})}}


def items_of(schema: _P, **extra: _P) -> _P:
    """{"items": [schema], ...extra}."""
    return obj({"items": {"type": "array", "items": schema}, **extra})


TICKET = obj({
    "id": INT, "number": STR, "subject": STR, "status": STR, "status_label": STR, "priority": STR, "category": STR,
    "order_no": nullable(STR), "customer_id": INT, "group_id": nullable(INT), "assignee_id": nullable(INT),
    "channel_account_id": nullable(INT), "tags": STRS, "version": INT, "created_at": nullable(STR),
    "updated_at": nullable(STR), "last_activity_at": nullable(STR), "first_response_due": nullable(STR),
    "next_response_due": nullable(STR), "resolution_due": nullable(STR),
})
TICKET_DETAIL = {"allOf": [ref("Ticket"), obj({
    "description": STR, "custom_fields": OBJ, "phone": nullable(STR), "first_responded_at": nullable(STR),
    "resolved_at": nullable(STR), "closed_at": nullable(STR), "merged_into_id": nullable(INT),
})]}
EVENT = obj({"id": INT, "kind": STR, "kind_label": STR, "actor_kind": STR, "actor_id": nullable(INT),
             "old": nullable(STR), "new": nullable(STR), "reason": nullable(STR), "created_at": nullable(STR)})
RATING = obj({"score": INT, "comment": STR, "source": STR, "source_label": STR, "at": STR,
              "history": {"type": "array", "items": OBJ}})
MESSAGE = obj({"id": INT, "direction": STR, "author_kind": STR, "staff_id": nullable(INT), "msg_type": STR,
               "text": STR, "media": {"type": "array", "items": obj({"kind": nullable(STR), "url": STR})},
               "channel": nullable(STR), "outbox_id": nullable(INT), "created_at": nullable(STR)})
CUSTOMER = obj({"id": INT, "name": STR, "vip_level": INT, "tags": STRS, "phone": nullable(STR),
                "email": nullable(STR), "verified": STRS, "can_reveal": BOOL, "created_at": STR})
IDENTITY = obj({"kind": STR, "scope": STR, "value": STR, "created_at": STR})
MERGE = obj({"id": INT, "survivor_id": INT, "merged_id": INT, "reason": STR, "staff_id": nullable(INT),
             "comment": STR, "moved": {"type": "object", "additionalProperties": INT}, "created_at": STR,
             "undone_at": nullable(STR)})
AUDIT_ENTRY = obj({"id": INT, "created_at": STR, "action": STR, "action_label": STR, "actor_id": nullable(INT),
                   "actor_name": STR, "object_type": STR, "object_label": STR, "object_id": STR, "field": STR,
                   "field_label": STR, "reason": STR})
ARTICLE = obj({"id": INT, "title": STR, "body": STR, "questions": STRS, "tags": STRS, "category": STR,
               "owner_id": nullable(INT), "status": STR, "version": INT, "source_ticket_id": nullable(INT),
               "pending": nullable(OBJ), "pending_by_id": nullable(INT), "created_at": nullable(STR),
               "updated_at": nullable(STR)})
ROUTING_DECISION = obj({"matched": {"type": "array"}, "steps": {"type": "array"}, "result": obj({
    "group": nullable(STR), "group_id": nullable(INT), "priority": STR, "category": nullable(STR), "tags": STRS,
    "assignee": nullable(STR), "sla_policy": nullable(STR), "auto_reply": nullable(STR),
    "after_hours_until": nullable(STR)})})
RULES = obj({"source": {"enum": ["database", "file"]}, "revision": nullable(INT), "document": OBJ})
SLA_CONFIG = obj({"calendars": {"type": "array"}, "policies": {"type": "array"}, "groups": OBJ})
NOTICE = obj({"year": INT, "title": STR, "source": STR, "imported_by": STR, "updated_at": STR,
              "holidays": {"type": "array"}})
CALENDAR_DAY = obj({"date": STR, "weekday": STR, "name": STR, "source": STR})
ERROR = obj({"error": obj({"code": STR, "message": STR}, optional={"details": OBJ})})

COMPONENTS: dict[str, _P] = {
    "Error": ERROR, "Ticket": TICKET, "TicketDetail": TICKET_DETAIL, "TicketEvent": EVENT, "Rating": RATING,
    "Message": MESSAGE, "Customer": CUSTOMER, "CustomerIdentity": IDENTITY, "CustomerMerge": MERGE,
    "AuditEntry": AUDIT_ENTRY, "Article": ARTICLE, "RoutingDecision": ROUTING_DECISION,
    "RoutingRules": RULES, "SlaConfig": SLA_CONFIG, "HolidayNotice": NOTICE, "CalendarDay": CALENDAR_DAY,
}


# ---- operation helpers -----------------------------------------------------------------------------------------


def path_id(name: str, desc: str, *, maximum: int = MAX_ID) -> _P:
    """An integer path parameter (ids are positive and fit the database's INT)."""
    return {"name": name, "in": "path", "required": True, "description": desc,
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum}}


def query(name: str, schema: _P, desc: str) -> _P:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


def id_query(name: str, desc: str) -> _P:
    """An optional id filter."""
    return query(name, {"type": "integer", "minimum": 1, "maximum": MAX_ID}, desc)


def limit_query(maximum: int, desc: str = "page size") -> _P:
    """A page size."""
    return query("limit", {"type": "integer", "minimum": 1, "maximum": maximum}, f"{desc}, at most {maximum}")


CURSOR = query("cursor", {"type": "string", "maxLength": 200}, "next_cursor of the previous page")


def json_body(schema: _P) -> _P:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def model_body(model: type[BaseModel]) -> _P:
    """A required JSON body validated by a pydantic model."""
    return json_body(ref(model.__name__))


def ok(schema: _P, description: str = "OK", media: str = "application/json") -> _P:
    """A success response."""
    return {"description": description, "content": {media: {"schema": schema}}}


def op(summary: str, responses: dict[int, _P], *, errors: tuple[int, ...] = (), params: list[_P] | None = None,
       body: _P | None = None, public: bool = False) -> _P:
    """One operation: its success responses, and 401 plus the listed error statuses in the error shape."""
    # every authenticated operation may answer 403: the token lacks the scope it needs (read, write, events, admin)
    error_codes = sorted({*errors, *(() if public else (401, 403)), *((400, 422) if body is not None else ()),
                          *((400,) if params else ())})
    out: _P = {
        "summary": summary,
        "security": [] if public else [{"bearer": []}],
        "parameters": params or [],
        "responses": {
            **{str(code): response for code, response in responses.items()},
            **{str(code): {"description": ERROR_MEANINGS[code], "content": {"application/json": {
                "schema": ref("Error")}}} for code in error_codes},
        },
    }
    if body is not None:
        out["requestBody"] = body
    return out


TICKET_ID = path_id("ticket_id", "ticket id")
CUSTOMER_ID = path_id("customer_id", "customer id")
ARTICLE_ID = path_id("article_id", "article id")
#: an optional Idempotency-Key header (POST /tickets, POST /events)
IDEMPOTENCY_KEY: _P = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": "same key and same body: the first answer again, nothing created twice; same key with another "
                   "body: 422; while the first is still handled: 409 (kept 24 h per caller)"}
FREE_DOCUMENT = {"required": True, "content": {
    "application/json": {"schema": OBJ},
    "application/yaml": {"schema": OBJ},
}}


def _paths() -> dict[str, _P]:
    tickets = {
        "/tickets": {
            "get": op("List tickets in your scope, newest activity first (cursor pagination)",
                      {200: ok(items_of(ref("Ticket"), next_cursor=nullable(STR)))}, errors=(400, 422), params=[
                          query("status", {"type": "string", "maxLength": 100},
                                "comma-separated statuses: new, open, pending, resolved, closed"),
                          id_query("group_id", "skill group"),
                          query("assignee", {"enum": ["me", "none"]}, "'me' or 'none'"),
                          id_query("assignee_id", "assignee staff id"),
                          id_query("customer_id", "customer"),
                          query("q", {"type": "string", "maxLength": 200},
                                "number, order number or words of the subject"),
                          query("updated_since", TIME, "for polling: only tickets changed at or after this moment, "
                                "oldest change first (the other filters are ignored)"),
                          CURSOR, limit_query(200)]),
            "post": op("Create a ticket for a customer named by customer_id or by any identity (customer: upserted, "
                       "new customers by admins only); honours Idempotency-Key",
                       {201: ok(ref("TicketDetail"), "created")}, errors=(404, 409), params=[IDEMPOTENCY_KEY],
                       body=model_body(TicketCreate)),
        },
        "/tickets/{ticket_id}": {
            "get": op("One ticket, with its audit trail and its rating",
                      {200: ok({"allOf": [ref("TicketDetail"), obj({
                          "events": {"type": "array", "items": ref("TicketEvent")},
                          "rating": nullable(ref("Rating"))})]})}, errors=(400, 404), params=[TICKET_ID]),
            "patch": op("Change a ticket at the version you read; a close needs confirm: true",
                        {200: ok(ref("TicketDetail"))}, errors=(403, 404, 409), params=[TICKET_ID],
                        body=model_body(TicketPatch)),
        },
        "/tickets/{ticket_id}/messages": {
            "get": op("The ticket's messages: customer, staff replies, internal notes",
                      {200: ok(items_of(ref("Message")))}, errors=(400, 404), params=[
                          TICKET_ID, query("after_id", {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                                           "only messages after this id")]),
            "post": op("Reply to the customer (via the outbox) or add an internal note",
                       {201: ok(ref("Message"), "created")}, errors=(403, 404, 409), params=[TICKET_ID],
                       body=model_body(ReplyCreate)),
        },
        "/tickets/{ticket_id}/reveal": {
            "post": op("Reveal the ticket's phone (its own or its customer's) or the customer's e-mail (audited)",
                       {200: ok(obj({"field": STR, "value": nullable(STR)}))}, errors=(403, 404),
                       params=[TICKET_ID], body=model_body(RevealRequest)),
        },
        "/tickets/{ticket_id}/sla": {
            "get": op("A ticket's SLA: policy, clocks, warnings, breaches and escalations",
                      {200: ok(obj({"policy": nullable(OBJ), "clocks": OBJ, "events": {"type": "array"}}))},
                      errors=(400, 404), params=[TICKET_ID]),
        },
        "/tickets/{ticket_id}/kb-draft": {
            "post": op("Turn a resolved ticket into a draft article (customer details removed)",
                       {201: ok(ref("Article"), "created")}, errors=(403, 404, 409, 422), params=[TICKET_ID]),
        },
        "/staff/me/stats": {
            "get": op("My rating figures (我的评分): count, average, share of 4-5",
                      {200: ok(obj({"staff_id": INT, "ratings": obj({
                          "count": INT, "average": nullable(NUM), "satisfied_share": nullable(NUM)})}))},
                      errors=(404,)),
        },
        "/staff/{staff_id}/duty": {
            "post": op("Come on or go off duty (yourself; admins and leads for anyone); coming on duty takes "
                       "waiting tickets", {200: ok(obj({"staff_id": INT, "on_duty": BOOL, "assigned": INT}))},
                       errors=(403, 404), params=[path_id("staff_id", "staff id")], body=model_body(Duty)),
        },
    }
    customers = {
        "/customers": {
            "get": op("Search customers in your scope by name, phone, e-mail or identity",
                      {200: ok(items_of(ref("Customer")))}, errors=(400, 422), params=[
                          query("q", {"type": "string", "maxLength": MAX_QUERY_LENGTH}, "search text"),
                          limit_query(CUSTOMER_MAX_LIMIT, "at most this many")]),
        },
        "/customers/{customer_id}": {
            "get": op("One customer (contact fields masked), with identities",
                      {200: ok({"allOf": [ref("Customer"), obj({
                          "identities": {"type": "array", "items": ref("CustomerIdentity")}})]})},
                      errors=(400, 404), params=[CUSTOMER_ID]),
        },
        "/customers/{customer_id}/identities": {
            "get": op("A customer's identities on every channel", {200: ok(items_of(ref("CustomerIdentity")))},
                      errors=(400, 404), params=[CUSTOMER_ID]),
        },
        "/customers/{customer_id}/reveal": {
            "post": op("Reveal a customer's phone or e-mail (audited; needs the reveal right)",
                       {200: ok(obj({"field": STR, "value": nullable(STR)}))}, errors=(403, 404),
                       params=[CUSTOMER_ID], body=model_body(RevealRequest)),
        },
        "/customers/{customer_id}/verify": {
            "post": op("Confirm a customer's phone or e-mail with them (audited): verified contacts suggest merges",
                       {200: ok(ref("Customer"))}, errors=(403, 404, 409), params=[CUSTOMER_ID],
                       body=model_body(VerifyRequest)),
        },
        "/customers/{customer_id}/merges": {
            "get": op("Merges that kept this customer, newest first", {200: ok(items_of(ref("CustomerMerge")))},
                      errors=(400, 403, 404), params=[CUSTOMER_ID]),
        },
        "/customers/{customer_id}/export": {
            "post": op("Everything held about the customer, JSON plus a Chinese summary (PIPL access right; admins; "
                       "audited); the body is optional", {200: ok(obj({
                           "customer_id": INT, "generated_at": nullable(STR), "data": OBJ, "summary": STR}))},
                       errors=(403, 404), params=[CUSTOMER_ID],
                       body={**model_body(ExportRequest), "required": False}),
        },
        "/customers/{customer_id}/erase": {
            "post": op("Erase the customer's personal data, keeping the tickets' figures (PIPL erasure; admins; "
                       "audited); without confirm: true a 409 confirmation_required",
                       {200: ok(obj({"customer_id": INT, "erased_at": nullable(STR),
                                     "counts": {"type": "object", "additionalProperties": INT}}))},
                       errors=(403, 404, 409), params=[CUSTOMER_ID], body=model_body(EraseRequest)),
        },
        "/customers/merge-suggestions": {
            "get": op("Customers sharing a verified phone or e-mail (admins and leads)",
                      {200: ok(items_of(obj({"customers": {"type": "array", "items": ref("Customer")},
                                             "matched": STR, "label": STR})))},
                      errors=(400, 403), params=[limit_query(200, "at most this many pairs")]),
        },
        "/customers/merges": {
            "post": op("Merge a customer into another (admins and leads, audited)",
                       {201: ok(ref("CustomerMerge"), "merged")}, errors=(403, 404, 409),
                       body=model_body(MergeRequest)),
        },
        "/customers/merges/{merge_id}/undo": {
            "post": op("Undo a merge: what moved goes back (admins and leads, audited)",
                       {200: ok(ref("CustomerMerge"))}, errors=(403, 404, 409),
                       params=[path_id("merge_id", "merge id")], body=model_body(UnmergeRequest)),
        },
    }
    admin = {
        "/audit": {
            "get": op("Read the audit log, newest first (admins only)",
                      {200: ok(items_of(ref("AuditEntry"), next_cursor=nullable(STR)))}, errors=(400, 403, 422),
                      params=[
                          id_query("ticket_id", "reveals of this ticket"),
                          id_query("actor_id", "staff id of who did it"),
                          query("action", {"type": "string", "maxLength": 32}, "action, e.g. 'reveal'"),
                          query("object_type", {"type": "string", "maxLength": 32},
                                "what was acted on, e.g. 'outbox', 'webhook'"),
                          query("since", TIME, "at or after (ISO 8601)"),
                          query("until", TIME, "at or before (ISO 8601)"),
                          CURSOR, limit_query(200)]),
        },
        "/audit/verify": {
            "get": op("Prove the audit log's hash chain intact, or name the first broken row (admins only)",
                      {200: ok(obj({"ok": BOOL, "checked": INT, "legacy": INT, "broken_id": nullable(INT),
                                    "problem": STR}))}, errors=(403,)),
        },
        "/outbox/{outbox_id}/resend": {
            "post": op("Send a message whose delivery outcome is unknown once more (409 unless it is unknown)",
                       {202: ok(obj({"id": INT, "channel": STR, "kind": STR, "status": STR, "status_label": STR,
                                     "attempts": INT, "ticket_id": nullable(INT)}), "sent again")},
                       errors=(403, 404, 409), params=[path_id("outbox_id", "outbox message id")]),
        },
        "/routing/rules": {
            "get": op("The routing rules in force (?format=yaml for the YAML export)",
                      {200: {"description": "OK", "content": {"application/json": {"schema": ref("RoutingRules")},
                                                              "application/yaml": {"schema": OBJ}}}},
                      params=[query("format", {"enum": ["json", "yaml"]}, "yaml for the YAML export")]),
            "put": op("Replace the routing rules (validated; every problem listed in error.details.errors)",
                      {200: ok(ref("RoutingRules"))}, errors=(400, 403, 422), body=FREE_DOCUMENT),
        },
        "/routing/dry-run": {
            "post": op("Which rules a sample message would match, and what they would do (nothing is changed)",
                       {200: ok(ref("RoutingDecision"))}, body=model_body(DryRun)),
        },
        "/sla/config": {
            "get": op("Calendars, SLA policies and group settings", {200: ok(ref("SlaConfig"))}),
            "put": op("Import calendars, SLA policies and group settings (by name; others stay)",
                      {200: ok({"allOf": [ref("SlaConfig"), obj({"stored": OBJ})]})}, errors=(400, 403, 422),
                      body=FREE_DOCUMENT),
        },
        "/sla/breaches": {
            "get": op("SLA breaches per group and clock in a period (default the last 30 days)",
                      {200: ok(items_of(obj({"group_id": nullable(INT), "group": nullable(STR), "clock": STR,
                                             "breaches": INT})))}, errors=(400,), params=[
                          query("since", TIME, "from (ISO 8601)"), query("until", TIME, "to (ISO 8601)")]),
        },
        "/calendar/notices": {
            "get": op("The imported State Council holiday notices, and the year missing one (if any)",
                      {200: ok(obj({"notices": {"type": "array", "items": ref("HolidayNotice")},
                                    "missing": nullable(obj({"year": INT, "message": STR}))}))}),
            "post": op("Import a year's holiday notice (admins; YAML, JSON or the notice's text; replaces that "
                       "year's notice); ?check=1 only validates",
                       {201: ok(obj({"stored": OBJ, "warnings": STRS}), "stored"),
                        200: ok(obj({"stored": {"type": "null"}, "document": OBJ, "warnings": STRS}), "checked")},
                       errors=(403, 422), params=[
                           query("year", {"type": "integer", "minimum": 2000, "maximum": 2100},
                                 "the year, when the text does not say"),
                           query("check", {"enum": ["1", "true"]}, "only validate")],
                       body={"required": True, "content": {
                           "application/json": {"schema": {"anyOf": [
                               obj({"text": STR}, optional={"year": INT}), OBJ]}},
                           "application/yaml": {"schema": STR}, "text/plain": {"schema": STR}}}),
        },
        "/calendar/years/{year}": {
            "get": op("A year's days off and 调休 working days as the business calendars see them",
                      {200: ok(obj({"year": INT, "basis": STR, "basis_label": STR, "notice": nullable(OBJ),
                                    "days_off": {"type": "array", "items": ref("CalendarDay")},
                                    "workdays": {"type": "array", "items": ref("CalendarDay")}}))},
                      errors=(400, 422), params=[path_id("year", "the year", maximum=9999)]),
        },
    }
    kb = {
        "/kb/articles": {
            "get": op("Articles, filtered by status, category and a title substring",
                      {200: ok(items_of(ref("Article")))}, errors=(400, 422), params=[
                          query("status", {"type": "string", "maxLength": 16}, "draft, published or retired"),
                          query("category", {"type": "string", "maxLength": 32}, "category"),
                          query("q", {"type": "string", "maxLength": 200}, "words of the title"),
                          limit_query(200),
                          query("offset", {"type": "integer", "minimum": 0, "maximum": 100000}, "skip this many")]),
            "post": op("Create an article (a draft unless a lead or admin publishes it)",
                       {201: ok(ref("Article"), "created")}, errors=(403,), body=model_body(ArticleIn)),
        },
        "/kb/articles/{article_id}": {
            "get": op("One article", {200: ok(ref("Article"))}, errors=(404,), params=[ARTICLE_ID]),
            "patch": op("Edit an article at the version you read; an agent's edit of a live article is kept as a "
                        "pending revision (202)", {200: ok(ref("Article")), 202: ok(ref("Article"), "pending")},
                        errors=(403, 404, 409), params=[ARTICLE_ID], body=model_body(ArticlePatch)),
        },
        "/kb/articles/{article_id}/versions": {
            "get": op("An article's history", {200: ok(items_of(obj({
                "version": INT, "snapshot": OBJ, "note": STR, "editor_id": nullable(INT), "created_at": STR})))},
                errors=(404,), params=[ARTICLE_ID]),
        },
        "/kb/articles/{article_id}/pending/publish": {
            "post": op("Make an article's pending revision live (leads and admins)", {200: ok(ref("Article"))},
                       errors=(403, 404, 409), params=[ARTICLE_ID], body=model_body(PublishPendingIn)),
        },
        "/kb/articles/{article_id}/pending": {
            "delete": op("Throw an article's pending revision away (leads and admins)", {200: ok(ref("Article"))},
                         errors=(403, 404, 409), params=[ARTICLE_ID]),
        },
        "/kb/articles/{article_id}/versions/{version}/restore": {
            "post": op("Make an old version current again", {200: ok(ref("Article"))}, errors=(403, 404, 409),
                       params=[ARTICLE_ID, path_id("version", "version number")]),
        },
        "/kb/search": {
            "get": op("Published answers for a question (agents' quick replies)",
                      {200: ok(items_of(obj({"score": NUM, "matched": STR, "article": ref("Article")})))},
                      errors=(400,), params=[query("q", {"type": "string", "maxLength": 200}, "the question"),
                                             query("k", {"type": "integer", "minimum": 1, "maximum": 20},
                                                   "at most this many")]),
        },
        "/kb/public/search": {
            "get": op("Customer self-service: titles and answers of published articles (no token needed)",
                      {200: ok(items_of(obj({"id": INT, "title": STR, "body": STR})))},
                      params=[query("q", {"type": "string", "maxLength": 100}, "the question")], public=True),
        },
        "/kb/export": {
            "get": op("Export as Markdown (default) or CSV (?format=csv), optionally one status",
                      {200: {"description": "the export", "content": {"text/markdown": {"schema": STR},
                                                                     "text/csv": {"schema": STR}}}},
                      errors=(422,), params=[query("format", {"enum": ["markdown", "csv"]}, "csv or markdown"),
                              query("status", {"type": "string", "maxLength": 16}, "only this status")]),
        },
        "/kb/import": {
            "post": op("Import Markdown or CSV (articles with a known id are updated, others created as drafts)",
                       {200: ok(obj({"created": INT, "updated": INT}))}, errors=(403,), body=model_body(ImportIn)),
        },
        "/kb/gaps": {
            "get": op("Questions the bot could not answer, grouped (default the last 30 days)",
                      {200: ok(items_of(obj({"question": STR, "count": INT, "examples": STRS, "last_asked": STR})))},
                      errors=(400,), params=[query("since", TIME, "from (ISO 8601)"), limit_query(200)]),
        },
    }
    meta = {"/openapi.json": {"get": op("This document", {200: ok(OBJ)}, public=True)}}
    return {**tickets, **customers, **admin, **kb, **_intelligence(), **meta}


SUGGESTION = obj({"id": INT, "kind": STR, "value": STR, "confidence": NUM, "reasons": STRS, "source": STR,
                  "status": {"enum": ["shown", "accepted", "dismissed"]}})
BOT_QUERY = obj({"id": INT, "text": STR, "outcome": STR, "best_article_id": nullable(INT), "score": NUM,
                 "runner_up": NUM, "fused": BOOL, "verdict": nullable(STR), "verdict_source": STR,
                 "correct_article_id": nullable(INT), "created_at": STR})


def _intelligence() -> dict[str, _P]:
    """Ticket assistance (app/assist), the bot's labels and report, hot topics (app/kb)."""
    share = nullable(NUM)
    return {
        "/tickets/{ticket_id}/assist": {
            "get": op("Suggested category and priority, similar resolved tickets, summary and emotion hint, each "
                      "with its reasons (never applied until accepted)",
                      {200: ok(obj({"ticket_id": INT, "vector_ready": BOOL,
                                    "category": nullable({"allOf": [SUGGESTION, obj({"label": STR, "current": STR})]}),
                                    "priority": nullable({"allOf": [SUGGESTION, obj({"label": STR, "current": STR})]}),
                                    "similar": {"type": "array", "items": {"allOf": [SUGGESTION, obj({
                                        "ticket_id": INT, "number": STR, "subject": STR, "solution": STR,
                                        "score": NUM})]}},
                                    "summary": nullable({"allOf": [SUGGESTION, obj({"text": STR})]}),
                                    "emotion": nullable({"allOf": [SUGGESTION, obj({"label": STR, "tone": STR})]})}))},
                      errors=(400, 404), params=[TICKET_ID]),
        },
        "/assist/suggestions/{suggestion_id}": {
            "post": op("Accept or dismiss a suggestion; accepting a category or priority changes the ticket "
                       "(audited, at its current version)", {200: ok(SUGGESTION)}, errors=(403, 404, 409),
                       params=[path_id("suggestion_id", "suggestion id")], body=model_body(SuggestionDecision)),
        },
        "/assist/accuracy": {
            "get": op("How often staff accepted each kind of suggestion (default the last 30 days), and the "
                      "classifiers in force with their held-out accuracy beside the baseline",
                      {200: ok(obj({"since": STR, "kinds": {"type": "object", "additionalProperties": obj({
                          "label": STR, "shown": INT, "accepted": INT, "dismissed": INT, "acceptance": share})},
                          "models": {"type": "array", "items": obj({
                              "id": INT, "kind": STR, "trained_on": INT, "held_out": INT, "accuracy": NUM,
                              "baseline_accuracy": NUM, "created_at": STR})}}))},
                      errors=(400,), params=[query("since", TIME, "from (ISO 8601)")]),
        },
        "/kb/bot-queries/{query_id}/verdict": {
            "post": op("Confirm or correct the bot's choice for a question (the calibration's labels)",
                       {200: ok(BOT_QUERY)}, errors=(404,), params=[path_id("query_id", "bot question id")],
                       body=model_body(VerdictIn)),
        },
        "/kb/bot-report": {
            "get": op("The bot per day: questions decided, share answered, labelled answers, precision among them; "
                      "and the stored calibrations",
                      {200: ok(obj({"days": INT, "target": NUM, "series": {"type": "array", "items": obj({
                          "date": STR, "asked": INT, "answered": INT, "labelled": INT, "right": INT,
                          "answered_share": share, "precision": share})}, "totals": OBJ,
                          "calibrations": {"type": "array", "items": OBJ}}))},
                      errors=(400,), params=[query("days", {"type": "integer", "minimum": 1, "maximum": 366},
                                                   "this many days back")]),
        },
        "/kb/hot-topics": {
            "get": op("Clusters of recent questions and tickets without a good article, by volume and growth",
                      {200: ok(items_of(obj({"label": STR, "count": INT, "previous": INT, "growth": NUM,
                                             "questions": INT, "tickets": INT, "examples": STRS,
                                             "ticket_ids": {"type": "array", "items": INT},
                                             "best_article": nullable(OBJ)})))},
                      errors=(400, 422), params=[query("days", {"type": "integer", "minimum": 1, "maximum": 90},
                                                   "the recent window (the one before it measures growth)"),
                                             limit_query(100)]),
        },
        "/kb/hot-topics/draft": {
            "post": op("Draft an article from a hot topic's best-resolved tickets (customer details removed)",
                       {201: ok(ref("Article"), "created")}, errors=(403, 404), body=model_body(HotTopicDraftIn)),
        },
    }


def _extensions(routes: Sequence[BaseRoute]) -> tuple[dict[str, _P], list[type[BaseModel]]]:
    """Paths and body models the optional packages document beside their endpoints (``OPENAPI_PATHS`` and
    ``OPENAPI_MODELS`` in the module of a mounted endpoint), so app/ imports none of them."""
    paths: dict[str, _P] = {}
    models: list[type[BaseModel]] = []
    seen: set[str] = set()
    for route in routes:
        module_name = getattr(getattr(route, "endpoint", None), "__module__", "") or ""
        module = sys.modules.get(module_name)
        if module is None or module_name in seen or not hasattr(module, "OPENAPI_PATHS"):
            continue
        seen.add(module_name)
        for path, operations in module.OPENAPI_PATHS.items():
            paths.setdefault(path, {}).update(operations)
        models.extend(getattr(module, "OPENAPI_MODELS", []))
    return paths, models


def build(routes: Sequence[BaseRoute] = ()) -> dict[str, Any]:
    """Return the OpenAPI document; ``routes`` are the routes mounted under /api/v1 (for the optional packages)."""
    paths = _paths()
    extra_paths, extra_models = _extensions(routes)
    for path, operations in extra_paths.items():
        paths.setdefault(path, {}).update(operations)
    schemas: dict[str, Any] = dict(COMPONENTS)
    for model in [*BODY_MODELS, *extra_models]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gongdan API", "version": __version__,
                 "description": "工单 helpdesk API. Authenticate with `Authorization: Bearer <token>` "
                                "(`gongdan token create --staff USERID [--scope read,write,events,admin]`: "
                                "GET needs read, changes write, /events events, admin endpoints admin). Errors: "
                                '{"error": {"code", "message" (Chinese), "details"?}}.'},
        "servers": [{"url": "/api/v1"}],
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": dict(sorted(paths.items())),
    }
