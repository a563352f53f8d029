"""Every reports test leaves the real clock (the root conftest empties the per-process caches around each test)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest
from tortoise import Tortoise
from tortoise.utils import get_schema_sql

from app.timeutil import set_clock
from tests.conftest import TEST_DB


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    set_clock(None)


@pytest.fixture
async def db(db: None) -> AsyncIterator[None]:
    """The shared database; on MariaDB the report tables are created when the migrations do not have them yet
    (the migration that adds them is generated once by the lead; existing tables are left alone)."""
    if TEST_DB == "mysql":
        conn = Tortoise.get_connection("default")
        have = {next(iter(r.values())) for r in await conn.execute_query_dict("SHOW TABLES LIKE 'report\\_%'")}
        for statement in get_schema_sql(conn, safe=False).split(";"):
            match = re.search(r"CREATE TABLE `(report_\w+)`", statement)
            if match and match.group(1) not in have:
                await conn.execute_script(statement)
    yield
