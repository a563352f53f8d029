"""`gongdan run` for a newcomer (issue 10): its settings reach a second shell through data/dev.env, and its banner
prints every link whole on its own line and shows secrets only in development, saying so."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

import app.settings as settings_module
from app.devserver import apply_defaults, banner_lines, embedded_defaults, prepare_dev_settings, print_banner
from app.settings import Settings, WeChatMPSettings, load_settings
from simulator.demo import DEMO_KF_CUSTOMER, DEMO_OPEN_KFID

DEFAULTS = embedded_defaults(host="127.0.0.1", port=8000, simulator_port=8001)


@pytest.fixture
def fresh_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A development shell in an empty folder, none of the embedded settings set; all restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "_current", settings_module._current)
    for key in [*DEFAULTS, "DATA_DIR", "DATABASE_URL", "SECRET_KEY"]:
        monkeypatch.setenv(key, "x")  # recorded, so whatever the code under test sets is undone
        monkeypatch.delenv(key)
    monkeypatch.setenv("GONGDAN_ENV", "development")
    yield tmp_path


def _second_shell(monkeypatch: pytest.MonkeyPatch, applied: dict[str, str]) -> None:
    """Another shell in the same folder: it has none of what `gongdan run` put into its own environment."""
    for key in applied:
        monkeypatch.delenv(key)


def test_a_second_shell_sees_the_settings_make_run_made_up(fresh_shell: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().wecom.corp_id == ""  # observation 13: `gongdan sync directory` found no WECOM_CORP_ID
    settings, path = prepare_dev_settings(host="127.0.0.1", port=8000, simulator_port=8001)
    assert settings.wecom.corp_id == "wwsimcorp0000000001"
    assert path == Path("data/dev.env")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    _second_shell(monkeypatch, DEFAULTS)
    second = load_settings()
    assert second.wecom.corp_id == "wwsimcorp0000000001"
    assert str(second.wecom.contact_secret) == DEFAULTS["WECOM_CONTACT_SECRET"]
    assert (second.wecom_api_base, second.wechat_api_base) == ("http://127.0.0.1:8001/qyapi/cgi-bin/",
                                                               "http://127.0.0.1:8001/cgi-bin/")
    assert (second.simulator, second.public_url, second.wechat.app_id) == (
        True, "http://127.0.0.1:8000", DEFAULTS["WECHAT_APP_ID"])
    text = path.read_text()
    assert text.startswith("# Written by `gongdan run`") and "demo credentials" in text


def test_the_environment_and_dotenv_win_over_dev_env(fresh_shell: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("WECOM_AGENT_ID=1000077\n")
    monkeypatch.setenv("PUBLIC_URL", "https://desk.example.com")
    _, path = prepare_dev_settings(host="127.0.0.1", port=8000, simulator_port=8001)
    assert path is not None
    written = path.read_text()
    # what the user configured is theirs: neither overridden in `gongdan run` nor copied to dev.env
    assert "WECOM_AGENT_ID" not in written and "PUBLIC_URL" not in written
    _second_shell(monkeypatch, {k: v for k, v in DEFAULTS.items() if k not in ("WECOM_AGENT_ID", "PUBLIC_URL")})
    monkeypatch.setenv("WECOM_CORP_ID", "wwmine")
    second = load_settings()
    assert (second.wecom.corp_id, second.wecom.agent_id, second.public_url) == (
        "wwmine", "1000077", "https://desk.example.com")


def test_dev_env_is_read_only_in_development_and_only_from_the_process_environment(
        fresh_shell: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    applied = apply_defaults(defaults=DEFAULTS)
    settings_module.write_dev_env(data_dir=Path("data"), values=applied)
    _second_shell(monkeypatch, applied)
    assert load_settings().wecom.corp_id == "wwsimcorp0000000001"
    assert load_settings({"GONGDAN_ENV": "development"}).wecom.corp_id == ""  # an explicit mapping is all there is
    assert load_settings(dev_env=False).wecom.corp_id == ""
    monkeypatch.setenv("GONGDAN_ENV", "test")
    assert load_settings().wecom.corp_id == ""
    monkeypatch.setenv("GONGDAN_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "p" * 40)
    assert load_settings().wecom.corp_id == ""


def test_production_writes_no_dev_env(fresh_shell: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONGDAN_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "p" * 40)
    settings, path = prepare_dev_settings(host="127.0.0.1", port=8000, simulator_port=8001)
    assert (settings.env, path) == ("production", None)
    assert not Path("data/dev.env").exists()


def _banner(env: str, token: str | None, width: int) -> str:
    settings = Settings(env=env, wechat=WeChatMPSettings(app_id="wx5ee1d0b5a1d2c3f4"))
    out = Console(file=io.StringIO(), width=width, color_system=None)
    print_banner(banner_lines(settings=settings, desk_url="http://127.0.0.1:8000", sim_base="http://127.0.0.1:8001",
                              open_kfid=DEMO_OPEN_KFID, kf_customer=DEMO_KF_CUSTOMER, token=token,
                              dev_env=Path("data/dev.env")), out=out)
    value = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(value, str)
    return value


URLS = [
    "http://127.0.0.1:8000/",
    "http://127.0.0.1:8000/api/v1/openapi.json",
    "http://127.0.0.1:8001/_sim/chat?appid=wx5ee1d0b5a1d2c3f4&openid=oDemoCustomer001",
    f"http://127.0.0.1:8001/_sim/kf/chat?open_kfid={DEMO_OPEN_KFID}&external_userid={DEMO_KF_CUSTOMER}",
    "http://127.0.0.1:8001/_sim/shop",
    "http://127.0.0.1:8001/_sim/",
]


def test_the_banner_prints_every_link_whole_on_its_own_line() -> None:
    token = "gd_" + "t" * 43
    lines = _banner("development", token, width=40).splitlines()
    for url in URLS:
        assert url in lines, url  # alone on its line, not wrapped although the console is 40 columns wide
    curl = f'curl -H "Authorization: Bearer {token}" http://127.0.0.1:8000/api/v1/tickets'
    assert token in lines and curl in lines
    warning = next(i for i, line in enumerate(lines) if line.startswith("仅限开发环境 / DEVELOPMENT ONLY"))
    assert warning < lines.index(token)
    assert "Other gongdan commands in this folder (a second shell) use these settings from data/dev.env, e.g.:" in lines
    shop = lines.index("模拟网站访客 / chat as a website visitor (web chat widget):")
    assert lines[shop + 1] == "http://127.0.0.1:8001/_sim/shop"


def test_the_banner_never_prints_a_secret_outside_development() -> None:
    text = _banner("production", None, width=200)
    assert "Bearer" not in text and "DEVELOPMENT ONLY" not in text
    assert "API token: not shown outside development (gongdan token create --staff USERID)" in text.splitlines()
    assert "gd_" not in _banner("production", "gd_secret", width=200)


def test_the_demo_sync_at_start_up_closes_the_wecom_connections_it_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from tortoise import Tortoise

    from app.db import close_db, init_db
    from app.devserver import _sync_wecom_demo
    from app.settings import set_settings
    from app.wecom import transport
    from app.wecom.tokens import reset_token_stores
    from app.wecom.work import reset_wecom_apis
    from simulator import SimulatorServer, SimulatorState
    from simulator.wecom.orggen import add_default_apps, load_demo_org
    from tests.conftest import make_settings
    from tests.wecomenv import wecom_settings

    async def schema(settings: Settings) -> None:  # the models' tables, as migrated (migrating takes seconds)
        await init_db(settings)
        try:
            await Tortoise.generate_schemas()
        finally:
            await close_db()

    state = SimulatorState()
    add_default_apps(state.wecom)
    load_demo_org(state.wecom)
    made: list[object] = []
    session = transport.session

    def recorded() -> object:
        made.append(session())
        return made[-1]

    monkeypatch.setattr(transport, "session", recorded)
    with SimulatorServer(state) as server:
        settings = wecom_settings(make_settings(database_url=f"sqlite://{tmp_path}/desk.sqlite3", data_dir=tmp_path),
                                  server)
        set_settings(settings)
        reset_wecom_apis()
        reset_token_stores()
        try:
            asyncio.run(schema(settings))
            _sync_wecom_demo(settings)
        finally:
            reset_wecom_apis()
            set_settings(None)
    assert state.api_calls_for("externalcontact/batch/get_by_user")  # the sync ran, over the loop's session
    assert made and all(getattr(s, "closed", False) for s in made)
