"""The browser tier's harness: `gongdan serve` as a real uvicorn process (production mode, SQLite in a temporary
folder, the simulator playing WeChat and WeCom), Debian's Chromium driven by Playwright, the simulated logins and the
screenshots that land in tests/_artifacts/<folder>/ (git-ignored) for a person to look at. It builds on the
end-to-end tier's process helpers (tests/e2e/conftest.py).

A missing Chromium, CJK font or Playwright skips a browser test with how to get it; under CI=true it fails instead.

Most tests want the whole desk at once: ``with wechat_desk(...) as desk`` in a module-scoped fixture (and the
``browser`` fixture imported from here). The pieces, for a desk of another make::

    require_browser()
    sim = SimulatorState()
    with simulator(sim) as server:
        env = desk_env(tmp, url, secret_key="...", **simulator_env(server, sim, agent_id=..., agent_secret=...))
        create_schema(env)
        cli(env, "seed-demo")
        with serve(env, port=port, log=tmp / "serve.log"):
            yield ...
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer, SimulatorState, WeChatDriver
from simulator.wecom.store import WeComApp
from tests.conftest import IN_CI
from tests.e2e.conftest import _wait_ready, gongdan, poll_until, spawn
from tests.e2e.conftest import free_port as free_port  # re-exported: the tests pick their ports with it

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "_artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# a container has no user namespaces for the sandbox, no GPU and a small /dev/shm
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PHONE: dict[str, Any] = {"viewport": {"width": 375, "height": 812}, "device_scale_factor": 2, "is_mobile": True,
                         "has_touch": True, "locale": "zh-CN"}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1440, "height": 900}, "locale": "zh-CN"}


def browser_tier_missing() -> list[str]:
    """What the browser tier lacks, each item naming how to get it (empty: everything is there)."""
    missing: list[str] = []
    packages = []
    if not Path(CHROMIUM).exists():
        packages.append("chromium")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout \
        if shutil.which("fc-list") else ""
    if not fonts.strip():
        packages.append("fonts-noto-cjk")
    if packages:
        missing.append(f"Debian packages {' '.join(packages)} (Chromium at {CHROMIUM}, a CJK font): `make test` "
                       f"installs them when run as root with apt-get; otherwise run `sudo make browser-deps` or "
                       f"`apt-get install -y {' '.join(packages)}`")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (`make install` installs the dev dependencies)")
    return missing


def require_browser() -> None:
    """Skip the test (fail it under CI=true) when the browser tier lacks something."""
    missing = browser_tier_missing()
    if missing:
        problem = "; ".join(missing)
        if IN_CI:
            pytest.fail(f"the browser tier is required under CI=true and this machine lacks: {problem}")
        pytest.skip(f"browser tier skipped, missing: {problem}")


def desk_env(tmp: Path, url: str, *, secret_key: str, **extra: str) -> dict[str, str]:
    """The environment of a production-mode desk at ``url`` on SQLite in ``tmp``, without the runner's own WeChat,
    WeCom, database and Redis settings (the development login is off in production)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "DATABASE_", "REDIS_",
                                                                        "TENCENT_SMS_"))},
        "GONGDAN_ENV": "production", "SECRET_KEY": secret_key,
        "DATA_DIR": str(tmp / "data"), "DATABASE_URL": f"sqlite://{tmp}/gongdan.sqlite3", "PUBLIC_URL": url,
        "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), **extra,
    }


def simulator_env(server: SimulatorServer, sim: SimulatorState, *, agent_id: int, agent_secret: str,
                  mp: tuple[str, str, str, str] | None = None) -> dict[str, str]:
    """The settings that point the desk's WeChat and WeCom calls, OAuth and QR login at the simulator; ``mp`` is
    the Official Account's (app id, secret, token, AES key)."""
    env = {"WECHAT_API_BASE": server.api_base_url, "WECHAT_OAUTH_BASE": server.url,
           "WECOM_API_BASE": server.wecom_api_base_url, "WECOM_LOGIN_BASE": server.url,
           "WECOM_CORP_ID": sim.wecom.corp_id, "WECOM_AGENT_ID": str(agent_id), "WECOM_AGENT_SECRET": agent_secret}
    if mp is not None:
        appid, secret, token, aes_key = mp
        env |= {"WECHAT_APP_ID": appid, "WECHAT_APP_SECRET": secret, "WECHAT_TOKEN": token,
                "WECHAT_AES_KEY": aes_key}
    return env


def cli(env: dict[str, str], *args: str) -> str:
    """Run `gongdan <args>` in ``env``; its standard output."""
    return gongdan(env, *args).stdout.strip()


SCHEMA = """
import asyncio
from tortoise import Tortoise
from app.db import tortoise_config
from app.settings import load_settings

async def main():
    await Tortoise.init(config=tortoise_config(load_settings()))
    await Tortoise.generate_schemas()
    await Tortoise.close_connections()

asyncio.run(main())
"""


def create_schema(env: dict[str, str]) -> None:
    """The desk's tables, in the database ``env`` names."""
    # straight from the models: this tier tests pages, not migrations (tests/e2e covers `migrate`)
    subprocess.run([sys.executable, "-c", SCHEMA], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True)


