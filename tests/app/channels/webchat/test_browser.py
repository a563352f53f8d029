"""Browser tier: real headless Chromium on a test page of another origin embedding the widget, against `gongdan
serve` as a real uvicorn process: pre-chat form, a message that becomes a ticket, the staff member on the H5 ticket
page (typing and read state both ways, the reply shown live in the widget, the visitor's next message live on the
page), messages missed while the page was closed and a reload re-synced, the bot answering first and handing off
with the conversation, 找回记录 by an e-mail code and by an SMS code (Tencent Cloud SMS: the simulator), and the
offline form when nobody is on duty. Skipped (failed under CI) without
Chromium/Playwright, like tests/h5."""

from __future__ import annotations

import http.server
import json
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer, SimulatorState
from simulator.sms import (
    DEMO_SMS_SDK_APP_ID,
    DEMO_SMS_SECRET_ID,
    DEMO_SMS_SECRET_KEY,
    DEMO_SMS_SIGN_NAME,
    DEMO_SMS_TEMPLATE_ID,
)
from tests.app.channels.email.conftest import ADDRESS, PASSWORD, SinkHandler, smtp_sink
from tests.browser import (
    PHONE,
    ROOT,
    chromium,
    cli,
    create_schema,
    desk_env,
    free_port,
    require_browser,
    serve,
    wait_for,
)

pytestmark = pytest.mark.e2e
__all__ = ["smtp_sink"]

LAPTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "zh-CN"}

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


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, smtp_sink: tuple[SinkHandler, int]) -> Iterator[dict[str, Any]]:
    require_browser()
    tmp = tmp_path_factory.mktemp("webchat-browser")
    port, shop_port = free_port(), free_port()
    url, shop_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{shop_port}"
    # Tencent Cloud SMS for 找回记录 by mobile number: the simulator, in this process (its clock and messages)
    sms = SimulatorServer(SimulatorState()).start()
    sms_env = {"TENCENT_SMS_ENDPOINT": sms.url, "TENCENT_SMS_SECRET_ID": DEMO_SMS_SECRET_ID,
               "TENCENT_SMS_SECRET_KEY": DEMO_SMS_SECRET_KEY, "TENCENT_SMS_SDK_APP_ID": DEMO_SMS_SDK_APP_ID,
               "TENCENT_SMS_SIGN_NAME": DEMO_SMS_SIGN_NAME, "TENCENT_SMS_TEMPLATE_ID": DEMO_SMS_TEMPLATE_ID}
    # the lexical view of the knowledge base: the bot's answers do not wait for the sentence model to load
    env = desk_env(tmp, url, secret_key="webchat-browser-secret-key-0123456789-abcdef", KB_EMBEDDER="off", **sms_env)
    create_schema(env)
    cli(env, "seed-demo")
    subprocess.run([sys.executable, "-c", ALWAYS_OPEN], cwd=ROOT, env=env, check=True, timeout=60,
                   capture_output=True)
    snippet = cli(env, "channel", "add", "webchat", "--key", "shop", "--name", "示例商城", "--origin", shop_url,
                  "--no-bot").splitlines()[-1]
    # the same bot as 微信客服 answers first on this one
    bot_snippet = cli(env, "channel", "add", "webchat", "--key", "help", "--name", "帮助中心", "--origin",
                      shop_url).splitlines()[-1]
    token = cli(env, "token", "create", "--staff", "admin")
    # the mailbox verification codes go out from (its SMTP server is the test's sink; nothing is read from IMAP)
    cli(env, "channel", "add", "email", "--key", "support", "--name", "客服中心", "--address", ADDRESS,
        "--imap-host", "127.0.0.1", "--imap-port", str(free_port()), "--imap-security", "none",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_sink[1]), "--smtp-security", "none",
        "--username", ADDRESS, "--password", PASSWORD)
    site = tmp / "site"
    site.mkdir()
    for name, title, tag in (("index.html", "示例商城", snippet), ("help.html", "帮助中心", bot_snippet)):
        (site / name).write_text(f"<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
                                 f"<meta name=viewport content='width=device-width'><title>{title}</title></head>"
                                 f"<body><h1>{title}</h1>{tag}</body></html>", encoding="utf-8")
    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", shop_port), partial(_Quiet, directory=str(site)))
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    log = tmp / "serve.log"
    try:
        with serve(env, port=port, log=log), \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            yield {"url": url, "shop": shop_url, "api": api, "log": log, "snippet": snippet, "sink": smtp_sink[0],
                   "database": tmp / "gongdan.sqlite3", "cookie": _staff_cookie(env, tmp / "gongdan.sqlite3"),
                   "sms": sms.state}
    finally:
        page_server.shutdown()
        sms.stop()


