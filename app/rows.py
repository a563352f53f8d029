"""Plain rows in bulk: hand-written reads and writes over dicts for the jobs that handle thousands of rows at once
(the WeCom syncs), on the writing connection, so inside the caller's transaction.

Tortoise's query building, its model instance per row and its per-value conversion cost more CPU than the rows
themselves; these functions write what ``filter().values()``, ``bulk_create`` and ``filter().update()`` write, with
the model's own field conversions, and nothing else. On MySQL a bulk insert is one multi-row INSERT escaped here
(a value every row shares is escaped once); elsewhere it is one executemany. Where the server hands such an INSERT's
rows consecutive ids (``id_step``: InnoDB's auto-increment lock mode 0 or 1), the insert gives their ids, and MariaDB
10.5 and later hand them back with it (``RETURNING``); elsewhere the caller reads them back (``max_id`` before,
``ids_after`` after).
"""

from __future__ import annotations

import bisect
import copy
import functools
import inspect
import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pymysql.constants import SERVER_STATUS
from tortoise import fields as tortoise_fields
from tortoise.models import Model

from app.db import quote_and_mark
from app.timeutil import utcnow

__all__ = ["MAX_STATEMENT_CHARS", "RETURNED", "RETURNED_ROWS", "id_step", "ids_after", "insert_rows", "inserted",
           "instance", "max_id", "select_rows", "set_column", "update_rows"]

M = TypeVar("M", bound=Model)

#: the longest multi-row INSERT sent to MySQL (aiomysql's executemany splits at about the same size; MariaDB's
#: max_allowed_packet is 16 MiB)
MAX_STATEMENT_CHARS = 1_000_000


async def select_rows(model: type[Model], columns: tuple[str, ...], column: str, values: list[Any],
                      **equal: Any) -> list[dict[str, Any]]:
    """``model.filter(<column>__in=values, **equal).values(*columns)`` as one hand-written statement on the writing
    connection (the caller's transaction)."""
    if not values:
        return []
    db = model._choose_db(True)
    q, mark = quote_and_mark(db.capabilities.dialect)
    connection = getattr(db, "_connection", None)  # a transaction's own connection (a pool has none)
    params: list[Any] | None
    if db.capabilities.dialect == "mysql" and connection is not None:
        # the values as literals (a sync's page asks for hundreds of keys): the driver's escaping of each parameter
        # cost more than the rest of the read; with no parameters a "%" in a literal stays as it is
        literal = _escaper(connection)
        keys, where, params = ",".join(_literals(values, literal, backslashes=_backslashes(connection))), "".join(
            f" AND {q}{k}{q}={literal(v)}" for k, v in equal.items()), None
    else:
        keys, where = ",".join([mark] * len(values)), "".join(f" AND {q}{k}{q}={mark}" for k in equal)
        params = [*values, *equal.values()]
    sql = (f"SELECT {','.join(f'{q}{c}{q}' for c in columns)} FROM {q}{model._meta.db_table}{q} "
           f"WHERE {q}{column}{q} IN ({keys}){where}")
    rows: list[dict[str, Any]] = await db.execute_query_dict(sql, params)
    fields_map = model._meta.fields_map
    for c in columns:
        if isinstance(fields_map.get(c), tortoise_fields.JSONField):
            for row in rows:
                if isinstance(row[c], (str, bytes)):
                    row[c] = orjson.loads(row[c])
    return rows


async def max_id(model: type[Model]) -> int:
    """The highest id in ``model``'s table (0 when empty), read in the caller's transaction."""
    db = model._choose_db(True)
    q = quote_and_mark(db.capabilities.dialect)[0]
    row = (await db.execute_query_dict(f"SELECT MAX({q}id{q}) AS {q}m{q} FROM {q}{model._meta.db_table}{q}"))[0]
    return int(row["m"] or 0)


async def ids_after(model: type[Model], last_id: int, key: str) -> dict[Any, int]:
    """``key`` -> id of the rows past ``last_id``: the ones just inserted (auto-increment ids only grow), found by
    the primary key instead of a parameter per row."""
    db = model._choose_db(True)
    q, mark = quote_and_mark(db.capabilities.dialect)
    return {r[key]: int(r["id"]) for r in await db.execute_query_dict(
        f"SELECT {q}{key}{q},{q}id{q} FROM {q}{model._meta.db_table}{q} WHERE {q}id{q}>{mark}", [last_id])}


