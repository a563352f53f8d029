"""Shared fixtures: settings, a database per test (SQLite, and MariaDB for the integration tier), a job queue.

Tiers: plain tests use in-memory SQLite (seconds). Tests taking `anydb` run on SQLite and on MariaDB; `mysql_db`
only on MariaDB. MariaDB and Redis are optional on a developer machine (skipped when unreachable) and mandatory
under CI=true (unreachable = failure, never a skip).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["GONGDAN_ENV"] = "test"

from tortoise import Tortoise  # noqa: E402

from app import queue as jobqueue  # noqa: E402
from app.channels.base import register_adapter  # noqa: E402
from app.channels.testing import RecordingAdapter  # noqa: E402
from app.db import MODEL_MODULES, tortoise_config  # noqa: E402
from app.logs import configure_logging  # noqa: E402
from app.settings import Settings, load_settings, set_settings  # noqa: E402

#: one database per pytest process, so parallel runs (developers, CI, helpers) never share tables
MYSQL_DB = f"gongdan_test_{os.getpid()}"
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", f"mysql://root:@127.0.0.1:3306/{MYSQL_DB}")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: which server the plain `db` fixture uses: sqlite (default) or mysql
TEST_DB = os.environ.get("TEST_DB", "sqlite")

configure_logging(fmt="console", level="WARNING")

# the web app, the worker and the tests wire the application the same way (nothing registers on import)
from app.setup import setup  # noqa: E402

setup()


def make_settings(**overrides: Any) -> Settings:
    base = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": "sqlite://:memory:"}, env_file=None)
    return base.with_overrides(**overrides)


def _forget_caches() -> None:
    """Forget what the process cached of the previous database (rules, policies, calendars, webhooks, the card keys
    known stored: their ids repeat from one test database to the next)."""
    from app.notifications import staff as cards
    from app.outbox import service as outbox
    from app.tickets import assignment, calendar, routing, sla
    from app.webhooks import service as webhooks

    for cache in (routing, sla, calendar, assignment, webhooks, outbox, cards):
        cache.invalidate()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test has its own database: nothing cached of another one."""
    _forget_caches()
    yield
    _forget_caches()
    if TEST_DB == "mysql":
        # the next test may use SQLite outside the `db` fixture (a CLI run on a file): tortoise's SQL cache is per
        # connection name, not per dialect
        _forget_dialect()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The application's log lines as rendered (after redaction), at INFO."""
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    old_level = root.level
    # an in-thread uvicorn (the simulator) may have set uvicorn's loggers to its own level: take the root's here
    access = logging.getLogger("uvicorn.access")
    access_level = access.level
    access.setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield buffer
    access.setLevel(access_level)
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = make_settings(data_dir=tmp_path / "data")
    set_settings(s)
    yield s
    set_settings(None)


def _forget_dialect() -> None:
    # tortoise caches insert SQL per connection *name*; both tiers use "default", so switching dialects in one
    # process must drop the cache
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


async def _init_mysql(settings: Settings) -> None:
    _require_mysql()
    s = settings.with_overrides(database_url=MYSQL_URL, db_pool_size=20)
    set_settings(s)
    _forget_dialect()
    await Tortoise.init(config=tortoise_config(s), _enable_global_fallback=True)
    await _truncate_mysql()


async def _init_sqlite() -> None:
    _forget_dialect()
    await Tortoise.init(db_url="sqlite://:memory:", modules={"gongdan": MODEL_MODULES}, _enable_global_fallback=True)
    await Tortoise.generate_schemas()


