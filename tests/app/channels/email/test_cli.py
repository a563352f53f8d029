"""`gongdan channel add email ...` stores a mailbox account."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.settings import set_settings


def test_channel_add_email(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from app.security.crypto import decrypt_field

    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/cli.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    try:
        main(["migrate"])
        main(["channel", "add", "email", "--key", "support", "--name", "客服中心", "--address", "support@example.com",
              "--imap-host", "imap.exmail.qq.com", "--imap-port", "993", "--smtp-host", "smtp.exmail.qq.com",
              "--smtp-port", "465", "--username", "support@example.com", "--password", "auth-code-1"])

        with sqlite3.connect(tmp_path / "cli.sqlite3") as conn:
            kind, raw_config, secrets = conn.execute("SELECT kind, config, secrets_enc FROM channel_account").fetchone()
        config = json.loads(raw_config)
        assert kind == "email"
        assert (config["address"], config["imap_security"], config["smtp_security"]) == (
            "support@example.com", "ssl", "ssl")
        assert json.loads(decrypt_field(secrets)) == {"password": "auth-code-1"}
        assert "added email account 'support' (support@example.com)" in capsys.readouterr().out
    finally:
        set_settings(None)


def test_channel_add_email_refuses_what_the_console_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/cli.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    try:
        main(["migrate"])
        with pytest.raises(SystemExit) as exc:
            main(["channel", "add", "email", "--key", "Bad Key", "--address", "not-an-address",
                  "--imap-host", "imap.example.com", "--smtp-host", "smtp.example.com", "--password", "x"])
        assert str(exc.value) == "invalid mailbox settings: key, address"
        with sqlite3.connect(tmp_path / "cli.sqlite3") as conn:
            assert conn.execute("SELECT COUNT(*) FROM channel_account").fetchone() == (0,)
    finally:
        set_settings(None)
