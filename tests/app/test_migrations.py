"""The committed migrations apply cleanly and match the models (a model change without a migration fails here)."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise
from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector

from app.db import migrate, tortoise_config
from app.settings import Settings


async def test_migrations_apply_on_a_fresh_sqlite_file(settings: Settings, tmp_path: Path) -> None:
    s = settings.with_overrides(database_url=f"sqlite://{tmp_path}/fresh.sqlite3", data_dir=tmp_path)
    await migrate(s)
    await Tortoise.init(config=tortoise_config(s), _enable_global_fallback=True)
    try:
        conn = Tortoise.get_connection("default")
        _, rows = await conn.execute_query("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {r["name"] for r in rows}
    finally:
        await Tortoise.close_connections()
    assert {"ticket", "customer", "outbox_message", "inbound_event", "message", "staff", "department"} <= tables


async def test_models_and_migrations_agree(settings: Settings) -> None:
    config = tortoise_config(settings.with_overrides(database_url="sqlite://:memory:"))
    apps = config["apps"]
    async with tortoise_cli_context(config) as ctx:
        writers = await MigrationAutodetector(ctx.apps, apps).changes()
    assert [w.name for w in writers] == [], "models changed without a migration: run `make migrations`"


def test_no_semicolons_in_schema_descriptions() -> None:
    # tortoise's SQLite migration runner splits statements on ';' and breaks on one inside a column comment
    text = (Path(__file__).resolve().parents[2] / "app" / "migrations").glob("0*.py")
    for path in text:
        assert ";" not in path.read_text(), f"{path.name}: a ';' in a description breaks SQLite migrations"


async def test_no_index_on_mariadb_starts_with_all_the_columns_of_another(mysql_db: None) -> None:
    # a non-unique index whose columns open another index only costs writes (0003 left two on ticket)
    rows = await Tortoise.get_connection("default").execute_query_dict(
        "SELECT table_name AS t, index_name AS i, non_unique AS u, "
        "GROUP_CONCAT(column_name ORDER BY seq_in_index) AS c FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() GROUP BY table_name, index_name, non_unique")
    indexes = [(str(r["t"]), str(r["i"]), bool(int(r["u"])), str(r["c"]).split(",")) for r in rows]
    assert len(indexes) > 50
    redundant = sorted(
        f"{table}.{name} {cols} opens {other} {longer}"
        for table, name, non_unique, cols in indexes if non_unique
        for t2, other, _, longer in indexes
        if t2 == table and other != name and longer[:len(cols)] == cols and (len(longer) > len(cols) or other < name))
    assert redundant == []