@pytest.fixture
async def db(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[None]:
    """The test's database: SQLite in memory, or this run's MariaDB database when TEST_DB=mysql (`make test-mysql`
    runs the whole SQLite tier again on MariaDB; tests marked sqlite_only read SQLite's own catalogue or files)."""
    from app.wecom import transport

    await fresh_database(settings, sqlite_only=request.node.get_closest_marker("sqlite_only") is not None)
    yield
    await transport.close()  # the test's loop ends with it: WeCom's keep-alive connections go first
    await Tortoise.close_connections()


async def fresh_database(settings: Settings, *, sqlite_only: bool = False) -> None:
    """An empty database of this run's tier (a test that needs a second fresh start calls it again), and nothing
    cached of the previous one."""
    _forget_caches()
    if TEST_DB == "mysql" and not sqlite_only:
        await _init_mysql(settings)
    else:
        await _init_sqlite()


# ---- MariaDB tier ---------------------------------------------------------------------------------------------


def _mysql_available() -> str | None:
    """Create this run's database and apply the committed migrations once; None when the server is missing.

    An unreachable server is reported (a skip locally, a failure under CI); a migration that fails raises.
    """
    import aiomysql

    from app.db import migrate

    async def connect() -> None:
        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        async with conn.cursor() as cur:
            await cur.execute(f"SHOW DATABASES LIKE '{MYSQL_DB}'")
            if await cur.fetchall():
                await cur.execute(f"DROP DATABASE {MYSQL_DB}")
            await cur.execute(f"CREATE DATABASE {MYSQL_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        conn.close()

    async def prepare() -> None:
        await migrate(make_settings(database_url=MYSQL_URL, db_pool_size=20))

    import concurrent.futures

    # the caller is inside the test's event loop: work on a loop of our own, in another thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, connect()).result(timeout=60)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        pool.submit(asyncio.run, prepare()).result(timeout=300)
    return None


_mysql_state: dict[str, str | None] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's MariaDB database."""
    if "error" not in _mysql_state:
        return
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {MYSQL_DB}")
        conn.close()
    except Exception:  # cleanup only; a leftover database harms nothing
        pass


def _require_mysql() -> None:
    if "error" not in _mysql_state:
        try:
            _mysql_state["error"] = _mysql_available()
        except Exception as exc:
            _mysql_state["error"] = f"migrations failed on MariaDB: {type(exc).__name__}: {exc}"
            _mysql_state["broken"] = "1"
    error = _mysql_state["error"]
    if _mysql_state.get("broken"):
        pytest.fail(str(error))
    if error is not None:
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI and is unreachable: {error}")
        pytest.skip(f"MariaDB not reachable: {error}")


async def _truncate_mysql() -> None:
    conn = Tortoise.get_connection("default")
    await conn.execute_script("SET FOREIGN_KEY_CHECKS=0")
    rows = await conn.execute_query_dict("SHOW TABLES")
    for row in rows:
        table = next(iter(row.values()))
        if table.startswith("tortoise_"):
            continue
        await conn.execute_script(f"TRUNCATE TABLE `{table}`")
    await conn.execute_script("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture
async def mysql_db(settings: Settings) -> AsyncIterator[None]:
    await _init_mysql(settings)
    yield
    await Tortoise.close_connections()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def anydb(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[str]:
    """Run the test on SQLite and on MariaDB."""
    if request.param == "sqlite":
        await _init_sqlite()
    else:
        await _init_mysql(settings)
    yield str(request.param)
    await Tortoise.close_connections()


# ---- jobs and channels ----------------------------------------------------------------------------------------


@pytest.fixture
async def jobs() -> AsyncIterator[jobqueue.InProcessQueue]:
    """An in-process queue with every job; `await jobs.drain()` waits until all work is done."""
    from app.worker import load_jobs

    q = jobqueue.InProcessQueue(load_jobs(), workers=2)
    q.start()
    jobqueue.set_queue(q)
    yield q
    await q.close()
    jobqueue.set_queue(None)


class RecordingQueue:
    """A job queue that only remembers what was enqueued, as (name, args, job_id); a job id already waiting is
    dropped, as arq does."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> None:
        if job_id is None or all(j[2] != job_id for j in self.jobs):
            self.jobs.append((name, args, job_id))

    async def waiting(self, lane: str) -> int:
        """Recorded jobs of `lane` (none runs, so all wait)."""
        return sum(1 for name, _, _ in self.jobs if jobqueue.lane_of(name) == lane)


@pytest.fixture
def queue() -> Iterator[RecordingQueue]:
    """The job queue as a RecordingQueue: no job runs, ``queue.jobs`` says what was enqueued."""
    q = RecordingQueue()
    jobqueue.set_queue(q)
    yield q
    jobqueue.set_queue(None)


@pytest.fixture
def recording() -> RecordingAdapter:
    """A channel adapter that records what it would send (kind 'test')."""
    from app.channels.base import IDENTITY_KIND

    adapter = RecordingAdapter()
    register_adapter(adapter)
    IDENTITY_KIND["test"] = "test_id"
    return adapter


def redis_url_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI and is unreachable: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    return REDIS_URL


@pytest.fixture
async def api(db: None, settings: Settings) -> AsyncIterator[Any]:
    """An HTTP client for the ASGI app (the test owns the database; no lifespan)."""
    import httpx

    from app.main import create_app

    app = create_app(settings, run_jobs=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
        yield client
