"""A transaction with after-commit hooks: side effects are recorded inside, their jobs enqueued only after commit.

Zulip's `queue_event_on_commit`, for tortoise: if the process dies between commit and enqueue, the rows are still
there and the sweep cron enqueues them. Rows nothing reads back in the transaction (a report's staleness marks) can
be held until just before the commit and written together (`insert_later`): one statement however many were added.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from app.rows import insert_rows

Hook = Callable[[], Awaitable[Any]]
_hooks: contextvars.ContextVar[list[Hook] | None] = contextvars.ContextVar("gongdan_on_commit", default=None)
#: the outermost `atomic`'s rows held for one INSERT per model before its commit (`insert_later`)
_later: contextvars.ContextVar[list[tuple[type[Model], dict[str, Any]]] | None] = contextvars.ContextVar(
    "gongdan_insert_later", default=None)


@asynccontextmanager
async def transaction() -> AsyncIterator[Any]:
    """tortoise's transaction (``atomic`` adds the on-commit hooks), ending cancelled when it was cancelled: aiomysql
    closes a connection whose statement a cancellation interrupts, so the rollback cannot be sent (the server rolls
    back as the connection goes) and its InterfaceError took the cancellation's place; a job cancelled by its timeout
    or a worker's shutdown then read as a database failure, and at shutdown as an exception nobody retrieved. Every
    transaction outside ``atomic`` (the WeCom sync's, the SQLite ticket counter's) opens through here too."""
    try:
        async with in_transaction("default") as conn:
            yield conn
    except Exception as exc:
        cancelled = exc.__context__
        if isinstance(cancelled, asyncio.CancelledError):
            raise cancelled from None
        raise


@asynccontextmanager
async def atomic() -> AsyncIterator[Any]:
    """Open a transaction (or join the enclosing one); run on-commit hooks after the outermost commit."""
    outer = _hooks.get()
    later = _later.get()
    if outer is not None and later is not None:
        held = len(later)
        try:
            async with transaction() as conn:
                yield conn
        except BaseException:
            del later[held:]  # the savepoint rolled back: so are the rows this block held
            raise
        return
    hooks: list[Hook] = []
    rows: list[tuple[type[Model], dict[str, Any]]] = []
    token, rows_token = _hooks.set(hooks), _later.set(rows)
    try:
        async with transaction() as conn:
            yield conn
            await _write_held(rows)
    finally:
        _hooks.reset(token)
        _later.reset(rows_token)
    for hook in hooks:
        await hook()


@asynccontextmanager
async def joined() -> AsyncIterator[None]:
    """The caller's transaction when there is one, else a new one (`atomic`): no savepoint, for steps whose failure
    fails the caller's whole transaction anyway (a savepoint costs two round trips and protects nothing there)."""
    if inside_transaction():
        yield
        return
    async with atomic():
        yield


def inside_transaction() -> bool:
    """Whether this task's statements go to a transaction (`atomic`, or tortoise's own)."""
    return isinstance(connections.get("default"), TransactionalDBClient)


async def insert_later(model: type[Model], row: dict[str, Any]) -> None:
    """Insert `row` into `model`'s table just before the current `atomic` commits, in one statement with the other
    rows held for that table (now when there is no `atomic`): only for rows nothing reads back in the transaction."""
    later = _later.get()
    if later is None:
        await insert_rows(model, [row])
    else:
        later.append((model, row))


async def _write_held(rows: list[tuple[type[Model], dict[str, Any]]]) -> None:
    by_model: dict[type[Model], list[dict[str, Any]]] = {}
    for model, row in rows:
        by_model.setdefault(model, []).append(row)
    rows.clear()
    for model, held in by_model.items():
        await insert_rows(model, held)


async def on_commit(hook: Hook) -> None:
    """Run `hook` after the current transaction commits, or now when there is none."""
    hooks = _hooks.get()
    if hooks is None:
        await hook()
    else:
        hooks.append(hook)
