"""Leases kept alive by the worker holding them: short enough that a killed worker's row is taken over within
seconds, renewed while a live worker is still busy, so no legitimate run (a slow platform, a long kf pull) loses its
row to a second worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from app.logs import get_logger

log = get_logger(__name__)


@asynccontextmanager
async def renewed(renew: Callable[[], Awaitable[object]], *, every: float, name: str) -> AsyncIterator[None]:
    """Call ``renew`` every ``every`` seconds while the block runs (create this outside any transaction)."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await renew()
            except Exception:  # a missed renewal is retried next period; the lease has two periods to spare
                log.warning("lease.renew_failed", lease=name, exc_info=True)

    task = asyncio.create_task(keep(), name=f"lease:{name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
