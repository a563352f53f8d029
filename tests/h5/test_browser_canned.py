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


def _in_browser(html: str, path: str) -> dict[str, Any]:
    with chromium() as browser:
        page = browser.new_page(**PHONE)

        def static(route: Any) -> None:
            name = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
            route.fulfill(path=str(STATIC_DIR / name))

        page.route(f"{BASE}/static/**", static)
        page.route(f"{BASE}{path}", lambda route: route.fulfill(body=html, content_type="text/html; charset=utf-8"))
        page.route(f"{BASE}/h5/tickets/*/live", lambda route: route.abort())
        page.goto(f"{BASE}{path}")
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
