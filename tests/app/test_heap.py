"""Start-up objects frozen out of the collector's full collections and a larger young generation, in the web app,
the worker and the command line."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from app import heap


@pytest.fixture
def unfrozen() -> Iterator[list[int]]:
    """Count settle calls; leave the process as the test found it (nothing frozen, the same thresholds)."""
    gc.unfreeze()
    thresholds = gc.get_threshold()
    calls: list[int] = []
    yield calls
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_what_is_alive_is_frozen_and_garbage_is_collected_first(unfrozen: list[int]) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    del cycle  # garbage, reachable only from itself: collected, not frozen
    kept = [object()]
    assert heap.settle() > 0  # a frozen object freed by its last reference leaves the count: no exact figure
    alive = gc.get_objects()  # what later collections walk: neither the frozen list nor the collected cycle
    assert not any(o is kept for o in alive)
    assert not any(isinstance(o, list) and len(o) == 1 and o[0] is o for o in alive)


def test_the_young_generation_is_collected_every_young_objects_allocations(unfrozen: list[int]) -> None:
    gc.set_threshold(700, 11, 12)
    heap.settle()
    assert gc.get_threshold() == (heap.YOUNG_OBJECTS, 11, 12) == (10_000, 11, 12)


async def test_the_app_freezes_its_start_up(unfrozen: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    monkeypatch.setattr(heap, "settle", lambda: unfrozen.append(1) or 1)
    app = create_app(make_settings(), run_jobs=False)
    async with app.router.lifespan_context(app):
        assert unfrozen == [1]


class _Pool:
    """What the worker's start-up asks of arq's Redis pool (no round trip is made)."""

    def register_script(self, script: str) -> object:
        return object()


async def test_the_worker_freezes_its_start_up(unfrozen: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    from app import queue as jobqueue
    from app import worker
    from app.db import close_db
    from app.settings import set_settings
    from tests.conftest import make_settings

    monkeypatch.setattr(heap, "settle", lambda: unfrozen.append(1) or 1)
    set_settings(make_settings())
    try:
        await worker._startup({"redis": _Pool()})
        assert unfrozen == [1]
    finally:
        await close_db()
        jobqueue.set_queue(None)
        set_settings(None)


def test_a_command_settles_after_start_up_and_before_its_work(unfrozen: list[int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import _with_db
    from tests.conftest import make_settings

    monkeypatch.setattr(heap, "settle", lambda: unfrozen.append(1) or 1)

    async def work() -> int:
        return len(unfrozen)

    assert _with_db(make_settings(), work) == 1
    assert unfrozen == [1]


@pytest.fixture
def collecting() -> Iterator[None]:
    """The collector on, as a process has it; left as the test found it."""
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_a_pause_keeps_the_collector_off_until_its_last_holder_leaves(collecting: None) -> None:
    first, second = heap.paused(), heap.paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)  # overlapping, not nested: the first holder leaves before the second
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_pause_gives_back_the_collector_as_it_found_it_even_when_its_holder_fails(collecting: None) -> None:
    gc.disable()
    with heap.paused():
        pass
    assert not gc.isenabled()  # somebody else had turned it off: still off
    gc.enable()
    with pytest.raises(RuntimeError), heap.paused():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()
