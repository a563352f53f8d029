"""A transaction with after-commit hooks: side effects are recorded inside, their jobs enqueued only after commit.

Zulip's `queue_event_on_commit`, for tortoise: if the process dies between commit and enqueue, the rows are still
there and the sweep cron enqueues them.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

Hook = Callable[[], Awaitable[Any]]
_hooks: contextvars.ContextVar[list[Hook] | None] = contextvars.ContextVar("gongdan_on_commit", default=None)


@asynccontextmanager
async def atomic() -> AsyncIterator[Any]:
    """Open a transaction (or join the enclosing one); run on-commit hooks after the outermost commit."""
    outer = _hooks.get()
    if outer is not None:
        async with in_transaction("default") as conn:
            yield conn
        return
    hooks: list[Hook] = []
    token = _hooks.set(hooks)
    try:
        async with in_transaction("default") as conn:
            yield conn
    finally:
        _hooks.reset(token)
    for hook in hooks:
        await hook()


@asynccontextmanager
async def joined() -> AsyncIterator[None]:
    """The caller's transaction when there is one, else a new one (`atomic`): no savepoint, for steps whose failure
    fails the caller's whole transaction anyway (a savepoint costs two round trips and protects nothing there)."""
    if isinstance(connections.get("default"), TransactionalDBClient):
        yield
        return
    async with atomic():
        yield


async def on_commit(hook: Hook) -> None:
    """Run `hook` after the current transaction commits, or now when there is none."""
    hooks = _hooks.get()
    if hooks is None:
        await hook()
    else:
        hooks.append(hook)
