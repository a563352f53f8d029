"""Browser tier for the repair tools: Debian's Chromium at 1440×900 against `gongdan serve` (a real uvicorn process)
with the simulator playing WeChat and WeCom. A customer's acknowledgement is forced into the dead letters by the
simulator's fault injection (``message/custom/send`` answers -1 "system busy" until the outbox gives up); the admin
logs in by the simulated QR code, replays it from 发送失败的消息, and the simulator receives it exactly once.
Screenshots land in tests/_artifacts/console/ (git-ignored)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import DESKTOP, Desk, browser, qr_login, screenshots, send_text, wechat_desk

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

APPID, SECRET, TOKEN = "wxrepairbrowser001", "repair-browser-secret-0123456789", "repairbrowser"
AES_KEY = "RepairBrowserAesKey0123456789abcdefghijklmn"
AGENT_ID, AGENT_SECRET = 1000002, "repair-agent-secret-0123456789ab"
OPENID = "oRepairCustomer0000000000001"
SEND = "message/custom/send"
_shot = screenshots("console")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with wechat_desk(tmp_path_factory, "console-repair-browser",
                     secret_key="repair-browser-secret-key-0123456789-abcdef", mp=(APPID, SECRET, TOKEN, AES_KEY),
                     agent_id=AGENT_ID, agent_secret=AGENT_SECRET, users=[("admin", "管理员")],
                     wait_timeout=30.0, wait_interval=0.2, OUTBOX_MAX_ATTEMPTS="2") as running:
        yield running


def _sent_to_customer(desk: Desk) -> list[Any]:
    return [m for m in desk.sim.sent_messages(touser=OPENID) if m.kind == "custom"]


def _dead_letters(desk: Desk) -> list[dict[str, Any]]:
    r = desk.api.get("/api/v1/repair/outbox", params={"channel": "wechat_mp", "status": "dead"})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _in_flight(desk: Desk) -> list[dict[str, Any]]:
    return [r for status in ("pending", "sending") for r in desk.api.get(
        "/api/v1/repair/outbox", params={"channel": "wechat_mp", "status": status}).json()["items"]]


def test_a_dead_letter_is_replayed_from_the_page_and_delivered_once(desk: Desk, browser: Any) -> None:
    # every customer-service message fails as "system busy" until the outbox gives up (2 attempts)
    desk.sim.inject_fault(SEND, {"errcode": -1, "errmsg": "system error"}, times=None)
    send_text(desk.driver, OPENID, "我要投诉，快递三天没送到")
    desk.wait_for(lambda: _dead_letters(desk) and not _in_flight(desk))
    letters = _dead_letters(desk)  # the acknowledgement (and any auto-reply): each tried twice, then given up
    dead = letters[-1]
    assert all(d["attempts"] == 2 and d["replayable"] and "PlatformBusy" in d["error"] for d in letters)
    assert _sent_to_customer(desk) == []
    desk.sim.faults.clear(SEND)  # the platform is well again

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the 重放 button asks first
    qr_login(page, desk.url, "/console/repair/outbox", "管理员")
    row = page.locator(f"tr[data-row='{dead['id']}']")
    assert row.get_by_text("重试耗尽").is_visible() and row.get_by_text("公众号").is_visible()
    _shot(page, "repair-outbox-dead-letter")

    row.get_by_role("button", name="重放").click()
    page.wait_for_url("**/console/repair/outbox")
    assert page.get_by_text(f"#{dead['id']} 已重新排队").is_visible()
    messages = desk.wait_for(lambda: _sent_to_customer(desk))
    assert len(messages) == 1
    sent = desk.api.get("/api/v1/repair/outbox", params={"channel": "wechat_mp", "status": "sent"}).json()["items"]
    assert [r["id"] for r in sent] == [dead["id"]]
    assert [r["id"] for r in _dead_letters(desk)] == [d["id"] for d in letters[:-1]]  # the others wait
    page.reload()
    assert page.locator(f"tr[data-row='{dead['id']}']").count() == 0  # delivered: no longer listed
    _shot(page, "repair-outbox-after-replay")

    # a second replay of the delivered message is refused, and nothing more reaches the customer
    again = desk.api.post(f"/api/v1/repair/outbox/{dead['id']}/replay")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_delivered"
    time.sleep(1.5)  # a duplicate send would have happened by now (the queue runs in the serve process)
    assert len(_sent_to_customer(desk)) == 1

    page.locator(".c-side").get_by_role("link", name="审计日志").click()
    page.wait_for_url("**/console/repair/audit")
    assert page.get_by_text("审计链完整").is_visible()
    assert page.locator("td", has_text="重放消息").count() == 1
    _shot(page, "repair-audit-log")
    context.close()


def test_the_repair_and_channel_pages_at_desktop_size(desk: Desk, browser: Any) -> None:
    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    qr_login(page, desk.url, "/console/repair/sync", "管理员")
    page.get_by_role("button", name="立即同步通讯录").click()
    page.wait_for_url("**/console/repair/sync")
    assert page.get_by_text("已开始同步通讯录").is_visible()

    def synced() -> bool:
        page.reload()
        return bool(page.locator("tr[data-run]", has_text="已完成").count() == 1)

    desk.wait_for(synced)
    assert page.locator("tr[data-run]", has_text="通讯录").get_by_text("成员").is_visible()
    _shot(page, "repair-sync")
    page.goto(desk.url + "/console/repair/inbound")
    _shot(page, "repair-inbound")

    page.goto(desk.url + "/console/channels/webchat")
    page.fill("input[name=key]", "shop")
    page.fill("input[name=name]", "示例商城")
    page.fill("textarea[name=origins]", "https://shop.example.com")
    page.get_by_role("button", name="保存").click()
    page.wait_for_url("**/console/channels/webchat")
    snippet = page.locator("input.c-snippet").first.input_value()
    assert snippet == f'<script src="{desk.url}/static/webchat/widget.js" data-site="shop" async></script>'
    _shot(page, "channels-webchat")

    page.goto(desk.url + "/console/channels/webhooks")
    page.fill("input[name=url]", "https://erp.example.com/hook")
    page.locator("input[name=events][value='ticket.created']").check()
    page.get_by_role("button", name="创建并生成签名密钥").click()
    assert page.locator("#secret-value").input_value().startswith("whsec_")
    _shot(page, "channels-webhook-secret")
    page.goto(desk.url + "/console/channels/webhooks")
    assert page.locator("#secret-value").count() == 0  # shown once
    for path, name in (("/console/channels/mailboxes", "channels-mailboxes"),
                       ("/console/channels/rules/new", "channels-rule-form"),
                       ("/console/channels/tokens", "channels-tokens")):
        page.goto(desk.url + path)
        _shot(page, name)
    context.close()
