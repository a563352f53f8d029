"""The tortoise configuration shared by the web process, the workers, the CLI and migrations."""

from __future__ import annotations

from typing import Any
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


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """Build the tortoise config dict (also the target of `tortoise` CLI's --config)."""
    connections = {"default": database_url(settings)}
    if settings.database_replica_url:
        connections[REPLICA] = database_url(settings.with_overrides(database_url=settings.database_replica_url))
    return {
        "connections": connections,
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
