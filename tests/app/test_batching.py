"""app.batching.GroupCommit: what is asked for in one turn of the event loop goes in one batch."""

from __future__ import annotations

import asyncio

import pytest

from app.batching import GroupCommit


class Doubler(GroupCommit[int, int]):
    def __init__(self, max_batch: int | None = None) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.batches: list[list[int]] = []

    async def _write(self, batch: list[tuple[int, asyncio.Future[int]]]) -> None:
        self.batches.append([item for item, _ in batch])
        await asyncio.sleep(0)  # a round trip: requests made meanwhile wait for the next batch
        for item, fut in batch:
            if item < 0:
                fut.set_exception(ValueError(item))
            else:
                fut.set_result(item * 2)


async def test_requests_of_one_turn_go_together_and_each_gets_its_own_answer() -> None:
    doubler = Doubler()
    assert await asyncio.gather(*(doubler.add(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert doubler.batches == [[0, 1, 2, 3, 4]]
    with pytest.raises(ValueError):
        await doubler.add(-1)
    assert await doubler.add(7) == 14
    assert doubler.batches[1:] == [[-1], [7]]


async def test_a_batch_holds_at_most_max_batch_items() -> None:
    doubler = Doubler(max_batch=2)
    assert await asyncio.gather(*(doubler.add(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert doubler.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_batch_gives_every_request_its_error_and_a_cancellation_goes_on_up() -> None:
    loop = asyncio.get_running_loop()
    batch: list[tuple[int, asyncio.Future[int]]] = [(1, loop.create_future()), (2, loop.create_future())]
    GroupCommit._fail(batch, ConnectionError("gone"))
    assert [type(f.exception()) for _, f in batch] == [ConnectionError, ConnectionError]
    other: list[tuple[int, asyncio.Future[int]]] = [(3, loop.create_future())]
    with pytest.raises(asyncio.CancelledError):
        GroupCommit._fail(other, asyncio.CancelledError())
    assert other[0][1].cancelled() or isinstance(other[0][1].exception(), asyncio.CancelledError)