def _staff_cookie(env: dict[str, str], database: Path) -> dict[str, Any]:
    """The H5 session cookie of the admin, signed as the desk signs it (the WeCom login is tested in tests/h5)."""
    from starlette.responses import Response

    from app.settings import load_settings
    from h5 import session as sessions

    with sqlite3.connect(database) as conn:
        (staff_id,) = conn.execute("SELECT id FROM staff WHERE userid = 'admin'").fetchone()
    settings = load_settings({k: v for k, v in env.items() if k in ("SECRET_KEY", "GONGDAN_ENV", "PUBLIC_URL",
                                                                     "DATA_DIR", "DATABASE_URL")}, env_file=None)
    response = Response()
    sessions.save(response, sessions.Session.anonymous().login(kind="staff", staff_id=int(staff_id)), settings)
    value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    return {"name": sessions.COOKIE, "value": value, "url": env["PUBLIC_URL"]}


def _staff(browser: Any, shop: dict[str, Any]) -> Any:
    context = browser.new_context(**PHONE)
    context.add_cookies([shop["cookie"]])
    return context.new_page()


def _open_widget(context: Any, url: str, *, skip_form: bool = False) -> Any:
    """A new page of ``context`` on the site's page at ``url`` with the chat widget opened (its pre-chat form
    skipped with ``skip_form``)."""
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name="打开在线咨询").click()
    if skip_form:
        page.get_by_role("button", name="跳过").click()
    return page


def _send(page: Any, text: str) -> None:
    """The visitor types ``text`` into the widget and presses Enter."""
    page.get_by_placeholder("请输入消息，回车发送").fill(text)
    page.keyboard.press("Enter")


