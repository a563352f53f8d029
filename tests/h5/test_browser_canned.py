"""快捷回复 in Chromium: the real ticket page (rendered by the desk) with the real static/h5/canned.js; a tap puts the
filled reply at the cursor, keeps what was typed, appends after a restored draft, and the draft keeper sees it."""

from __future__ import annotations

import asyncio
from typing import Any

from app.customers import service as customers
from app.replies.models import CannedReply
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from h5.web import STATIC_DIR
from tests.browser import PHONE, chromium, require_browser
from tests.h5.conftest import BASE, H5


def _open(browser: Any, html: str, path: str) -> Any:
    """The ticket page as the server rendered it, its static files from disk, no live link."""
    page = browser.new_page(**PHONE)

    def static(route: Any) -> None:
        name = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
        route.fulfill(path=str(STATIC_DIR / name))

    page.route(f"{BASE}/static/**", static)
    page.route(f"{BASE}{path}", lambda route: route.fulfill(body=html, content_type="text/html; charset=utf-8"))
    page.route(f"{BASE}/h5/tickets/*/live", lambda route: route.abort())
    page.goto(f"{BASE}{path}")
    return page


def _in_browser(html: str, path: str) -> dict[str, Any]:
    with chromium() as browser:
        page = _open(browser, html, path)
        box = page.locator("textarea.reply-text")
        # a draft restored into the box, never touched: the reply goes after it
        page.evaluate("document.querySelector('textarea.reply-text').value = '草稿。'")
        page.click("#canned summary")
        page.click("#canned button:has-text('问候')")
        appended = box.input_value()
        closed = page.evaluate("!document.getElementById('canned').open")
        # typed text with the cursor in the middle: the reply goes at the cursor
        box.fill("您好，谢谢")
        page.evaluate("document.querySelector('textarea.reply-text').setSelectionRange(3, 3)")
        page.click("#canned summary")
        page.click("#canned button:has-text('查物流')")
        inserted = box.input_value()
        draft = page.evaluate(f"sessionStorage.getItem('gd-draft:{path}')")
        page.close()
        return {"appended": appended, "closed": closed, "inserted": inserted, "draft": draft}


async def test_a_tap_inserts_the_filled_reply_at_the_cursor(h5: H5) -> None:
    require_browser()
    group = await SkillGroup.get(name="一线客服组")
    await CannedReply.create(title="问候", body="{客户称呼}您好，工单 {工单号} 已收到。")
    await CannedReply.create(title="查物流", body="请提供订单号。", group=group)
    customer = await customers.create(name="王先生")
    lina = await Staff.get(userid="lina")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="物流", group_id=group.id,
                                  assignee_id=lina.id)
    await h5.login_staff("lina")
    path = f"/h5/tickets/{ticket.number}"
    html = (await h5.client.get(path)).text
    got = await asyncio.to_thread(_in_browser, html, path)
    assert got["appended"] == f"草稿。王先生您好，工单 {ticket.number} 已收到。"
    assert got["closed"] is True
    assert got["inserted"] == "您好，请提供订单号。谢谢"
    assert got["draft"] == "您好，请提供订单号。谢谢"


def _typed(html: str, path: str) -> dict[str, Any]:
    with chromium() as browser:
        page = _open(browser, html, path)
        box = page.locator("textarea.reply-text")
        got: dict[str, Any] = {}
        # the shortcut then a space at the start of the box
        box.click()
        page.keyboard.type("/fp ")
        got["space"] = box.input_value()
        # after typed words, the shortcut then Tab (the focus stays in the box)
        box.fill("")
        page.keyboard.type("好的 /wl")
        page.keyboard.press("Tab")
        got["tab"] = box.input_value()
        got["tab_focus"] = page.evaluate("document.activeElement.classList.contains('reply-text')")
        # the shortcut then Enter: no line break left behind
        box.fill("")
        page.keyboard.type("/fp")
        page.keyboard.press("Enter")
        got["enter"] = box.input_value()
        # a slash word that is no shortcut stays as typed, and so does a shortcut inside a word
        box.fill("")
        page.keyboard.type("/nope a/fp ")
        got["unknown"] = box.input_value()
        # a starting slash offers the matching replies, a tap on one expands it
        box.fill("")
        page.keyboard.type("/")
        got["offered_all"] = page.locator("#canned-suggest button").all_inner_texts()
        page.keyboard.type("w")
        got["offered_w"] = page.locator("#canned-suggest button").all_inner_texts()
        page.click("#canned-suggest button")
        got["picked"] = box.input_value()
        got["suggest_hidden"] = page.evaluate("document.getElementById('canned-suggest').hidden")
        got["draft"] = page.evaluate(f"sessionStorage.getItem('gd-draft:{path}')")
        page.close()
        return got


async def test_a_typed_shortcut_expands_to_the_filled_reply(h5: H5) -> None:
    require_browser()
    group = await SkillGroup.get(name="一线客服组")
    await CannedReply.create(title="问候", shortcut="/fp", body="{客户称呼}您好，工单 {工单号} 已收到。")
    await CannedReply.create(title="查物流", shortcut="/wl", body="请提供订单号。", group=group)
    await CannedReply.create(title="没有快捷键", body="不会出现在建议里。")
    await CannedReply.create(title="别组的", shortcut="/wx", body="别组的回复。",
                             group=await SkillGroup.get(name="售后组"))
    customer = await customers.create(name="王先生")
    lina = await Staff.get(userid="lina")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="物流", group_id=group.id,
                                  assignee_id=lina.id)
    await h5.login_staff("lina")
    path = f"/h5/tickets/{ticket.number}"
    html = (await h5.client.get(path)).text
    got = await asyncio.to_thread(_typed, html, path)
    greeting = f"王先生您好，工单 {ticket.number} 已收到。"
    assert got["space"] == greeting
    assert got["tab"] == "好的 请提供订单号。"
    assert got["tab_focus"] is True
    assert got["enter"] == greeting
    assert got["unknown"] == "/nope a/fp "
    assert got["offered_all"] == ["/fp 问候", "/wl 查物流"]
    assert got["offered_w"] == ["/wl 查物流"]
    assert got["picked"] == "请提供订单号。"
    assert got["suggest_hidden"] is True
    assert got["draft"] == "请提供订单号。"