def wait_for(predicate: Callable[[], Any], log: Path, *, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """The first truthy value of ``predicate``, polled; on timeout fail with the tail of the desk's log."""
    return poll_until(predicate, timeout=timeout, interval=interval, logs=[log])


@contextmanager
def simulator(sim: SimulatorState) -> Iterator[SimulatorServer]:
    """The simulator serving ``sim`` over HTTP while the block runs."""
    server = SimulatorServer(sim).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve(env: dict[str, str], *, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`gongdan serve` on ``port`` (output to ``log``), ready (/readyz answers 200) when the block starts."""
    proc = spawn(env, "serve", "--port", str(port), log=log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch_chromium(pw: Any) -> Any:
    """Debian's Chromium, headless, from a started Playwright."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def chromium() -> Iterator[Any]:
    """Playwright (sync API) and Debian's Chromium for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()


def screenshots(folder: str) -> Callable[[Any, str], None]:
    """``shot(page, name)``: a full-page screenshot to tests/_artifacts/<folder>/<name>.png."""
    target = ARTIFACTS / folder

    def shot(page: Any, name: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"), full_page=True)

    return shot


def send_text(driver: WeChatDriver, openid: str, text: str) -> None:
    """A customer writes ``text`` to the Official Account (the simulator posts the callback)."""
    # Playwright's sync API owns this thread's event loop: drive WeChat from another thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, driver.send_text(openid, text)).result(timeout=30)


def oauth_login(page: Any, url: str, path: str, name: str) -> None:
    """Open an H5 deep link, go through the simulated WeCom OAuth page as ``name``, land back on the deep link."""
    page.goto(url + path)
    page.get_by_role("link", name=name).click()  # the simulator's authorize page: pick who is in the WebView
    page.wait_for_url(url + path)


def qr_login(page: Any, url: str, path: str, member: str, *,
             shot: Callable[[Any, str], None] | None = None) -> None:
    """Open a console page, press 企业微信扫码登录, "scan" as ``member`` on the simulator's page, land back; with
    ``shot``, screenshot the login and the simulator's QR page on the way."""
    page.goto(url + path)
    page.wait_for_url("**/console/login?next=*")
    if shot is not None:
        shot(page, "console-login")
    page.get_by_role("link", name="企业微信扫码登录").click()
    page.wait_for_url("**/wwlogin/sso/login?*")
    if shot is not None:
        shot(page, "console-wwlogin")
    page.get_by_role("link", name=member).click()
    page.wait_for_url(url + path)


@dataclass
class Desk:
    """A desk `wechat_desk` runs: its URL, the simulator's state, an API client signed in as the admin, the desk's log,
    its SQLite database and, with an Official Account, that account's customer side (``driver``)."""

    url: str
    sim: SimulatorState
    api: httpx.Client
    log: Path
    database: Path
    wait_timeout: float = 20.0
    wait_interval: float = 0.1
    mp_driver: WeChatDriver | None = None

    @property
    def driver(self) -> WeChatDriver:
        """The Official Account's customer side (the desk must have been started with one)."""
        if self.mp_driver is None:
            raise AssertionError("this desk was started without an Official Account (wechat_desk(mp=...))")
        return self.mp_driver

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """The first truthy value of ``predicate``, polled at the desk's pace; on timeout fail with the log's tail."""
        return wait_for(predicate, self.log, timeout=self.wait_timeout if timeout is None else timeout,
                        interval=self.wait_interval)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows ``sql`` (with ``?`` placeholders for ``args``) reads from the desk's database."""
        with sqlite3.connect(self.database) as conn:
            return list(conn.execute(sql, args).fetchall())

    def staff_id(self, userid: str) -> int:
        """The id of the staff member with the WeCom ``userid``."""
        return int(self.query("SELECT id FROM staff WHERE userid = ?", userid)[0][0])


@contextmanager
def wechat_desk(tmp_path_factory: pytest.TempPathFactory, folder: str, *, secret_key: str, agent_id: int,
                agent_secret: str, users: Iterable[tuple[str, str]], mp: tuple[str, str, str, str] | None = None,
                seed: Iterable[str] = (), wait_timeout: float = 20.0, wait_interval: float = 0.1,
                **extra: str) -> Iterator[Desk]:
    """A seeded production-mode desk served on a free port, for the block: the simulator plays WeCom (the app
    ``agent_id`` and the members ``users``, (userid, name) pairs) and, given ``mp`` (app id, secret, token, AES key),
    WeChat's Official Account in safe mode; ``seed`` adds arguments to `gongdan seed-demo` (``["--month"]``: the demo
    month) and ``extra`` settings. Skips (fails under CI=true) without the browser tier."""
    require_browser()
    tmp = tmp_path_factory.mktemp(folder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    callback = f"{url}/callbacks/wechat"
    sim = SimulatorState(template_job_finish=False)
    account = None if mp is None else sim.add_mp_account(*mp, callback_url=callback, mode="safe")
    sim.wecom.add_app(WeComApp(name="工单", secret=agent_secret, agent_id=agent_id))
    for userid, name in users:
        sim.wecom.set_user(userid, name=name)
    with simulator(sim) as server:
        env = desk_env(tmp, url, secret_key=secret_key, **extra,
                       **simulator_env(server, sim, agent_id=agent_id, agent_secret=agent_secret, mp=mp))
        create_schema(env)
        cli(env, "seed-demo", *seed)
        api_token = cli(env, "token", "create", "--staff", "admin")
        log = tmp / "serve.log"
        with serve(env, port=port, log=log), \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_token}"}, timeout=10) as api:
            yield Desk(url=url, sim=sim, api=api, log=log, database=tmp / "gongdan.sqlite3",
                       wait_timeout=wait_timeout, wait_interval=wait_interval,
                       mp_driver=None if account is None else WeChatDriver(sim, account, callback))


@pytest.fixture(scope="module")
def browser(desk: Any) -> Iterator[Any]:
    """Debian's Chromium for a module's tests, once its ``desk`` fixture is up (import it next to that fixture)."""
    with chromium() as launched:
        yield launched
