"""Group commit: what concurrent requests ask for while a round trip is in flight goes together in the next one.

Used where many requests each make one small write (a callback's INSERT, a Redis command): at 64 concurrent
callbacks a web process makes a few round trips, not 64.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`add` queues an item and waits for its answer; the requests handled in the same turn of the event loop go in
    one batch to `_write`, which must settle every future of its batch (a result or an exception each)."""

    #: items per batch at most (None: all that are waiting)
    max_batch: int | None = None

    def __init__(self) -> None:
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.flusher: asyncio.Task[None] | None = None

    async def add(self, item: T) -> R:
        """Queue `item` for the next batch and return its answer."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.pending.append((item, fut))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self.pending:
            await asyncio.sleep(0)  # the requests handled in this turn of the loop join the batch
            size = self.max_batch or len(self.pending)
            batch, self.pending = self.pending[:size], self.pending[size:]
            await self._write(batch)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        raise NotImplementedError

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
        """Every request of a failed batch gets its error; a cancellation (or an exit) goes on up."""
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)
        if not isinstance(exc, Exception):
            raise exc
