"""`gongdan channel add webchat ...` goes through the console's form check and save (``WebchatSiteIn`` and
``save_site``): the same input is refused by both, with nothing written, and a saved site is audited."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import set_settings


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One migrated database for the module (migrating takes seconds)."""
    from app.cli import main

    tmp = tmp_path_factory.mktemp("webchat-cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite://{tmp}/cli.sqlite3")
        mp.setenv("DATA_DIR", str(tmp / "data"))
        mp.setenv("PUBLIC_URL", "https://desk.example.com")
        set_settings(None)
        main(["migrate"])
        try:
            yield tmp / "cli.sqlite3"
        finally:
            set_settings(None)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_channel_add_webchat_saves_the_site_and_prints_the_snippet(cli_db: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    main(["channel", "add", "email", "--key", "support", "--address", "support@example.com", "--imap-host",
          "imap.example.com", "--smtp-host", "smtp.example.com", "--password", "x", "--no-idle"])
    main(["channel", "add", "webchat", "--key", "shop", "--name", "示例商城", "--origin", "https://Shop.example.com/",
          "--no-bot", "--verify-mailbox", "support", "--per-visitor", "5"])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == '<script src="https://desk.example.com/static/webchat/widget.js" data-site="shop" async></script>'
    configs = dict(_rows(cli_db, "SELECT key, config FROM channel_account"))
    ids = dict(_rows(cli_db, "SELECT key, id FROM channel_account"))
    assert json.loads(str(configs["support"]))["idle"] is False
    site = json.loads(str(configs["shop"]))
    assert (site["origins"], site["bot"], site["verify_mailbox"], site["per_visitor"], site["per_ip"]) == (
        ["https://shop.example.com"], False, "support", 5, 30)
    assert _rows(cli_db, "SELECT action, staff_id, object_id FROM audit_log ORDER BY id")[-2:] == [
        ("mailbox_save", None, str(ids["support"])), ("webchat_save", None, str(ids["shop"]))]


def test_channel_add_webchat_refuses_what_the_console_refuses(cli_db: Path) -> None:
    from app.cli import main

    before = _rows(cli_db, "SELECT id, config FROM channel_account ORDER BY id"), _rows(
        cli_db, "SELECT COUNT(*) FROM audit_log")
    base = ["channel", "add", "webchat", "--key", "shop", "--origin", "https://shop.example.com"]
    for extra, message in (
            (["--key", "bad key", "--origin", "shop.example.com"], "invalid webchat site settings: key, origins"),
            (["--per-ip", "0"], "invalid webchat site settings: per_ip"),
            (["--group-id", "999"], "invalid webchat site settings: 技能组不存在"),
            (["--verify-mailbox", "nobody"], "invalid webchat site settings: 发送验证码的邮箱不存在或已停用")):
        with pytest.raises(SystemExit) as exc:
            main([*base, *extra])
        assert str(exc.value) == message
    assert (_rows(cli_db, "SELECT id, config FROM channel_account ORDER BY id"), _rows(
        cli_db, "SELECT COUNT(*) FROM audit_log")) == before  # nothing written