def _newest_ticket(shop: dict[str, Any], *, after: int = 0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        items = [t for t in shop["api"].get("/api/v1/tickets").json()["items"] if t["id"] > after]
        return max(items, key=lambda t: t["id"]) if items else None

    ticket: dict[str, Any] = wait_for(found, shop["log"])
    return ticket


def test_chat_with_staff_on_the_h5_page_live_and_resync(shop: dict[str, Any]) -> None:
    assert shop["snippet"] == (f'<script src="{shop["url"]}/static/webchat/widget.js" data-site="shop" '
                               'async></script>')
    with chromium() as browser:
        visitor_context = browser.new_context(**PHONE)
        page = _open_widget(visitor_context, shop["shop"])
        page.get_by_placeholder("您的称呼").fill("王女士")
        page.get_by_placeholder("手机号或邮箱", exact=True).fill("wang@example.com")
        page.get_by_role("button", name="开始咨询").click()
        page.wait_for_selector(".gdwc-status:text('在线')")
        _send(page, "打印机故障，需要报修")
        page.wait_for_selector(".gdwc-state:text('已送达')")
        number = _newest_ticket(shop)["number"]

        # the staff member opens the ticket on the H5 page: the visitor sees 已读
        staff = _staff(browser, shop)
        staff.goto(f"{shop['url']}/h5/tickets/{number}")
        staff.wait_for_selector(".tl-in .bubble:text('打印机故障，需要报修')")
        page.wait_for_selector(".gdwc-state:text('已读')")

        # typing both ways
        # slowly: the widget says "typing" at most every 3 s, and it said so while the first message was typed
        page.get_by_placeholder("请输入消息，回车发送").press_sequentially("还有一个问题", delay=700)
        staff.wait_for_selector(".live-typing:text('客户正在输入…')", state="visible")
        staff.locator("textarea.reply-text").press_sequentially("您好，")
        page.wait_for_selector(".gdwc-typing:text('客服正在输入…')", state="visible")

        # the reply from the H5 page arrives live; the visitor read it: 客户已读 on the page
        staff.locator("textarea.reply-text").fill("您好，工程师今天下午上门。")
        staff.get_by_role("button", name="回复客户").click()
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')")
        staff.wait_for_selector(".tl-out .read-mark:text('客户已读')")

        # the visitor's next message shows on the open page at once
        _send(page, "还有一台复印机也坏了")
        staff.wait_for_selector(".tl-live .bubble:text('还有一台复印机也坏了')")

        # messages sent while the visitor's page was closed come back when they return
        page.close()
        staff.reload()
        staff.locator("textarea.reply-text").fill("复印机明天一起修。")
        staff.get_by_role("button", name="回复客户").click()
        staff.wait_for_selector(".toast-ok")
        page = _open_widget(visitor_context, shop["shop"])
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('复印机明天一起修。')")
        page.wait_for_selector(".gdwc-mine .gdwc-bubble:text('打印机故障，需要报修')")

        page.reload()
        page.get_by_role("button", name="打开在线咨询").click()
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')")
        assert page.locator(".gdwc-theirs .gdwc-bubble:text('您好，工程师今天下午上门。')").count() == 1
        assert page.locator(".gdwc-theirs .gdwc-bubble:text('复印机明天一起修。')").count() == 1
        # the visitor's own messages show the staff member's read state after the reload too
        page.wait_for_selector(".gdwc-mine .gdwc-state:text('已读')")


def test_the_bot_answers_first_and_hands_off_with_the_conversation(shop: dict[str, Any]) -> None:
    before = max([t["id"] for t in shop["api"].get("/api/v1/tickets").json()["items"]] or [0])
    with chromium() as browser:
        page = _open_widget(browser.new_context(**LAPTOP), f"{shop['shop']}/help.html", skip_form=True)
        _send(page, "密码忘了怎么办")
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:has-text('用注册手机号接收验证码')")
        assert shop["api"].get("/api/v1/tickets").json()["items"][0]["id"] <= before  # the bot answered

        _send(page, "还是不行，转人工")
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:has-text('正在为您转接人工客服')")
        ticket = _newest_ticket(shop, after=before)
        messages = shop["api"].get(f"/api/v1/tickets/{ticket['id']}/messages").json()["items"]
        texts = [m["text"] for m in messages]
        # the person taking over sees what was said before the hand-off
        assert "密码忘了怎么办" in texts and any("用注册手机号接收验证码" in t for t in texts), texts

        staff = _staff(browser, shop)
        staff.goto(f"{shop['url']}/h5/tickets/{ticket['number']}")
        staff.wait_for_selector(".tl-in .bubble:text('密码忘了怎么办')")
        staff.wait_for_selector(".bubble:has-text('用注册手机号接收验证码')")
        staff.locator("textarea.reply-text").fill("您好，我来帮您重置密码。")
        staff.get_by_role("button", name="回复客户").click()
        page.wait_for_selector(".gdwc-theirs .gdwc-bubble:text('您好，我来帮您重置密码。')")


def _prove(page: Any, shop: dict[str, Any], address: str) -> None:
    """找回记录: ask for a code, read it from the mail the desk sent, type it in."""
    sent = len(shop["sink"].mails)
    _ask_code(page, address, "请查收邮件")
    mail = wait_for(lambda: shop["sink"].mails[sent] if len(shop["sink"].mails) > sent else None, shop["log"])
    found = re.search(r"验证码是 (\d{6})", mail.get_content())
    assert mail["To"] == address and found is not None
    _give_code(page, found.group(1))


def _ask_code(page: Any, contact: str, check: str) -> None:
    # with SMS configured the widget asks for 手机号或邮箱
    page.get_by_role("button", name="验证手机号或邮箱，找回以往的咨询记录").click()
    page.get_by_placeholder("您的手机号或邮箱").fill(contact)
    page.get_by_role("button", name="发送验证码").click()
    page.wait_for_selector(f".gdwc-notice:has-text('{check}')")


def _give_code(page: Any, code: str) -> None:
    page.get_by_placeholder("验证码").fill(code)
    page.get_by_role("button", name="验证", exact=True).click()
    page.wait_for_selector(".gdwc-notice:text('验证成功，已为您找回以往的咨询记录')")


def _prove_phone(page: Any, shop: dict[str, Any], typed: str, e164: str) -> None:
    """找回记录 by mobile number: the code comes from the text message Tencent Cloud SMS (the simulator) "sent"."""
    sim: SimulatorState = shop["sms"]
    sent = len(sim.sms_to(e164))
    _ask_code(page, typed, "验证码已发送至 139****0001，请查收短信")
    message = wait_for(lambda: sim.last_sms(e164) if len(sim.sms_to(e164)) > sent else None, shop["log"])
    found = re.match(r"【工单演示】(\d{6})为您的验证码", message.text)
    assert found is not None
    _give_code(page, found.group(1))


def test_a_returning_visitor_who_proves_the_email_gets_the_earlier_chat(shop: dict[str, Any]) -> None:
    with chromium() as browser:
        first = _open_widget(browser.new_context(**PHONE), shop["shop"], skip_form=True)
        _send(first, "上周问过发票的事")
        first.wait_for_selector(".gdwc-state:text('已送达')")
        _prove(first, shop, "zhao@example.cn")

        # another browser: a new visitor until the same address is proven there
        second = _open_widget(browser.new_context(**LAPTOP), shop["shop"], skip_form=True)
        _send(second, "我又来了")
        second.wait_for_selector(".gdwc-state:text('已送达')")
        assert second.locator(".gdwc-bubble:text('上周问过发票的事')").count() == 0
        _prove(second, shop, "zhao@example.cn")
        second.wait_for_selector(".gdwc-mine .gdwc-bubble:text('上周问过发票的事')")
        second.wait_for_selector(".gdwc-mine .gdwc-bubble:text('我又来了')")


def test_a_returning_visitor_who_proves_the_mobile_number_by_sms_gets_the_earlier_chat(
        shop: dict[str, Any]) -> None:
    with chromium() as browser:
        first = _open_widget(browser.new_context(**PHONE), shop["shop"], skip_form=True)
        _send(first, "快递一直没到")
        first.wait_for_selector(".gdwc-state:text('已送达')")
        _prove_phone(first, shop, "139 0000 0001", "+8613900000001")

        shop["sms"].advance(31)  # Tencent sends one message per number per 30 s
        second = _open_widget(browser.new_context(**LAPTOP), shop["shop"], skip_form=True)
        _send(second, "还是没到")
        second.wait_for_selector(".gdwc-state:text('已送达')")
        assert second.locator(".gdwc-bubble:text('快递一直没到')").count() == 0
        _prove_phone(second, shop, "13900000001", "+8613900000001")
        second.wait_for_selector(".gdwc-mine .gdwc-bubble:text('快递一直没到')")
        second.wait_for_selector(".gdwc-mine .gdwc-bubble:text('还是没到')")


@contextmanager
def _nobody_on_duty(shop: dict[str, Any]) -> Iterator[None]:
    """Every agent off duty for the block: the widget's after-hours state without moving the clock."""
    with sqlite3.connect(shop["database"]) as conn:
        conn.execute("UPDATE staff SET on_duty = 0")
    try:
        yield
    finally:
        with sqlite3.connect(shop["database"]) as conn:
            conn.execute("UPDATE staff SET on_duty = 1")


def test_nobody_on_duty_gets_the_offline_form(shop: dict[str, Any]) -> None:
    api = shop["api"]
    with _nobody_on_duty(shop):
        before = len(api.get("/api/v1/tickets").json()["items"])
        with chromium() as browser:
            other = _open_widget(browser.new_context(**LAPTOP), shop["shop"])
            other.wait_for_selector(".gdwc-notice:text('客服暂时不在线')")
            other.get_by_placeholder("手机号或邮箱", exact=True).fill("li@example.com")
            other.get_by_placeholder("请描述您的问题").fill("想咨询退货流程")
            other.get_by_role("button", name="提交留言").click()
            other.wait_for_selector(".gdwc-notice:text('留言已提交')")
            assert len(api.get("/api/v1/tickets").json()["items"]) == before + 1


def test_nobody_on_duty_the_bot_answers_and_asking_for_a_person_leaves_a_message(shop: dict[str, Any]) -> None:
    api = shop["api"]
    with _nobody_on_duty(shop):
        before = len(api.get("/api/v1/tickets").json()["items"])
        with chromium() as browser:
            page = _open_widget(browser.new_context(**PHONE), f"{shop['shop']}/help.html")
            page.wait_for_selector(".gdwc-status:text('智能助手')")
            page.wait_for_selector(".gdwc-notice:text('客服暂时不在线。智能助手可以现在为您解答，需要人工客服时可以留言。')")
            # the chat, not only the form: the bot answers
            _send(page, "密码忘了怎么办")
            page.wait_for_selector(".gdwc-theirs .gdwc-bubble:has-text('用注册手机号接收验证码')")

            # a person is asked for: nobody is there, so the 留言 form comes with the question already in it
            _send(page, "人工")
            page.wait_for_selector(".gdwc-notice:text('客服暂时不在线，请留言，我们会尽快回复您。')")
            assert page.get_by_placeholder("请描述您的问题").input_value() == "密码忘了怎么办"
            assert page.locator(".gdwc-bubble:has-text('正在为您转接人工客服')").count() == 0
            assert len(api.get("/api/v1/tickets").json()["items"]) == before
            page.get_by_placeholder("手机号或邮箱", exact=True).fill("zhou@example.com")
            page.get_by_role("button", name="提交留言").click()
            page.wait_for_selector(".gdwc-notice:text('留言已提交')")
            assert len(api.get("/api/v1/tickets").json()["items"]) == before + 1
        with sqlite3.connect(shop["database"]) as conn:
            (created,) = conn.execute("SELECT data FROM ticket_event WHERE kind = 'created' ORDER BY id DESC"
                                      " LIMIT 1").fetchone()
        assert json.loads(created)["source"] == "webchat_offline"  # the 网页留言 of the offline form
