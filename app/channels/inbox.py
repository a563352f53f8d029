"""The callback path's store and the per-sender inbox: one customer's callbacks in order, different customers in
parallel, without a database lock between them.

``store`` is the one write a callback request makes: a plain INSERT of the raw callback under its unique dedupe key
(no ORM object, no read back), then one enqueue that shares its Redis round trip with the other requests in flight
(``app.queue.ArqQueue``). A platform retry hits the unique key and is acknowledged again.

The job of a stored event carries a sender key (the follower's openid with the account, a kf account's OpenKfId)
and first takes the sender's lease. A job that finds the lease held appends its event to the sender's waiting list
and returns; the holder, before it lets go, takes the waiting list in the same atomic step and processes it, in id
(arrival) order, so one customer's messages never run at once in two workers, never overtake each other, and none
waits for the sweep. In Redis (small scripts: acquire-or-append, release-or-take) the lease holds across every
worker process; without Redis (the embedded mode: one process) it lives in memory. An event whose holder died is
pending in the database, and the sweep hands it to a job of its own (``app.channels.inbound_jobs``).
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from tortoise.exceptions import IntegrityError

from app.channels.models import InboundEvent, bounded_dedupe_key
from app.queue import enqueue
from app.timeutil import utcnow

#: a holder that died gives the sender up after this long (a live one renews it between events)
LEASE_MS = 60_000
PREFIX = "gongdan:inbox:"

_INSERT: dict[str, str] = {}


def _insert_sql(dialect: str) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    q = "`" if dialect == "mysql" else '"'
    columns = ("channel_account_id", "dedupe_key", "payload", "status", "attempts", "received_at")
    return (f"INSERT INTO {q}inbound_event{q} ({', '.join(f'{q}{c}{q}' for c in columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


async def store(*, channel_account_id: int | None, payload: str, dedupe_key: str,
                sender_key: str | None) -> int | None:
    """Store one callback and enqueue its processing: its id, or None when its dedupe key is stored already."""
    conn: Any = InboundEvent._meta.db
    dialect = conn.capabilities.dialect
    sql = _INSERT.get(dialect) or _INSERT.setdefault(dialect, _insert_sql(dialect))
    fields = InboundEvent._meta.fields_map
    values = [channel_account_id, dedupe_key, fields["payload"].to_db_value(payload, InboundEvent), "pending", 0,
              fields["received_at"].to_db_value(utcnow(), InboundEvent)]
    try:
        event_id = int(await conn.execute_insert(sql, values))
    except IntegrityError:
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
