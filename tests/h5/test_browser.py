"""Browser tier: real headless Chromium (Debian's `chromium`, driven by Playwright) at a 375×812 phone viewport,
against `gongdan serve` as a real uvicorn process with the simulator playing WeChat and WeCom.

Logins go through the simulated OAuth pages (the development login is off: GONGDAN_ENV=production). Screenshots of
each main page land in tests/_artifacts/h5/ (git-ignored) for a person to look at. Under CI=true a missing Chromium
or Playwright fails the run instead of skipping it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import PHONE, Desk, browser, oauth_login, screenshots, send_text, wechat_desk

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

APPID, SECRET, TOKEN = "wxh5browser000001", "h5-browser-secret-0123456789", "h5browser"
AES_KEY = "H5BrowserAesKey0123456789abcdefghijklmnopqr"
AGENT_ID, AGENT_SECRET = 1000002, "h5-agent-secret-0123456789abcdef"
OPENID, OTHER_OPENID = "oH5Customer00000000000001", "oH5Customer00000000000002"
_shot = screenshots("h5")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with wechat_desk(tmp_path_factory, "h5-browser", secret_key="h5-browser-secret-key-0123456789-abcdefghij",
                     mp=(APPID, SECRET, TOKEN, AES_KEY), agent_id=AGENT_ID, agent_secret=AGENT_SECRET,
                     users=(("lina", "李娜"), ("zhangwei", "张伟"), ("outsider", "访客"))) as running:
        yield running


def _customer_ticket(desk: Desk, openid: str, text: str) -> dict[str, Any]:
    """A customer writes to the Official Account; the conversion rules open a ticket."""
    before = {t["number"] for t in desk.api.get("/api/v1/tickets").json()["items"]}
    send_text(desk.driver, openid, text)
    new = desk.wait_for(lambda: [t for t in desk.api.get("/api/v1/tickets").json()["items"]
                                 if t["number"] not in before])
    return dict(new[0])


def test_staff_reply_conflict_and_customer_rating(desk: Desk, browser: Any) -> None:
    ticket = _customer_ticket(desk, OPENID, "我要投诉，快递三天没送到，订单 2026112500001")
    other = _customer_ticket(desk, OTHER_OPENID, "我要投诉，另一位客户的问题")
    staff_id = desk.staff_id("lina")
    r = desk.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"version": ticket["version"], "assignee_id": staff_id})
    assert r.status_code == 200, r.text
    card_link = f"/h5/tickets/{ticket['number']}"

    a = browser.new_context(**PHONE)
    b = browser.new_context(**PHONE)
    page = a.new_page()
    oauth_login(page, desk.url, card_link, "李娜")
    assert page.get_by_text("我要投诉，快递三天没送到").first.is_visible()
    _shot(page, "staff-ticket")

    page.goto(desk.url + "/h5/tickets")
    assert page.get_by_text(ticket["number"]).is_visible()
    _shot(page, "staff-my-tickets")
    page.goto(desk.url + "/h5/queue")
    _shot(page, "staff-queue")
    page.goto(desk.url + "/h5/new")
    _shot(page, "staff-new-ticket")
    page.goto(desk.url + card_link)

    # a second browser changes the ticket first
    page_b = b.new_page()
    oauth_login(page_b, desk.url, card_link, "张伟")
    page_b.select_option("select[name=status]", "pending")
    page_b.get_by_role("button", name="仅保存修改").click()
    page_b.wait_for_url("**notice=saved")

    typed = "您好，快递已联系加急，今天送达。"
    page.fill("textarea[name=text]", typed)
    page.select_option("select[name=status]", "resolved")
    page.get_by_role("button", name="回复客户").click()
    assert page.get_by_text("工单已被他人修改").is_visible()
    assert page.input_value("textarea[name=text]") == typed  # nothing typed is lost
    assert page.input_value("select[name=status]") == "resolved"
    _shot(page, "staff-conflict")
    assert not [m for m in desk.sim.sent_messages(touser=OPENID) if m.body.get("text", {}).get("content") == typed]

    page.get_by_role("button", name="回复客户").click()
    page.wait_for_url("**notice=replied")
    assert page.get_by_text(typed).is_visible()
    desk.wait_for(lambda: [m for m in desk.sim.sent_messages(touser=OPENID)
                           if m.body.get("text", {}).get("content") == typed])
    assert desk.api.get(f"/api/v1/tickets/{ticket['id']}").json()["status"] == "resolved"
    a.close()
    b.close()

    # the customer opens 我的工单 from the Official Account menu
    c = browser.new_context(**PHONE)
    cpage = c.new_page()
    cpage.goto(desk.url + "/h5/my/tickets")
    cpage.fill("input[name=who]", OPENID)
    cpage.get_by_role("button", name="以此身份登录").click()
    cpage.wait_for_url(desk.url + "/h5/my/tickets")
    assert cpage.get_by_text(ticket["number"]).is_visible()
    assert cpage.get_by_text(other["number"]).count() == 0
    _shot(cpage, "customer-my-tickets")
    cpage.get_by_text(ticket["number"]).click()
    assert cpage.get_by_text(typed).is_visible()
    cpage.get_by_text("4星").click()
    cpage.fill("textarea[name=comment]", "送货快，服务好")
    cpage.get_by_role("button", name="提交评价").click()
    cpage.wait_for_url("**notice=rated")
    assert cpage.get_by_text("感谢您的评价").is_visible()
    assert cpage.get_by_text("您的评价：4 星").is_visible()
    _shot(cpage, "customer-ticket-rated")
    cpage.goto(desk.url + f"/h5/my/tickets/{other['number']}")
    assert cpage.get_by_text("工单不存在").is_visible()
    cpage.goto(desk.url + "/h5/my/new")
    _shot(cpage, "customer-new-ticket")
    c.close()


def test_outsider_gets_a_clear_page(desk: Desk, browser: Any) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(desk.url + "/h5/tickets")
    page.get_by_role("link", name="访客").click()
    assert page.get_by_text("无法使用工作台").is_visible()
    _shot(page, "staff-not-staff")
    context.close()


def test_a_cjk_font_is_installed(desk: Desk, browser: Any) -> None:
    """Without one, Chinese renders as empty boxes in the screenshots."""
    if not shutil.which("fc-list"):
        pytest.skip("fontconfig tools missing")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no CJK font: apt-get install -y fonts-noto-cjk"


def _group_id(desk: Desk, name: str) -> int:
    with sqlite3.connect(desk.database) as conn:
        return int(conn.execute("SELECT id FROM skill_group WHERE name = ?", (name,)).fetchone()[0])


def _create_ticket(desk: Desk, page: Any) -> dict[str, Any]:
    """Press 创建工单 on the open form: the ticket the page lands on."""
    page.get_by_role("button", name="创建工单").click()
    page.wait_for_url(f"{desk.url}/h5/tickets/*")
    number = page.url.split("/h5/tickets/", 1)[1].split("?", 1)[0]
    found = desk.api.get("/api/v1/tickets", params={"q": number}).json()["items"]
    assert len(found) == 1, found
    return dict(found[0])


def test_staff_create_tickets_in_h5_and_in_the_chat_sidebar_routed_like_a_message(desk: Desk, browser: Any) -> None:
    """The intake journey for staff: a phone call entered in 新建, and a ticket raised from the chat sidebar for the
    external contact in front of them, both routed by the same rules as a customer's message (发票 -> 财务组)."""
    finance = _group_id(desk, "财务组")
    lina = desk.staff_id("lina")
    page = browser.new_context(**PHONE).new_page()
    oauth_login(page, desk.url, "/h5/new", "李娜")
    page.fill("input[name=customer]", "13800001111")
    page.fill("input[name=subject]", "客户来电：发票抬头开错了")
    page.fill("textarea[name=description]", "客户要求重开增值税发票")
    created = _create_ticket(desk, page)
    assert (created["group_id"], created["assignee_id"]) == (finance, lina)
    _shot(page, "staff-new-routed")

    page.goto(desk.url + "/h5/sidebar")
    page.fill("#external_userid", "wmSidebarContact01")
    page.get_by_role("button", name="查找").click()
    page.fill("form[action='/h5/sidebar/create'] input[name=subject]", "要重开发票，抬头写错了")
    raised = _create_ticket(desk, page)
    assert (raised["group_id"], raised["assignee_id"]) == (finance, lina)
    detail = desk.api.get(f"/api/v1/tickets/{raised['id']}").json()
    created_event = next(e for e in detail["events"] if e["kind"] == "created")
    decision = created_event["decision"]
    assert (decision["source"], decision["source_label"]) == ("sidebar", "聊天工具栏")
    assert "发票财务" in decision["matched"] and decision["result"]["group_id"] == finance
    _shot(page, "staff-sidebar-routed")
