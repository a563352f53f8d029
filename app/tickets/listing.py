"""The ticket list's read: one statement per dialect and filter shape, rows straight to what the list's JSON shows.

For a 50-row page, tortoise's query building, its datetime round trip (the driver parses six datetimes a row, tortoise
makes them aware, the serializer formats them back to text), the pure-Python driver's decoding of twenty columns a
row and a second query for the ratings cost several times the database's own work (issue 15). Here MariaDB sends
each row as one JSON array (orjson decodes it), the datetimes stay text and are only rewritten into the ISO form
`datetime.isoformat()` gives, the rating comes from the same statement, and the statement text is built once per
process for each filter shape. What a list shows stays exactly what serializers.ticket shows (tests compare both).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

from app.db import quote_and_mark
from app.security.scope import Actor
from app.tickets.models import Ticket

#: the list's columns, in the order the JSON shows them (serializers.ticket without detail)
PLAIN = ("id", "number", "subject", "status", "priority", "category", "order_no", "customer_id", "group_id",
         "assignee_id", "channel_account_id", "tags", "version")
DATES = ("created_at", "updated_at", "last_activity_at", "first_response_due", "next_response_due", "resolution_due")
DIALECTS = ("mysql", "sqlite")
_COLUMNS = (*PLAIN, *DATES, "rating")

_STATEMENTS: dict[tuple[Any, ...], str] = {}


def supports(conn: Any) -> bool:
    """Whether this connection's dialect has a statement here (else the caller uses tortoise)."""
    return conn.capabilities.dialect in DIALECTS


def _select(dialect: str) -> str:
    q = quote_and_mark(dialect)[0]
    # one rating per ticket at most (ticket_rating.ticket_id is unique): read for the page's rows only
    rating = f"(SELECT r.{q}score{q} FROM {q}ticket_rating{q} r WHERE r.{q}ticket_id{q}=t.{q}id{q})"
    if dialect == "mysql":
        # each row as one JSON array: the pure-Python driver decodes one column a row instead of twenty, orjson the
        # rest; the tags are embedded as JSON and the DATETIME(6)s come as text, "YYYY-MM-DD HH:MM:SS.ffffff"
        values = [f"JSON_EXTRACT(t.{q}{c}{q},'$')" if c == "tags" else f"t.{q}{c}{q}" for c in (*PLAIN, *DATES)]
        return f"SELECT JSON_ARRAY({','.join(values)},{rating}) {q}row{q} FROM {q}ticket{q} t"
    # SQLite keeps datetimes as text already
    columns = [f"t.{q}{c}{q}" for c in (*PLAIN, *DATES)]
    return f"SELECT {','.join(columns)},{rating} {q}rating{q} FROM {q}ticket{q} t"


def statement(dialect: str, shape: tuple[Any, ...]) -> str:
    """The SELECT for one filter shape (see `page_rows`), written once per process."""
    sql = _STATEMENTS.get((dialect, *shape))
    if sql is not None:
        return sql
    scope_groups, scope_staff, n_status, group, assignee, unassigned, customer, after = shape
    q, m = quote_and_mark(dialect)
    where: list[str] = []
    if scope_groups is not None:
        # the same rule as Actor.ticket_filter: the actor's groups, or tickets assigned to the actor
        scope = [f"t.{q}group_id{q} IN ({','.join([m] * scope_groups)})" if scope_groups else f"t.{q}id{q}=-1"]
        if scope_staff:
            scope.append(f"t.{q}assignee_id{q}={m}")
        where.append(f"({' OR '.join(scope)})")
    if n_status:
        where.append(f"t.{q}status{q} IN ({','.join([m] * n_status)})")
    if group:
        where.append(f"t.{q}group_id{q}={m}")
    if assignee:
        where.append(f"t.{q}assignee_id{q}={m}")
    if unassigned:
        where.append(f"t.{q}assignee_id{q} IS NULL")
    if customer:
        where.append(f"t.{q}customer_id{q}={m}")
    if after:
        where.append(f"(t.{q}last_activity_at{q}<{m} OR (t.{q}last_activity_at{q}={m} AND t.{q}id{q}<{m}))")
    sql = _select(dialect)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY t.{q}last_activity_at{q} DESC,t.{q}id{q} DESC LIMIT {m}"
    _STATEMENTS[(dialect, *shape)] = sql
    return sql


def _scope_implied(actor: Actor, *, group_id: int | None, assignee_id: int | None) -> bool:
    """Whether the other filters already keep the page inside the actor's scope (its condition then only costs the
    database a row read per candidate: "my tickets" and a queue of one's own group need no scope condition)."""
    if actor.group_ids is None:
        return True
    if assignee_id is not None and actor.staff_id is not None and assignee_id == actor.staff_id:
        return True
    return group_id is not None and group_id in actor.group_ids


async def page_rows(
    *,
    conn: Any,
    actor: Actor,
    status: list[str] | None,
    group_id: int | None,
    assignee_id: int | None,
    unassigned: bool,
    customer_id: int | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` rows of the list, newest activity first: the list's columns with datetimes as ISO text, the
    tags decoded, and `rating` (the current score or None)."""
    dialect = conn.capabilities.dialect
    params: list[Any] = []
    scope_groups: int | None = None
    scope_staff = False
    if not _scope_implied(actor, group_id=group_id, assignee_id=assignee_id):
        groups = sorted(actor.group_ids or ())
        scope_groups = len(groups)
        params += groups
        if actor.staff_id is not None:
            scope_staff = True
            params.append(actor.staff_id)
    if status:
        # one mark per distinct status: a repeated one would only add another statement shape to keep
        status = list(dict.fromkeys(status))
        params += status
    if group_id is not None:
        params.append(group_id)
    if assignee_id is not None:
        params.append(assignee_id)
    if customer_id is not None:
        params.append(customer_id)
    if after is not None:
        # the value tortoise would send for this column, so the comparison is the one the model's filter makes
        stamp = Ticket._meta.fields_map["last_activity_at"].to_db_value(after[0], Ticket)
        params += [stamp, stamp, after[1]]
    params.append(limit)
    shape = (scope_groups, scope_staff, len(status or ()), group_id is not None, assignee_id is not None, unassigned,
             customer_id is not None, after is not None)
    found = await conn.execute_query_dict(statement(dialect, shape), params)
    if dialect == "mysql":
        rows = [dict(zip(_COLUMNS, orjson.loads(r["row"]), strict=True)) for r in found]
        iso = _mysql_iso
    else:
        rows = found
        iso = _sqlite_iso
        for row in rows:
            tags = row["tags"]
            row["tags"] = json.loads(tags) if isinstance(tags, str | bytes) else tags
    for row in rows:
        for column in DATES:
            value = row[column]
            if value is not None:
                row[column] = iso(value)
    return rows


def _mysql_iso(text: str) -> str:
    """"YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC, as stored) in datetime.isoformat()'s form: no fraction when it is 0."""
    fraction = text[19:]
    if fraction.strip(".0") == "":
        fraction = ""
    return f"{text[:10]}T{text[11:19]}{fraction}+00:00"


def _sqlite_iso(text: str) -> str:
    """A datetime as SQLite keeps it, read as tortoise reads it (naive is UTC, aware is moved to UTC), in ISO form."""
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()
