"""Routing, calendars, SLA policies and assignment strategies are cached per process: every test starts and ends
with empty caches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.tickets import assignment, calendar, routing, sla
from app.timeutil import set_clock


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    for cache in (routing, calendar, sla, assignment):
        cache.invalidate()
    yield
    for cache in (routing, calendar, sla, assignment):
        cache.invalidate()
    set_clock(None)
