"""The callback path's store and the per-sender inbox: one customer's callbacks in order, different customers in
parallel, without a database lock between them.

``store`` is the one write a callback request makes: an INSERT of the raw callback under its unique dedupe key (no
ORM object), then one enqueue that shares its Redis round trip with the other requests in flight
(``app.queue.ArqQueue``). A platform retry hits the unique key and is acknowledged again. On MariaDB the INSERTs
that arrive while one is in flight go together in the next, as one autocommit statement (group commit,
``_Inserts``): every row of it is committed before any of its requests is answered, and a web process makes a few
statements (and commits) where it made one per callback; a row the statement left out (its dedupe key is stored
already, or it failed) is inserted on its own, so a duplicate is told apart from an error exactly as before.

The job of a stored event carries a sender key (the follower's openid with the account, a kf account's OpenKfId)
and first takes the sender's lease. A job that finds the lease held appends its event to the sender's waiting list
and returns; the holder, before it lets go, takes the waiting list in the same atomic step and processes it, in id
(arrival) order, so one customer's messages never run at once in two workers, never overtake each other, and none
waits for the sweep. In Redis (small scripts: acquire-or-append, release-or-take) the lease holds across every
worker process; without Redis (the embedded mode: one process) it lives in memory. An event whose holder died is
pending in the database, and the sweep hands it to a job of its own (``app.channels.inbound_jobs``).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.exceptions import IntegrityError

from app.batching import GroupCommit
from app.channels.models import InboundEvent, bounded_dedupe_key
from app.db import dialect_sql
from app.queue import enqueue
from app.timeutil import utcnow

#: a holder that died gives the sender up after this long (a live one renews it between events)
LEASE_MS = 60_000
PREFIX = "gongdan:inbox:"

COLUMNS = ("channel_account_id", "dedupe_key", "payload", "status", "attempts", "received_at")
#: rows of one grouped statement at most (a callback's row is a few KB: far below max_allowed_packet)
MAX_GROUP = 100


_INSERT = (f"INSERT INTO {{q}}inbound_event{{q}} ({', '.join('{q}' + c + '{q}' for c in COLUMNS)}) "
           f"VALUES ({', '.join(['{m}'] * len(COLUMNS))})")


def _group_sql(rows: int) -> str:
    """One MariaDB statement for `rows` callbacks: the rows whose dedupe key is new come back with their ids."""
    values = ", ".join(["(" + ", ".join(["%s"] * len(COLUMNS)) + ")"] * rows)
    return (f"INSERT IGNORE INTO `inbound_event` ({', '.join(f'`{c}`' for c in COLUMNS)}) VALUES {values} "
            "RETURNING `id`, `dedupe_key`")


async def _insert_group(conn: Any, rows: list[list[Any]]) -> dict[str, int]:
    """One INSERT IGNORE ... RETURNING of these rows (autocommit): the new dedupe keys with their ids. A plain query
    on a pooled connection, not a cursor's: the cursor adds a SHOW WARNINGS round trip, and a Python warning, for
    every duplicate the statement skipped."""
    async with conn.acquire_connection() as connection:
        await connection.query(_group_sql(len(rows)) % tuple(connection.escape(v) for row in rows for v in row))
        returned = connection._result.rows or ()
    return {str(key): int(event_id) for event_id, key in returned}


async def _insert_one(conn: Any, values: list[Any]) -> int | None:
    """The plain INSERT of one row: its id, or None when its dedupe key is stored already (any other integrity
    error, such as a channel account deleted meanwhile, is raised: that callback is not acknowledged)."""
    try:
        return int(await conn.execute_insert(dialect_sql(_INSERT, conn.capabilities.dialect), values))
    except IntegrityError:
        if await InboundEvent.filter(dedupe_key=values[1]).using_db(conn).exists():
            return None
        raise


class _Inserts(GroupCommit[list[Any], int | None]):
    """Group commit (`app.batching.GroupCommit`) of the callbacks one web process stores: the rows that arrive while
    a statement is in flight go together in the next (MariaDB's INSERT IGNORE ... RETURNING, autocommit). A row
    left out of the result (a duplicate key, or an error IGNORE turned into a warning: a vanished channel account)
    and every row of a statement that failed are inserted one by one, so each request gets its own answer: an id,
    None for a duplicate, or the error."""

    max_batch = MAX_GROUP

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn
        self.loop = asyncio.get_running_loop()

    async def _write(self, batch: list[tuple[list[Any], asyncio.Future[int | None]]]) -> None:
        ids: dict[str, int] = {}
        if len(batch) > 1:
            try:
                ids = await _insert_group(self.conn, [values for values, _ in batch])
            except Exception:  # each row again on its own below: each request gets its own outcome
                # (had the statement committed before it failed, its rows now look stored already: they are
                # acknowledged without a job, and the sweep enqueues them, as after a crash before the enqueue)
                pass
        alone: list[tuple[list[Any], asyncio.Future[int | None]]] = []
        given: set[str] = set()
        for values, fut in batch:
            if fut.done():  # the request went away; a row it left is the sweep's (as after a crash before enqueue)
                continue
            event_id = ids.pop(values[1], None)
            if event_id is not None:
                given.add(values[1])
                fut.set_result(event_id)
            elif values[1] in given:
                fut.set_result(None)  # its key twice in one statement: the request before it has the row
            else:
                alone.append((values, fut))
        # side by side on the pool: a burst of platform retries costs one round trip, not one per retry
        await asyncio.gather(*(self._one(values, fut) for values, fut in alone))

    async def _one(self, values: list[Any], fut: asyncio.Future[int | None]) -> None:
        try:
            event_id = await _insert_one(self.conn, values)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(event_id)


_groups: dict[int, _Inserts] = {}
#: id(connection) -> (the connection, whether its server is MariaDB: INSERT ... RETURNING); MySQL proper and SQLite
#: insert row by row
_mariadb: dict[int, tuple[Any, bool]] = {}


async def _is_mariadb(conn: Any) -> bool:
    known = _mariadb.get(id(conn))
    if known is None or known[0] is not conn:
        _, rows = await conn.execute_query("SELECT VERSION() AS v")
        known = _mariadb[id(conn)] = (conn, "mariadb" in str(rows[0]["v"]).lower())
    return bool(known[1])


async def _group_for(conn: Any) -> _Inserts | None:
    """This process's group commit on `conn`; None inside a transaction (its rows are the caller's to commit) and
    where the server has no INSERT ... RETURNING."""
    if isinstance(conn, TransactionalDBClient) or conn.capabilities.dialect != "mysql" or not await _is_mariadb(conn):
        return None
    group = _groups.get(id(conn))
    if group is None or group.conn is not conn or group.loop is not asyncio.get_running_loop():
        group = _groups[id(conn)] = _Inserts(conn)
    return group


async def store(*, channel_account_id: int | None, payload: str, dedupe_key: str,
                sender_key: str | None) -> int | None:
    """Store one callback and enqueue its processing: its id, or None when its dedupe key is stored already."""
    conn: Any = InboundEvent._meta.db
    fields = InboundEvent._meta.fields_map
    # bounded here too: a key longer than the column must never be cut short by the server (INSERT IGNORE would)
    values = [channel_account_id, bounded_dedupe_key(dedupe_key),
              fields["payload"].to_db_value(payload, InboundEvent), "pending", 0,
              fields["received_at"].to_db_value(utcnow(), InboundEvent)]
    group = await _group_for(conn)
    event_id = await (group.add(values) if group is not None else _insert_one(conn, values))
    if event_id is None:
        return None
    await enqueue_event(event_id, sender_key, job_id=f"inbound:{event_id}:0")
    return event_id


async def enqueue_event(event_id: int, sender_key: str | None, *, job_id: str, defer_by: float | None = None) -> None:
    """Enqueue the processing of a stored event (with its sender key, so the job takes the sender's lease)."""
    args: tuple[Any, ...] = (event_id, bounded_dedupe_key(sender_key)) if sender_key else (event_id,)
    await enqueue("process_inbound_event", *args, job_id=job_id, defer_by=defer_by)


# ---- the sender lease ------------------------------------------------------------------------------------------


class SenderLeases(Protocol):
    async def acquire(self, key: str, token: str, event_id: int) -> bool:
        """Take the sender's lease, or append `event_id` to its waiting list and return False."""

    async def release(self, key: str, token: str) -> list[int]:
        """Let go of the lease, unless events are waiting: then keep it and return them (process them next)."""

    async def abandon(self, key: str, token: str) -> None:
        """Let go of the lease after a crash, leaving the waiting list to the next holder."""


class MemoryLeases:
    """The lease within one process (embedded mode, tests)."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.waiting: dict[str, list[int]] = {}

    async def acquire(self, key: str, token: str, event_id: int) -> bool:
        if key in self.held:
            self.waiting.setdefault(key, []).append(event_id)
            return False
        self.held[key] = token
        return True

    async def release(self, key: str, token: str) -> list[int]:
        waiting = self.waiting.pop(key, [])
        if not waiting and self.held.get(key) == token:
            del self.held[key]
        return waiting

    async def abandon(self, key: str, token: str) -> None:
        if self.held.get(key) == token:
            del self.held[key]


_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
"""
_RELEASE = """
local waiting = redis.call('LRANGE', KEYS[2], 0, -1)
if #waiting > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return waiting
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return waiting
"""
_ABANDON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeases:
    """The lease across every worker process. Acquire-or-append and release-or-take are atomic scripts, so an event
    appended just before the holder lets go is always taken by it."""

    def __init__(self, client: Any) -> None:
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._abandon = client.register_script(_ABANDON)

    @staticmethod
    def _keys(key: str) -> list[str]:
        return [f"{PREFIX}lease:{key}", f"{PREFIX}waiting:{key}"]

    async def acquire(self, key: str, token: str, event_id: int) -> bool:
        return bool(await self._acquire(keys=self._keys(key), args=[token, LEASE_MS, event_id]))

    async def release(self, key: str, token: str) -> list[int]:
        return [int(x) for x in await self._release(keys=self._keys(key), args=[token, LEASE_MS])]

    async def abandon(self, key: str, token: str) -> None:
        await self._abandon(keys=self._keys(key), args=[token])


_memory = MemoryLeases()


def leases_for(ctx: dict[str, Any]) -> SenderLeases:
    """The arq worker's Redis when the job runs in one, else this process's memory."""
    client = ctx.get("redis")
    if client is None:
        return _memory
    leases = ctx.get("_sender_leases")
    if not isinstance(leases, RedisLeases):
        leases = ctx["_sender_leases"] = RedisLeases(client)
    return leases


def new_token() -> str:
    """A lease holder's identity."""
    return secrets.token_hex(8)
