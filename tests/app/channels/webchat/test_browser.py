"""Browser tier: real headless Chromium on a test page of another origin embedding the widget, against `gongdan
serve` as a real uvicorn process: pre-chat form, a message that becomes a ticket, a staff reply shown live, and a
reload that re-syncs the conversation. Skipped (failed under CI) without Chromium/Playwright, like tests/h5."""

from __future__ import annotations

import http.server
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.h5.test_browser import CHROMIUM, PHONE, ROOT, _cli, _create_schema, _free_port, _require_browser

pytestmark = pytest.mark.e2e

ALWAYS_OPEN = """
import asyncio
from tortoise import Tortoise
from app.db import tortoise_config
from app.settings import load_settings
from app.tickets.models import BusinessCalendar

async def main():
    await Tortoise.init(config=tortoise_config(load_settings()))
    await BusinessCalendar.filter(is_default=True).update(is_default=False)
    await BusinessCalendar.create(name="全天", weekly={str(d): [["00:00", "24:00"]] for d in range(1, 8)},
                                  public_holidays=False, is_default=True)
    await Tortoise.close_connections()

asyncio.run(main())
"""


def _wait(predicate: Any, log: Path, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met; desk log:\n" + log.read_text(errors="replace")[-3000:])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _require_browser()
    tmp = tmp_path_factory.mktemp("webchat-browser")
    port, shop_port = _free_port(), _free_port()
    url, shop_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{shop_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "DATABASE_", "REDIS_"))},
        "GONGDAN_ENV": "production", "SECRET_KEY": "webchat-browser-secret-key-0123456789-abcdef",
        "DATA_DIR": str(tmp / "data"), "DATABASE_URL": f"sqlite://{tmp}/gongdan.sqlite3", "PUBLIC_URL": url,
        "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT),
    }
    _create_schema(env)
    _cli(env, "seed-demo")
    subprocess.run([sys.executable, "-c", ALWAYS_OPEN], cwd=ROOT, env=env, check=True, timeout=60,
                   capture_output=True)
    snippet = _cli(env, "channel", "add", "webchat", "--key", "shop", "--name", "示例商城", "--origin", shop_url,
                   "--no-bot").splitlines()[-1]
    token = _cli(env, "token", "create", "--staff", "admin")
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text(f"<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
                                     f"<meta name=viewport content='width=device-width'><title>示例商城</title></head>"
                                     f"<body><h1>示例商城</h1>{snippet}</body></html>", encoding="utf-8")
    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", shop_port), partial(_Quiet, directory=str(site)))
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    log = tmp / "serve.log"
    proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _ready(url), log, timeout=30)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            yield {"url": url, "shop": shop_url, "api": api, "log": log, "snippet": snippet,
                   "database": tmp / "gongdan.sqlite3"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        page_server.shutdown()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_chat_staff_reply_live_and_reload_resync(shop: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    assert shop["snippet"] == (f'<script src="{shop["url"]}/static/webchat/widget.js" data-site="shop" '
                               'async></script>')
    api, log = shop["api"], shop["log"]
    with sync_playwright() as pw:
        browser: Any = pw.chromium.launch(executable_path=CHROMIUM,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_context(**PHONE).new_page()
            page.goto(shop["shop"])
            page.get_by_role("button", name="打开在线咨询").click()
            page.get_by_placeholder("您的称呼").fill("王女士")
            page.get_by_placeholder("手机号或邮箱").fill("wang@example.com")
            page.get_by_role("button", name="开始咨询").click()
            page.wait_for_selector(".gdwc-status:text('在线')")
            page.get_by_placeholder("请输入消息，回车发送").fill("打印机故障，需要报修")
            page.keyboard.press("Enter")
            page.wait_for_selector(".gdwc-state:text('已送达')")

            tickets = _wait(lambda: api.get("/api/v1/tickets").json()["items"], log)
            r = api.post(f"/api/v1/tickets/{tickets[0]['id']}/messages", json={"text": "您好，工程师今天下午上门。"})
            assert r.status_code == 201, r.text
            page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')")

            page.reload()
            page.get_by_role("button", name="打开在线咨询").click()
            page.wait_for_selector(".gdwc-mine .gdwc-bubble:text('打印机故障，需要报修')")
            page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')")
            assert page.locator(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')").count() == 1

            # nobody on duty: a new visitor gets the offline form, and the message becomes a ticket
            with sqlite3.connect(shop["database"]) as conn:
                conn.execute("UPDATE staff SET on_duty = 0")
            before = len(api.get("/api/v1/tickets").json()["items"])
            other = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
            other.goto(shop["shop"])
            other.get_by_role("button", name="打开在线咨询").click()
            other.wait_for_selector(".gdwc-notice:text('客服暂时不在线')")
            other.get_by_placeholder("手机号或邮箱").fill("li@example.com")
            other.get_by_placeholder("请描述您的问题").fill("想咨询退货流程")
            other.get_by_role("button", name="提交留言").click()
            other.wait_for_selector(".gdwc-notice:text('留言已提交')")
            assert len(api.get("/api/v1/tickets").json()["items"]) == before + 1
        finally:
            browser.close()
