"""渠道与集成 pages: mailboxes, webhooks (secret once, delivery log, replay, automatic disabling shown), business-event
rules, web chat sites and API tokens. Admins only (the Chinese 403 for others); bad input is a 4xx with the field's
error and nothing written; every change is an audit row."""

from __future__ import annotations

import re

from app.channels.email import accounts as mail_accounts
from app.channels.models import ChannelAccount
from app.integrations.models import EventRule
from app.outbox.models import OutboxMessage
from app.security.models import ApiToken
from app.security.service import authenticate
from app.webhooks.models import WebhookDelivery, WebhookSubscription
from tests.conftest import RecordingQueue
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

PAGES = ("/console/channels/mailboxes", "/console/channels/webhooks", "/console/channels/rules",
         "/console/channels/rules/new", "/console/channels/webchat", "/console/channels/tokens")


async def test_only_admins_open_the_channel_pages(console: Console) -> None:
    admin = await console.login(ADMIN)
    for path in PAGES:
        r = await admin.get(path)
        assert r.status_code == 200, (path, r.text[:500])
    for who in (LEAD, AGENT):
        client = await console.login(who)
        for path in PAGES:
            r = await client.get(path)
            assert r.status_code == 403 and "该页面仅限管理员使用" in r.text
        r = await console.post(client, "/console/channels/tokens", {"staff_id": "1", "scopes": ["admin"]})
        assert r.status_code == 403
    assert await ApiToken.all().count() == 0


MAILBOX = {"key": "support", "name": "客服中心", "address": "support@example.com", "imap_host": "imap.example.com",
           "imap_port": "993", "imap_security": "", "smtp_host": "smtp.example.com", "smtp_port": "465",
           "smtp_security": "", "username": "", "password": "auth-code-123", "folder": "INBOX", "idle": "1"}


