"""Start-up objects frozen out of the collector's full collections, in the web app and the worker."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from app import heap


@pytest.fixture
def unfrozen() -> Iterator[list[int]]:
    """Count freeze_startup calls; leave the process as the test found it (nothing frozen)."""
    gc.unfreeze()
    calls: list[int] = []
    yield calls
    gc.unfreeze()


def test_what_is_alive_is_frozen_and_garbage_is_collected_first(unfrozen: list[int]) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    del cycle  # garbage, reachable only from itself: collected, not frozen
    kept = [object()]
    assert heap.freeze_startup() > 0  # a frozen object freed by its last reference leaves the count: no exact figure
    alive = gc.get_objects()  # what later collections walk: neither the frozen list nor the collected cycle
    assert not any(o is kept for o in alive)
    assert not any(isinstance(o, list) and len(o) == 1 and o[0] is o for o in alive)


async def test_the_app_freezes_its_start_up(unfrozen: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    monkeypatch.setattr(heap, "freeze_startup", lambda: unfrozen.append(1) or 1)
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

    monkeypatch.setattr(heap, "freeze_startup", lambda: unfrozen.append(1) or 1)
    set_settings(make_settings())
    try:
        await worker._startup({"redis": _Pool()})
        assert unfrozen == [1]
    finally:
        await close_db()
        jobqueue.set_queue(None)
        set_settings(None)
