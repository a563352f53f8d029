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
