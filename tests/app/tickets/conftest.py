"""Every tickets test leaves the real clock (the root conftest empties the per-process caches around each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.timeutil import set_clock


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    set_clock(None)