async def update_rows(model: type[Model], rows: dict[int, dict[str, Any]], fields: list[str]) -> None:
    """Write ``fields`` of the rows (by id): one ``UPDATE ... SET f = CASE id WHEN ... END`` per chunk of rows,
    without a model instance per row."""
    if not rows:
        return
    db = model._choose_db(True)
    q, mark = quote_and_mark(db.capabilities.dialect)
    convert = _converters(model, fields)
    ids = list(rows)
    # SQLite takes at most 32,766 parameters in a statement
    step = max(1, 8000 // (2 * len(fields) + 1))
    for k in range(0, len(ids), step):
        chunk = ids[k:k + step]
        whens = " WHEN " + " WHEN ".join([f"{mark} THEN {mark}"] * len(chunk))
        sets = ",".join(f"{q}{f}{q}=CASE {q}id{q}{whens} END" for f in fields)
        params: list[Any] = []
        for f, conv in zip(fields, convert, strict=True):
            for pk in chunk:
                v = rows[pk][f]
                params += (pk, v if conv is None or v is None else conv(v))
        await db.execute_query(f"UPDATE {q}{model._meta.db_table}{q} SET {sets} "
                               f"WHERE {q}id{q} IN ({','.join([mark] * len(chunk))})", [*params, *chunk])


async def set_column(model: type[Model], column: str, value: Any, ids: list[int]) -> None:
    """``model.filter(id__in=ids).update(<column>=value)`` for a plain column, hand-written."""
    db = model._choose_db(True)
    q, mark = quote_and_mark(db.capabilities.dialect)
    for k in range(0, len(ids), 8000):
        chunk = ids[k:k + 8000]
        await db.execute_query(f"UPDATE {q}{model._meta.db_table}{q} SET {q}{column}{q}={mark} "
                               f"WHERE {q}id{q} IN ({','.join([mark] * len(chunk))})", [value, *chunk])


def _converters(model: type[Model], columns: list[str]) -> list[Callable[[Any], Any] | None]:
    """How each column's Python value goes to the database: plain strings and integers as they are (the callers cut
    them to size), JSON encoded as tortoise does, datetimes converted once per value (a batch shares one)."""
    fields_map = model._meta.fields_map
    convert: list[Callable[[Any], Any] | None] = []
    for c in columns:
        field = fields_map[c]
        if type(field) in _PLAIN_FIELDS:
            convert.append(None)
        elif isinstance(field, tortoise_fields.JSONField):
            convert.append(field.encoder)
        else:
            convert.append(_memo(functools.partial(field.to_db_value, instance=model)))
    return convert


#: from this many rows a bulk insert looks for the columns every row gives the same value
_SHARED_FROM = 8


@dataclass(frozen=True)
class _InsertPlan:
    columns: tuple[str, ...]
    insert_query: str
    #: per column: set to the call's time on insert, else the field's default (a callable is called per insert)
    defaults: tuple[tuple[bool, Any], ...]
    convert: tuple[Callable[[Any], Any] | None, ...]


_PLANS: dict[tuple[type[Model], str, str], _InsertPlan] = {}


def _insert_plan(model: type[Model], db: Any) -> _InsertPlan:
    """What every insert into `model` on `db`'s kind of server shares, worked out once."""
    key = (model, str(db.connection_name), str(db.capabilities.dialect))
    plan = _PLANS.get(key)
    if plan is None:
        executor = db.executor_class(model=model, db=db)
        columns = tuple(executor.regular_columns)
        fields_map = model._meta.fields_map
        plan = _PLANS[key] = _InsertPlan(
            columns=columns, insert_query=executor.insert_query,
            defaults=tuple((bool(getattr(fields_map[c], "auto_now", False)
                                 or getattr(fields_map[c], "auto_now_add", False)), fields_map[c].default)
                           for c in columns),
            convert=tuple(_converters(model, list(columns))))
    return plan


#: per model: each field's default as ``Model.__init__`` gives it (kind, value): "call" a callable, "copy" a
#: mutable value, "value" as it is
_DEFAULTS: dict[type[Model], tuple[tuple[str, str, Any], ...]] = {}


def instance(model: type[M], values: dict[str, Any]) -> M:
    """What ``model(**values)`` makes, for values already in their Python form (a batch's new tickets, a message's
    rows in the worker): the fields not given get their defaults, a related object given for a foreign key sets its
    id; without ``__init__``'s per-field checks and conversions (a third of a new ticket's CPU in a batch). Anything
    else (a field with an async default, a value for no column, an unsaved related object, a datetime not in UTC)
    goes to ``__init__``."""
    meta = model._meta
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        defaults = _DEFAULTS[model] = _defaults(model)
    relations = [k for k in values if k in meta.fk_fields or k in meta.o2o_fields]
    plain = {k: v for k, v in values.items() if k not in relations} if relations else values
    if ((not defaults and (meta.fields - meta.fetch_fields).difference(values))
            or any(k not in meta.fields_db_projection for k in plain)
            or any(values[k] is not None and not values[k]._saved_in_db for k in relations)
            # a datetime __init__ would change: naive, or in another zone than UTC (the database's)
            or any(type(v) is datetime and (v.tzinfo is None or v.utcoffset()) for v in plain.values())):
        return model(**values)
    obj = model.__new__(model)
    state = obj.__dict__
    state.update(_partial=False, _saved_in_db=False, _custom_generated_pk=False, _await_when_save={})
    for key, kind, default in defaults:
        if key not in plain:
            state[key] = default() if kind == "call" else copy.deepcopy(default) if kind == "copy" else default
    state.update(plain)
    for key in relations:
        setattr(obj, key, values[key])  # the relation's setter: its id column and the object
    return obj


async def inserted(model: type[M], values: dict[str, Any]) -> M:
    """``model.create(**values)`` with the instance built by `instance`."""
    obj = instance(model, values)
    await obj.save(force_create=True)
    return obj


def _defaults(model: type[Model]) -> tuple[tuple[str, str, Any], ...]:
    """Each field's default for `instance` (none at all where a field has an async default)."""
    found: list[tuple[str, str, Any]] = []
    for key in sorted(model._meta.fields - model._meta.fetch_fields):  # relations are set by their own fields
        field = model._meta.fields_map[key]
        default = field.default
        if inspect.iscoroutinefunction(default):
            return ()
        if callable(default):
            found.append((key, "call", default))
        elif default is not None:
            found.append((key, "value" if isinstance(default, int | float | str | bool | bytes) else "copy", default))
        elif field.has_db_default():
            found.append((key, "value", field.get_db_default_value()))
        else:
            found.append((key, "value", None))
    return tuple(found)


async def insert_rows(model: type[Model], rows: list[dict[str, Any]], *, id_step: int = 0) -> list[int]:
    """What ``bulk_create`` writes, without a model instance per row (most of its CPU): on MySQL one multi-row
    INSERT per ``MAX_STATEMENT_CHARS`` where a column every row gives the same value (the sync's timestamps, statuses,
    defaults) is escaped once, not once per row; elsewhere one executemany. A column a row does not give gets the
    time of the call where the field is set on insert (``auto_now``, ``auto_now_add``), else the field's default.
    ``id_step``: what ``id_step`` answered in this transaction; when it is not 0 the new rows' ids are returned in
    their order (``RETURNED``: the server sends them back), else []."""
    if not rows:
        return []
    db = model._choose_db(True)
    connection = getattr(db, "_connection", None)  # a transaction's own connection (a pool has none)
    if id_step and (db.capabilities.dialect != "mysql" or connection is None):
        raise RuntimeError(f"{model.__name__}: this connection does not give a bulk insert's ids (see id_step)")
    plan = _insert_plan(model, db)
    columns, convert = plan.columns, plan.convert
    now = utcnow()
    defaults = [now if auto else (d() if callable(d) else d) for auto, d in plan.defaults]
    if db.capabilities.dialect != "mysql" or connection is None:
        values = []
        for row in rows:
            line = [row.get(c, d) for c, d in zip(columns, defaults, strict=True)]
            values.append([v if f is None or v is None else f(v) for v, f in zip(line, convert, strict=True)])
        if len(values) == 1:  # a pool's executemany wraps itself in BEGIN and COMMIT: three round trips for one row
            await db.execute_insert(plan.insert_query, values[0])
        else:
            await db.execute_many(plan.insert_query, values)
        return []
    escape, backslashes = _escaper(connection), _backslashes(connection)
    literals: list[list[str]] = []
    if len(rows) < _SHARED_FROM:
        # a few rows (a batch of new tickets): looking for values every row shares costs more than it saves
        for row in rows:
            literals.append([escape(v if f is None or v is None else f(v)) for v, f in zip(
                [row.get(c, d) for c, d in zip(columns, defaults, strict=True)], convert, strict=True)])
        literals = [list(column) for column in zip(*literals, strict=True)]
    else:
        specs = list(zip(range(len(columns)), columns, defaults, convert, strict=True))
        first = [rows[0].get(c, d) for _, c, d, _ in specs]
        # a column every row gives the same value is converted and escaped once; the others once per row, a column
        # at a time (a comprehension per column costs less than a loop over rows and columns)
        for j, c, d, f in specs:
            values = [row.get(c, d) for row in rows]
            shared = first[j]
            # counted and typed in C: a shared column (a timestamp, a status) was compared a value at a time in Python
            if values.count(shared) == len(values) and set(map(type, values)) == {type(shared)}:
                literals.append([escape(shared if f is None or shared is None else f(shared))] * len(rows))
            else:
                literals.append(_literals(values if f is None else [v if v is None else f(v) for v in values],
                                          escape, backslashes=backslashes))
    prefix = f"INSERT INTO `{model._meta.db_table}` ({','.join(f'`{c}`' for c in columns)}) VALUES "
    new_ids: list[int] = []
    tuples = list(map(",".join, zip(*literals, strict=True)))
    # where each row's "(…)," ends in the VALUES list, counted in C: a statement takes rows up to MAX_STATEMENT_CHARS
    ends = list(map(operator.add, itertools.accumulate(map(len, tuples)), range(3, 3 * len(tuples) + 1, 3)))
    start = 0
    while start < len(tuples):
        before = ends[start - 1] if start else 0
        stop = max(start + 1, bisect.bisect_right(ends, before + MAX_STATEMENT_CHARS, lo=start))
        await _insert_chunk(db, prefix, tuples[start:stop], id_step, new_ids)
        start = stop
    return new_ids


async def _insert_chunk(db: Any, prefix: str, chunk: list[str], step: int, into: list[int]) -> None:
    """One multi-row INSERT of ``chunk``, each a row's literals joined by commas; with ``step``, the ids of its rows
    go to ``into`` (the first is the insert's id, or the server sends them all back, in the rows' order)."""
    sql = prefix + "(" + "),(".join(chunk) + ")"
    if not step:
        await db.execute_script(sql)
        return
    if step == RETURNED:
        # no parameters: the literals' "%" stay as they are
        into.extend(int(row["id"]) for row in (await db.execute_query(sql + " RETURNING `id`"))[1])
        return
    first = int(await db.execute_insert(sql, None))  # no parameters: the literals' "%" stay as they are
    into.extend(range(first, first + step * len(chunk), step))


#: what ``id_step`` answers where the server sends a multi-row INSERT's ids back with it
RETURNED = -1
#: rows an insert may have for its ids to come back with it (``RETURNED``): each is a result row the driver parses,
#: and past about 30 rows that costs more CPU than reading the step (measured on MariaDB 10.11: 8 customers 0.11 ms
#: returned against 0.16 ms with the step read, 500 customers 1.69 ms against 0.70 ms)
RETURNED_ROWS = 24


async def id_step(model: type[Model], *, rows: int) -> int:
    """How a multi-row INSERT of ``rows`` rows through ``insert_rows`` gives their ids here: ``RETURNED`` where the
    server sends them back (MariaDB 10.5 and later: ``INSERT … RETURNING``, nothing read first) and they are few
    (``RETURNED_ROWS``), else the step between them, first to last, or 0 where they need not be consecutive or cannot
    be read (not MySQL or MariaDB, outside a transaction). The step is read from the session each time (one small
    query per bulk insert): ``auto_increment_increment`` can change while we run, and a stale step would tie rows to
    the wrong ids."""
    db = model._choose_db(True)
    connection = getattr(db, "_connection", None)
    if db.capabilities.dialect != "mysql" or connection is None:
        return 0
    if rows <= RETURNED_ROWS and _returns_ids(str(connection.server_version)):
        return RETURNED
    row = (await db.execute_query_dict("SELECT @@innodb_autoinc_lock_mode AS m, @@auto_increment_increment AS s, "
                                       "@@version AS v"))[0]
    # InnoDB's "traditional" (0) and "consecutive" (1, MariaDB's default) lock modes give the rows of an insert whose
    # row count is known consecutive values, first to last; "interleaved" (2: MySQL 8's default, Galera) need not,
    # and TiDB hands out ids its own way
    consecutive = int(row["m"]) in (0, 1) and "tidb" not in str(row["v"]).lower()
    return int(row["s"]) if consecutive else 0


@functools.cache
def _returns_ids(server_version: str) -> bool:
    """Whether a server of this version answers ``INSERT … RETURNING`` (MariaDB since 10.5; MySQL never)."""
    found = re.match(r"(?:5\.5\.5-)?(\d+)\.(\d+)\.\d+-MariaDB", server_version)
    return found is not None and (int(found[1]), int(found[2])) >= (10, 5)


def _escape_string(value: str) -> str:
    """What PyMySQL's ``escape_string`` writes (aiomysql's connections use it): its table of seven characters as
    seven ``str.replace`` (a fifth of its ``str.translate``'s time on a JSON value, where every key is quoted)."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")  # first: the others add backslashes
    return (value.replace("\0", "\\0").replace("\n", "\\n").replace("\r", "\\r").replace("\x1a", "\\Z")
            .replace('"', '\\"').replace("'", "\\'"))


#: finds a character ``_escape_string`` changes (its table's); most values have none, and a regular expression's
#: scan costs less than ``str.translate`` building the same text again
_needs_escape = re.compile(r"[\x00\n\r\x1a'\"\\]").search


def _literals(values: list[Any], literal: Callable[[Any], str], *, backslashes: bool) -> list[str]:
    """``[literal(v) for v in values]`` for a column of values: a column of strings (None among them) or of ints is
    turned in one pass. The strings are searched and escaped as one text, joined by a character the escaping leaves
    alone and none of them holds, instead of one call a value (a column of JSON texts has a quote in every value).
    ``backslashes``: the session escapes with backslashes (else texts needing escapes go to ``literal`` one by one)."""
    kinds = set(map(type, values))
    if kinds <= _TEXT:
        texts = values if type(None) not in kinds else [v for v in values if v is not None]
        joined = "\x01".join(texts)
        if _needs_escape(joined) is None:
            return ["NULL" if v is None else "'" + v + "'" for v in values]
        if backslashes and joined.count("\x01") == len(texts) - 1:  # no text holds the joining character
            escaped = iter(_escape_string(joined).split("\x01"))
            return ["NULL" if v is None else "'" + next(escaped) + "'" for v in values]
    elif kinds == _INT:
        return list(map(str, values))
    return list(map(literal, values))


_TEXT = frozenset((str, type(None)))
_INT = frozenset((int,))


def _backslashes(connection: Any) -> bool:
    """Whether the session escapes with backslashes (what ``_escape_string`` writes), not by doubling quotes."""
    return not connection.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


def _escaper(connection: Any) -> Callable[[Any], str]:
    """The connection's ``escape``, with the plain types a sync writes most (str, int, None) turned into SQL
    literals first, as it turns them, without its dispatch: a bulk insert escapes tens of thousands of values."""
    escape: Callable[[Any], str] = connection.escape
    if not _backslashes(connection):
        return escape  # quotes are doubled in that mode: leave it to the driver

    def literal(value: Any) -> str:
        kind = type(value)
        if kind is str:
            return "'" + (value if _needs_escape(value) is None else _escape_string(value)) + "'"
        if kind is int:
            return str(value)
        if value is None:
            return "NULL"
        if kind is datetime:
            # what pymysql's escape_datetime writes (the wall time, microseconds only when there are some; no zone),
            # without its format()
            return "'" + str((value if value.tzinfo is None else value.replace(tzinfo=None)).isoformat(" ")) + "'"
        if kind is bool:
            return "1" if value else "0"
        return escape(value)

    return literal


def _memo(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` remembering its last argument (by identity) and result."""
    last: list[Any] = [object(), None]

    def converted(value: Any) -> Any:
        if value is not last[0]:
            last[:] = [value, convert(value)]
        return last[1]

    return converted


_PLAIN_FIELDS = (tortoise_fields.CharField, tortoise_fields.TextField, tortoise_fields.IntField,
                 tortoise_fields.BigIntField)
