"""Browser tier for the console: Debian's Chromium at 1440×900 against `gongdan serve` (a real uvicorn process) with
the simulator playing WeCom. Logins go through the simulated QR-code login (wwlogin/sso/login; the development login
is off: GONGDAN_ENV=production). Screenshots land in tests/_artifacts/console/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import DESKTOP, Desk, browser, qr_login, screenshots, wechat_desk

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

AGENT_ID, AGENT_SECRET = 1000002, "console-agent-secret-0123456789ab"
SETTINGS_PAGES = [("/console/settings/channels", "公众号与微信客服"), ("/console/settings/staff", "客服成员"),
                  ("/console/settings/groups", "技能组"), ("/console/settings/sla", "SLA 策略"),
                  ("/console/settings/calendars", "工作日历"), ("/console/settings/kb", "知识库"),
                  ("/console/settings/canned", "快捷回复"), ("/console/settings/approvals", "审批设置")]
_shot = screenshots("console")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with wechat_desk(tmp_path_factory, "console-browser", secret_key="console-browser-secret-key-0123456789-abcdef",
                     agent_id=AGENT_ID, agent_secret=AGENT_SECRET,
                     users=(("admin", "管理员"), ("lina", "李娜"))) as running:
        yield running


def test_admin_logs_in_by_qr_changes_a_rule_and_the_dry_run_follows(desk: Desk, browser: Any) -> None:
    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    qr_login(page, desk.url, "/console/", "管理员", shot=_shot)
    assert page.locator(".c-user-name").inner_text() == "管理员"
    assert page.locator(".c-side").get_by_role("link", name="路由规则", exact=True).is_visible()
    _shot(page, "console-home")

    page.locator(".c-side").get_by_role("link", name="路由规则", exact=True).click()
    page.wait_for_url("**/console/settings/rules")
    page.fill("textarea[name=text]", "我要开发票，公司抬头")
    page.get_by_role("button", name="试运行").click()
    assert page.locator("#dry-group").inner_text() == "财务组"
    _shot(page, "console-rules-dry-run-before")

    page.locator("tr", has=page.locator("strong", has_text="发票财务")).get_by_role("link", name="编辑").click()
    page.wait_for_url("**/console/settings/rules/*")
    page.select_option("select[name='then.group']", "售后组")
    page.select_option("select[name='then.priority']", "urgent")
    _shot(page, "console-rule-edit")
    page.get_by_role("button", name="保存").click()
    page.wait_for_url("**/console/settings/rules")
    assert page.get_by_text("规则「发票财务」已保存").is_visible()

    page.fill("textarea[name=text]", "我要开发票，公司抬头")
    page.get_by_role("button", name="试运行").click()
    assert page.locator("#dry-group").inner_text() == "售后组"
    assert page.locator("#dry-priority").inner_text() == "紧急"
    _shot(page, "console-rules-dry-run-after")

    # every settings page renders in the real server, with its nav entry highlighted
    for path, label in SETTINGS_PAGES:
        response = page.goto(desk.url + path)
        assert response is not None and response.status == 200, path
        assert page.locator(".c-nav-item.is-active").inner_text() == label
        _shot(page, "console-" + path.rsplit("/", 1)[-1])
    context.close()


def test_an_agent_cannot_open_an_admin_page(desk: Desk, browser: Any) -> None:
    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    qr_login(page, desk.url, "/console/", "李娜")
    # not in an agent's navigation
    assert page.locator(".c-side").get_by_role("link", name="路由规则", exact=True).count() == 0
    response = page.goto(desk.url + "/console/settings/rules")
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", name="没有权限").is_visible()
    assert page.get_by_text("该页面仅限管理员和组长使用。").is_visible()
    _shot(page, "console-agent-403")
    context.close()
