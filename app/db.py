"""The tortoise configuration shared by the web process, the workers, the CLI and migrations."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise

from app.settings import Settings

MODEL_MODULES = [
    "app.staff.models",
    "app.customers.models",
    "app.channels.models",
    "app.conversations.models",
    "app.tickets.models",
    "app.outbox.models",
    "app.security.models",
    "wecom_sync.models",
    "app.kb.models",
    "app.channels.wecom_kf.models",
    "app.channels.email.models",
    "approvals.models",
    "app.webhooks.models",
    "app.integrations.models",
    "app.reports.models",
    "app.assist.models",
    "app.replies.models",
]
APP_LABEL = "gongdan"


def database_url(settings: Settings) -> str:
    """Return the tortoise URL, with the MySQL pool sized for one process's concurrency."""
    url = settings.database_url
    if not settings.is_mysql:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("charset", "utf8mb4")
    query.setdefault("maxsize", str(settings.db_pool_size))
    query.setdefault("minsize", "1")
    return urlunsplit(parts._replace(query=urlencode(query)))


#: the connection list and report queries read from when DATABASE_REPLICA_URL is set
REPLICA = "replica"
#: MySQL only: a small pool of its own for the ticket counter's autocommit statement (app.tickets.numbers), so a
#: number is never taken inside the caller's transaction and never waits for the main pool that transaction uses
COUNTER = "counter"


#: set inside replica_reads(): this task's reads go to the replica
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


class ReplicaReads:
    """Tortoise router (configured only with a replica): inside `replica_reads()` every read goes to the replica, so
    a report's dozens of queries need no `using_db` each; writes, and reads anywhere else, stay on the primary."""

    def db_for_read(self, model: type[Any]) -> str | None:
        return REPLICA if _replica_reads.get() else None

    def db_for_write(self, model: type[Any]) -> str | None:
        return None


@contextmanager
def replica_reads() -> Iterator[None]:
    """Read from DATABASE_REPLICA_URL (when configured) in this block and the tasks it starts: reports and other
    read-only views whose figures may lag the primary by a moment; never around a write or a read-then-write."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def read_connection() -> Any:
    """The connection a raw read-only SQL statement runs on: the replica inside replica_reads() (when configured),
    else the primary."""
    from tortoise import connections

    return reader() if _replica_reads.get() else connections.get("default")


P = ParamSpec("P")
R = TypeVar("R")


def reads_replica(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A read-only coroutine function whose every query runs inside replica_reads()."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with replica_reads():
            return await fn(*args, **kwargs)

    return wrapper


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """Build the tortoise config dict (also the target of `tortoise` CLI's --config)."""
    connections = {"default": database_url(settings)}
    if settings.is_mysql:
        connections[COUNTER] = database_url(settings.with_overrides(db_pool_size=2))
    routers: list[str] = []
    if settings.database_replica_url:
        connections[REPLICA] = database_url(settings.with_overrides(database_url=settings.database_replica_url))
        routers.append(f"{__name__}.ReplicaReads")
    return {
        "connections": connections,
        "routers": routers,
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "app.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings) -> None:
    """Open the connections for this process (the schema must already be migrated)."""
    if not settings.is_mysql:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


_DIALECT_SQL: dict[tuple[str, str], str] = {}


def quote_and_mark(dialect: str) -> tuple[str, str]:
    """The identifier quote and the parameter mark of tortoise's `dialect` ("mysql" or "sqlite")."""
    return ("`", "%s") if dialect == "mysql" else ('"', "?")


def dialect_sql(template: str, dialect: str) -> str:
    """A hot-path statement written once with ``{q}`` for identifier quotes and ``{m}`` for a parameter mark, for
    tortoise's `dialect` ("mysql" or "sqlite"); built once per process (query building cost more CPU than the round
    trip)."""
    sql = _DIALECT_SQL.get((template, dialect))
    if sql is None:
        q, m = quote_and_mark(dialect)
        sql = _DIALECT_SQL[(template, dialect)] = template.format(q=q, m=m)
    return sql


_ROWS_SQL: dict[tuple[str, Any, str], str] = {}


def rows_sql(template: str, model: Any, *, alias: str = "") -> str:
    """`dialect_sql` on `model`'s connection for a read of whole rows through tortoise's ``Model.raw``: ``{{columns}}``
    becomes every column of the model (after ``alias.``); other ``{{name}}`` fields stay for the caller's ``format``
    (``Model.raw`` takes no parameters, so only ints go in there)."""
    dialect = str(model._meta.db.capabilities.dialect)
    sql = _ROWS_SQL.get((template, model, dialect))
    if sql is None:
        quote = quote_and_mark(dialect)[0]
        prefix = f"{alias}." if alias else ""
        columns = ",".join(f"{prefix}{quote}{c}{quote}" for c in model._meta.fields_db_projection.values())
        sql = _ROWS_SQL[(template, model, dialect)] = dialect_sql(template, dialect).replace("{columns}", columns)
    return sql


def counter_connection() -> Any:
    """The ticket counter's own pool (MySQL), else the default connection (the caller's transaction, if any)."""
    from tortoise import connections

    try:
        return connections.get(COUNTER)
    except Exception:  # SQLite, or a process set up without it (a benchmark's own config)
        return connections.get("default")


def reader() -> Any:
    """The connection for read-only list and report queries: the replica when DATABASE_REPLICA_URL is set, else
    the primary. A replica lags a little: a page that must show what its user just wrote reads the primary."""
    from tortoise import connections

    try:
        return connections.get(REPLICA)
    except Exception:  # not configured in this process
        return connections.get("default")


async def close_db() -> None:
    """Close every connection of this process."""
    await Tortoise.close_connections()


async def migrate(settings: Settings) -> None:
    """Apply the committed migrations (tortoise's own migration engine)."""
    from tortoise.migrations.api.migrate import migrate as run_migrations

    if not settings.is_mysql:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await run_migrations(config=tortoise_config(settings))
    await Tortoise.close_connections()


def __getattr__(name: str) -> Any:
    """Expose `TORTOISE_ORM` lazily so `tortoise -c app.db.TORTOISE_ORM makemigrations` reads the environment."""
    if name == "TORTOISE_ORM":
        from app.settings import get_settings

        return tortoise_config(get_settings())
    raise AttributeError(name)