async def test_a_mailbox_is_added_edited_and_tested(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/mailboxes"
    r = await console.post(admin, page, MAILBOX, page=page)
    assert r.status_code == 303
    listed = await admin.get(page)
    assert "support@example.com" in listed.text and "尚未收信" in listed.text and "auth-code-123" not in listed.text
    account = await ChannelAccount.get(key="support")
    assert mail_accounts.from_row(account).password == "auth-code-123"
    edit = await admin.get(f"{page}/{account.id}")
    assert 'value="imap.example.com"' in edit.text and "auth-code-123" not in edit.text
    r = await console.post(admin, page, {**MAILBOX, "password": "", "smtp_port": "587", "editing": "1"}, page=page)
    assert r.status_code == 303
    account = await ChannelAccount.get(key="support")
    assert account.config["smtp_port"] == 587 and mail_accounts.from_row(account).password == "auth-code-123"
    # the servers do not exist: the test says so, in Chinese, for each of them
    await ChannelAccount.filter(id=account.id).update(config={**account.config, "imap_host": "127.0.0.1",
                                                              "imap_port": 9, "smtp_host": "127.0.0.1",
                                                              "smtp_port": 9, "imap_security": "none",
                                                              "smtp_security": "none"})
    tested = await console.post(admin, f"{page}/{account.id}/test", {}, page=page)
    assert tested.status_code == 200 and tested.text.count("无法连接：服务器拒绝连接") == 2
    assert [r.action for r in await console.audit_rows()] == ["mailbox_save", "mailbox_save"]


async def test_bad_mailbox_input_names_the_field_and_writes_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/mailboxes"
    for change, field in (({"address": "not-mail"}, "address"), ({"imap_port": "99999"}, "imap_port"),
                          ({"password": ""}, "password"), ({"key": "中文"}, "key")):
        r = await console.post(admin, page, {**MAILBOX, **change}, page=page)
        assert r.status_code == 422, change
        assert f'id="e-{field}"' in r.text, (change, re.findall(r'id="e-[a-z_]+"', r.text))
        assert "auth-code-123" not in r.text  # a refused form does not echo the password
    assert await ChannelAccount.filter(kind="email").count() == 0 and await console.audit_rows() == []


async def test_idle_is_switched_per_mailbox_and_the_list_shows_how_mail_is_noticed(console: Console) -> None:
    from datetime import timedelta

    from app.channels.email.models import MailboxCursor
    from app.timeutil import utcnow

    admin = await console.login(ADMIN)
    page = "/console/channels/mailboxes"
    form = await admin.get(page)
    assert re.search(r'<input type="checkbox" id="f-idle" name="idle" value="1" checked', form.text)
    assert (await console.post(admin, page, MAILBOX, page=page)).status_code == 303
    account = await ChannelAccount.get(key="support")
    assert account.config["idle"] is True
    await MailboxCursor.create(channel_account_id=account.id, mode="idle", idle_until=utcnow() + timedelta(minutes=1))
    listed = await admin.get(page)
    assert re.search(r'<td data-mode="idle"><span class="[^"]*">IDLE</span></td>', listed.text), listed.text[-3000:]

    # unticked: the browser sends no "idle" at all
    off = {k: v for k, v in MAILBOX.items() if k != "idle"}
    r = await console.post(admin, page, {**off, "password": "", "editing": "1"}, page=page)
    assert r.status_code == 303
    assert (await ChannelAccount.get(key="support")).config["idle"] is False
    listed = await admin.get(page)
    assert re.search(r'<td data-mode="poll"><span class="[^"]*">轮询</span> '
                     r'<span class="c-hint">已关闭 IDLE，每分钟收一次信</span>', listed.text)
    edit = await admin.get(f"{page}/{account.id}")
    assert re.search(r'<input type="checkbox" id="f-idle" name="idle" value="1" >', edit.text)
    # a refused form keeps the switch as it was sent
    bad = await console.post(admin, page, {**off, "imap_port": "0", "editing": "1"}, page=page)
    assert bad.status_code == 422 and 'id="f-idle" name="idle" value="1" >' in bad.text
    assert [(a.action, a.reason) for a in await console.audit_rows()] == [
        ("mailbox_save", "新增邮箱 support@example.com（IDLE 开）"),
        ("mailbox_save", "修改邮箱 support@example.com（IDLE 关）")]


async def test_a_webhook_shows_its_secret_once_and_its_log_can_be_replayed(console: Console,
                                                                         queue: RecordingQueue) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/webhooks"
    r = await console.post(admin, page, {"url": "https://erp.example.com/hook", "events": ["ticket.created",
                                                                                         "sla.breached"],
                                         "description": "ERP"}, page=page)
    assert r.status_code == 201
    secret = re.search(r'id="secret-value" readonly value="(whsec_[^"]+)"', r.text)
    assert secret is not None and "只显示这一次" in r.text
    sub = await WebhookSubscription.get()
    assert sub.events == ["sla.breached", "ticket.created"]
    again = await admin.get(page)
    assert secret.group(1) not in again.text and "erp.example.com/hook" in again.text
    delivery = await WebhookDelivery.create(subscription_id=sub.id, event_type="ticket.created", msg_id="msg_1",
                                            payload={"type": "ticket.created"}, status="failed", attempts=8,
                                            last_status_code=503, last_error="HTTP 503")
    log = await admin.get(f"{page}/{sub.id}")
    assert "msg_1" in log.text and "503" in log.text and "失败" in log.text
    r = await console.post(admin, f"{page}/{sub.id}/deliveries/{delivery.id}/replay", {}, page=f"{page}/{sub.id}")
    assert r.status_code == 303
    assert (await WebhookDelivery.get(id=delivery.id)).status == "pending"
    assert await OutboxMessage.filter(channel="webhook").count() == 1
    twice = await console.post(admin, f"{page}/{sub.id}/deliveries/{delivery.id}/replay", {},
                               page=f"{page}/{sub.id}")
    assert twice.status_code == 409 and "仍在进行中" in twice.text
    assert await OutboxMessage.filter(channel="webhook").count() == 1
    r = await console.post(admin, f"{page}/{sub.id}/disable", {}, page=page)
    assert r.status_code == 303 and not (await WebhookSubscription.get(id=sub.id)).active
    r = await console.post(admin, f"{page}/{sub.id}/enable", {}, page=page)
    assert r.status_code == 303 and (await WebhookSubscription.get(id=sub.id)).active
    assert [r.action for r in await console.audit_rows()] == [
        "webhook_create", "webhook_replay", "webhook_disable", "webhook_enable"]


async def test_an_automatically_disabled_webhook_is_announced(console: Console) -> None:
    from app.timeutil import utcnow

    sub = await WebhookSubscription.create(url="https://down.example.com/hook", events=["ticket.created"],
                                           secret_enc="x", active=False, consecutive_failures=50,
                                           disabled_reason="连续 50 次投递失败，已自动停用", disabled_at=utcnow())
    admin = await console.login(ADMIN)
    page = await admin.get("/console/channels/webhooks")
    assert f"事件推送 #{sub.id}（https://down.example.com/hook）连续 50 次投递失败，已自动停用" in page.text
    assert "已自动停用" in page.text and "c-alert-warn" in page.text


async def test_bad_webhooks_are_refused(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/webhooks"
    for data, field in (({"url": "ftp://x.example.com", "events": ["ticket.created"]}, "url"),
                        ({"url": "https://x.example.com/h"}, "events"),
                        ({"url": "https://x.example.com/h", "events": ["ticket.deleted"]}, "events")):
        r = await console.post(admin, page, data, page=page)
        assert r.status_code == 422
        assert ('id="e-url"' in r.text) if field == "url" else ("c-field-error" in r.text)
    assert await WebhookSubscription.all().count() == 0 and await console.audit_rows() == []


RULE = {"name": "支付失败回访", "event_type": "payment_failed", "action": "both", "subject": "支付失败：{order_no}",
        "description": "", "message": "您的订单 {order_no} 支付失败，客服将联系您", "priority": "high",
        "category": "支付", "tags": "支付、回访", "active": "1", "cond_field_0": "amount", "cond_op_0": "gte",
        "cond_value_0": "100", "cond_field_1": "channel", "cond_op_1": "in", "cond_value_1": "app, web"}


async def test_an_event_rule_is_created_edited_and_deleted(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, "/console/channels/rules", RULE, page="/console/channels/rules/new")
    assert r.status_code == 303
    rule = await EventRule.get()
    assert (rule.action, rule.priority, rule.tags) == ("both", "high", ["支付", "回访"])
    assert rule.conditions == [{"field": "amount", "op": "gte", "value": 100.0},
                               {"field": "channel", "op": "in", "value": ["app", "web"]}]
    listed = await admin.get("/console/channels/rules")
    assert "支付失败回访" in listed.text and "amount 大于等于 100" in listed.text
    form = await admin.get(f"/console/channels/rules/{rule.id}")
    assert 'value="app、web"' in form.text
    r = await console.post(admin, f"/console/channels/rules/{rule.id}",
                           {**RULE, "action": "ticket", "priority": "", "active": ""},
                           page=f"/console/channels/rules/{rule.id}")
    assert r.status_code == 303
    rule = await EventRule.get(id=rule.id)
    assert (rule.action, rule.priority, rule.active) == ("ticket", None, False)
    r = await console.post(admin, f"/console/channels/rules/{rule.id}/delete", {}, page="/console/channels/rules")
    assert r.status_code == 303 and await EventRule.all().count() == 0
    assert [a.action for a in await console.audit_rows()] == [
        "event_rule_create", "event_rule_update", "event_rule_delete"]


async def test_bad_rules_name_the_field_and_write_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    for change, marker in (({"event_type": "Payment Failed"}, 'id="e-event_type"'),
                           ({"name": ""}, 'id="e-name"'),
                           ({"action": "call"}, 'id="e-action"'),
                           ({"cond_field_0": "a b"}, "c-cond-row has-error")):
        r = await console.post(admin, "/console/channels/rules", {**RULE, **change},
                               page="/console/channels/rules/new")
        assert r.status_code == 422 and marker in r.text, change
    assert await EventRule.all().count() == 0 and await console.audit_rows() == []


async def test_a_web_chat_site_shows_its_snippet_and_saves_origins_and_limits(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/webchat"
    r = await console.post(admin, page, {"key": "shop", "name": "示例商城",
                                         "origins": "https://Shop.example.com/\nhttp://localhost:8080",
                                         "bot": "1", "group_id": "", "per_visitor": "5", "per_ip": "50",
                                         "max_chars": "500"}, page=page)
    assert r.status_code == 303
    listed = await admin.get(page)
    snippet = f'<script src="{console.h5.settings.public_url.rstrip("/")}/static/webchat/widget.js" ' \
              'data-site="shop" async></script>'
    assert snippet.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") in listed.text
    assert 'data-copy="#snippet-' in listed.text and "每位访客每分钟 5 条" in listed.text
    account = await ChannelAccount.get(key="shop")
    assert account.config["origins"] == ["http://localhost:8080", "https://shop.example.com"]
    assert (account.config["per_visitor"], account.config["per_ip"], account.config["max_chars"]) == (5, 50, 500)
    bad = await console.post(admin, page, {"key": "shop", "origins": "shop.example.com", "editing": "1"}, page=page)
    assert bad.status_code == 422 and 'id="e-origins"' in bad.text and "不是合法的来源" in bad.text
    worse = await console.post(admin, page, {"key": "shop", "origins": "https://a.example.com", "per_ip": "0"},
                               page=page)
    assert worse.status_code == 422 and 'id="e-per_ip"' in worse.text
    assert (await ChannelAccount.get(key="shop")).config == account.config
    assert [a.action for a in await console.audit_rows()] == ["webchat_save"]


async def test_a_web_chat_site_chooses_the_mailbox_its_codes_come_from(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/webchat"
    await ChannelAccount.create(kind="email", key="support", name="客服中心", config={"address": "kf@example.com"})
    await ChannelAccount.create(kind="email", key="sales", name="销售", config={"address": "sales@example.com"})
    await ChannelAccount.create(kind="email", key="old", name="旧邮箱", active=False, config={})
    form = await admin.get(page)
    assert '<option value="" selected>自动（第一个启用的邮箱）</option>' in form.text
    assert '<option value="sales">销售（sales@example.com）</option>' in form.text and '"old"' not in form.text
    site = {"key": "shop", "name": "示例商城", "origins": "https://shop.example.com", "bot": "1", "group_id": "",
            "per_visitor": "10", "per_ip": "30", "max_chars": "2000"}
    r = await console.post(admin, page, {**site, "verify_mailbox": "sales"}, page=page)
    assert r.status_code == 303
    account = await ChannelAccount.get(key="shop")
    assert account.config["verify_mailbox"] == "sales"
    listed = await admin.get(page)
    assert "验证码发件邮箱：销售（sales@example.com）" in listed.text
    edit = await admin.get(f"{page}/{account.id}")
    assert '<option value="sales" selected>' in edit.text
    for bad in ("old", "nobody"):
        refused = await console.post(admin, page, {**site, "verify_mailbox": bad, "editing": "1"}, page=page)
        assert refused.status_code == 422 and 'id="e-verify_mailbox"' in refused.text
        assert "发送验证码的邮箱不存在或已停用" in refused.text
    assert (await ChannelAccount.get(key="shop")).config == account.config
    assert [a.action for a in await console.audit_rows()] == ["webchat_save"]


async def test_an_api_token_is_shown_once_and_can_be_revoked(console: Console) -> None:
    admin = await console.login(ADMIN)
    agent = console.h5.people[AGENT]
    page = "/console/channels/tokens"
    r = await console.post(admin, page, {"staff_id": str(agent.id), "name": "ERP", "scopes": ["read", "events"]},
                           page=page)
    assert r.status_code == 201
    raw = re.search(r'id="token-value" readonly value="(gd_[^"]+)"', r.text)
    assert raw is not None
    actor = await authenticate(raw=raw.group(1))
    assert actor is not None and actor.scopes == frozenset({"read", "events"})
    listed = await admin.get(page)
    assert raw.group(1) not in listed.text and "读取、业务事件" in listed.text and raw.group(1)[:10] in listed.text
    token = await ApiToken.get()
    r = await console.post(admin, f"{page}/{token.id}/revoke", {}, page=page)
    assert r.status_code == 303 and await authenticate(raw=raw.group(1)) is None
    again = await console.post(admin, f"{page}/{token.id}/revoke", {}, page=page)
    assert again.status_code == 409 and "该令牌已吊销" in again.text
    assert [a.action for a in await console.audit_rows()] == ["token_create", "token_revoke"]


async def test_bad_token_requests_are_refused(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = "/console/channels/tokens"
    no_scope = await console.post(admin, page, {"staff_id": str(console.h5.people[AGENT].id), "name": "x"},
                                  page=page)
    assert no_scope.status_code == 422 and "请选择令牌的权限" in no_scope.text
    no_staff = await console.post(admin, page, {"staff_id": "", "scopes": ["read"]}, page=page)
    assert no_staff.status_code == 422 and 'id="e-staff_id"' in no_staff.text
    assert await ApiToken.all().count() == 0 and await console.audit_rows() == []
