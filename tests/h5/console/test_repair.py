"""修复工具 pages: admins list and replay dead letters and failed callbacks (once), start a WeCom sync and a kf
recovery pull, and read the audit log; leads and agents get the Chinese 403; bad input is a 4xx that changes
nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.datastructures import Secret

from app.channels import health, inbound_jobs
from app.channels.models import ChannelAccount, InboundEvent
from app.channels.testing import RecordingAdapter
from app.outbox.jobs import deliver_outbox
from app.outbox.models import OutboxMessage
from app.security.models import AuditLog
from app.settings import WeComSettings, set_settings
from app.timeutil import utcnow
from simulator import crypto
from tests.conftest import RecordingQueue
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

PAGES = ("/console/repair/outbox", "/console/repair/inbound", "/console/repair/sync", "/console/repair/audit")


async def _dead(channel: str = "test", error: str = "TemporaryChannelError: 45015 回复时间超过限制") -> OutboxMessage:
    return await OutboxMessage.create(channel=channel, kind="customer_message", recipient="oCustomer0001",
                                      payload={"type": "text", "text": "您的退款已到账"}, status="dead", attempts=8,
                                      last_error=error, next_attempt_at=utcnow())


async def test_only_admins_open_the_repair_tools(console: Console) -> None:
    admin = await console.login(ADMIN)
    for path in PAGES:
        r = await admin.get(path)
        assert r.status_code == 200, (path, r.text)
    home = (await admin.get("/console/")).text
    assert "修复工具" in home and "发送失败的消息" in home and "审计日志" in home
    for who in (LEAD, AGENT):
        client = await console.login(who)
        for path in PAGES:
            r = await client.get(path)
            assert r.status_code == 403 and "没有权限" in r.text and "该页面仅限管理员使用" in r.text
        assert "发送失败的消息" not in (await client.get("/console/")).text


async def test_a_dead_letter_is_listed_safely_and_replayed_once(console: Console, recording: RecordingAdapter,
                                                               queue: RecordingQueue) -> None:
    row = await _dead(error="550 mailbox of 13812345678 full")
    sent = await OutboxMessage.create(channel="test", kind="customer_message", recipient="u", payload={},
                                      status="sent", next_attempt_at=utcnow())
    admin = await console.login(ADMIN)
    page = await admin.get("/console/repair/outbox")
    assert page.status_code == 200
    assert f'data-row="{row.id}"' in page.text and f'data-row="{sent.id}"' not in page.text
    assert "重试耗尽" in page.text and "138****5678" in page.text
    assert "13812345678" not in page.text and "您的退款已到账" not in page.text and "oCustomer0001" not in page.text
    path = f"/console/repair/outbox/{row.id}/replay"
    back = "/console/repair/outbox?channel=test"
    first = await console.post(admin, path, {"back": back}, page="/console/repair/outbox")
    assert first.status_code == 303 and first.headers["location"] == back
    assert f"#{row.id} 已重新排队" in (await admin.get(back)).text
    again = await console.post(admin, path, {"back": back}, page="/console/repair/outbox")
    assert again.status_code == 303
    assert f"#{row.id} 已在队列中，无需重复操作" in (await admin.get(back)).text
    assert [j for j in queue.jobs if j[0] == "deliver_outbox"] == [
        ("deliver_outbox", (row.id,), f"deliver:{row.id}:replay:{(await AuditLog.get()).id}")]
    assert [await deliver_outbox({}, row.id) for _ in range(2)] == ["sent", "skipped"]
    assert [s["id"] for s in recording.sent] == [row.id]
    refused = await console.post(admin, path, {}, page="/console/repair/outbox")
    assert refused.status_code == 409 and "这条消息已送达，不能重放" in refused.text
    rows = await console.audit_rows("replay_outbox")
    assert [(r.object_id, r.staff_id) for r in rows] == [  # type: ignore[attr-defined]
        (str(row.id), console.h5.people[ADMIN].id)]


async def test_a_bulk_replay_queues_the_ticked_rows(console: Console, queue: RecordingQueue) -> None:
    rows = [await _dead() for _ in range(3)]
    admin = await console.login(ADMIN)
    r = await console.post(admin, "/console/repair/outbox/replay", {"ids": [str(rows[0].id), str(rows[2].id)]},
                           page="/console/repair/outbox")
    assert r.status_code == 303
    assert "已重新排队 2 条" in (await admin.get("/console/repair/outbox")).text
    assert [o.status for o in await OutboxMessage.filter(id__in=[x.id for x in rows]).order_by("id")] == [
        "pending", "dead", "pending"]
    assert len(await console.audit_rows("replay_outbox")) == 2


async def test_bad_input_is_refused_and_changes_nothing(console: Console, queue: RecordingQueue) -> None:
    row = await _dead()
    admin = await console.login(ADMIN)
    bad_status = await admin.get("/console/repair/outbox", params={"status": "lost"})
    assert bad_status.status_code == 422 and "状态只能是以下值之一" in bad_status.text
    bad_time = await admin.get("/console/repair/outbox", params={"since": "昨天"})
    assert bad_time.status_code == 400 and 'aria-invalid="true"' in bad_time.text
    bad_ids = await console.post(admin, "/console/repair/outbox/replay", {"ids": ["abc"]},
                                 page="/console/repair/outbox")
    assert bad_ids.status_code == 400 and "编号不合法" in bad_ids.text
    missing = await console.post(admin, "/console/repair/outbox/999999/replay", {}, page="/console/repair/outbox")
    assert missing.status_code == 404
    no_csrf = await admin.post(f"/console/repair/outbox/{row.id}/replay", data={})
    assert no_csrf.status_code == 403 and "页面已过期" in no_csrf.text
    agent = await console.login(AGENT)
    forbidden = await console.post(agent, f"/console/repair/outbox/{row.id}/replay", {})
    assert forbidden.status_code == 403 and "该页面仅限管理员使用" in forbidden.text
    assert (await OutboxMessage.get(id=row.id)).status == "dead"
    assert queue.jobs == [] and await console.audit_rows() == []


async def test_a_failed_callback_is_replayed_from_its_page(console: Console, queue: RecordingQueue) -> None:
    handled: list[int] = []

    async def processor(event: InboundEvent, account: ChannelAccount | None) -> str:
        handled.append(event.id)
        return "done"

    inbound_jobs.register_processor("rtest", processor)
    try:
        account = await ChannelAccount.create(kind="rtest", key="rtest", name="测试公众号")
        event = await InboundEvent.create(channel_account_id=account.id, dedupe_key="rtest:1", payload="<xml/>",
                                          status="failed", attempts=8, error="KeyError: 'FromUserName'")
        admin = await console.login(ADMIN)
        page = await admin.get("/console/repair/inbound")
        assert f'data-row="{event.id}"' in page.text and "处理失败" in page.text and "测试公众号" in page.text
        assert "&lt;xml/&gt;" not in page.text
        r = await console.post(admin, f"/console/repair/inbound/{event.id}/replay", {},
                               page="/console/repair/inbound")
        assert r.status_code == 303
        assert [j[0] for j in queue.jobs] == ["process_inbound_event"]
        assert await inbound_jobs.process_inbound_event({}, event.id) == "done"
        assert handled == [event.id]
        assert [r.object_id for r in await console.audit_rows("replay_inbound")] == [str(event.id)]
    finally:
        inbound_jobs.PROCESSORS.pop("rtest", None)


async def test_sync_now_and_the_kf_recovery_pull_are_queued_and_audited(console: Console,
                                                                        queue: RecordingQueue) -> None:
    from wecom_sync.models import SyncRun

    await SyncRun.create(kind="directory", status="done", report={"added": {"staff": 12}, "api_calls": 5},
                         finished_at=utcnow())
    kf = await ChannelAccount.create(kind="wecom_kf", key="wkKf001", name="售后客服")
    admin = await console.login(ADMIN)
    page = await admin.get("/console/repair/sync")
    assert "成员 12" in page.text and "已完成" in page.text and "售后客服" in page.text
    assert "立即同步通讯录" in page.text
    r = await console.post(admin, "/console/repair/sync", {"kind": "directory"}, page="/console/repair/sync")
    assert r.status_code == 303 and "已开始同步通讯录" in (await admin.get("/console/repair/sync")).text
    r = await console.post(admin, f"/console/repair/kf/{kf.id}/recover", {}, page="/console/repair/sync")
    assert r.status_code == 303
    assert [(j[0], j[1]) for j in queue.jobs] == [("wecom_full_sync", ("directory",)), ("kf_recover", ("wkKf001",))]
    bad = await console.post(admin, "/console/repair/sync", {"kind": "all"}, page="/console/repair/sync")
    assert bad.status_code == 422 and "同步类型只能是" in bad.text
    assert [r.action for r in await console.audit_rows()] == ["sync_now", "kf_recover"]


async def test_the_audit_log_filters_and_shows_the_chain(console: Console, queue: RecordingQueue) -> None:
    row = await _dead()
    admin = await console.login(ADMIN)
    await console.post(admin, f"/console/repair/outbox/{row.id}/replay", {}, page="/console/repair/outbox")
    await console.post(admin, "/console/repair/sync", {"kind": "directory"}, page="/console/repair/sync")
    page = await admin.get("/console/repair/audit")
    assert "审计链完整：已校验 2 条记录" in page.text
    assert "重放消息" in page.text and "立即同步" in page.text
    only = await admin.get("/console/repair/audit", params={"object_type": "outbox"})
    assert "重放消息" in only.text and "立即同步通讯录" not in only.text
    since = await admin.get("/console/repair/audit", params={"since": "2999-01-01T00:00"})
    assert "没有符合条件的记录" in since.text
    bad = await admin.get("/console/repair/audit", params={"since": "2999-01-02T00:00", "until": "2999-01-01T00:00"})
    assert bad.status_code == 422 and "开始时间不能晚于结束时间" in bad.text
    await AuditLog.filter(action="sync_now").update(reason="被改过")
    broken = await admin.get("/console/repair/audit")
    assert re.search(r"审计链校验失败：第 \d+ 条记录 — 记录内容与哈希不符", broken.text)


CORP, CONTACT_TOKEN, CONTACT_AES_KEY = "wwcontacts0001", "contacttok", "ContactAesKey0123456789abcdefghijklmnopqrst"


@pytest.fixture
def _fresh_health() -> Iterator[None]:
    health.reset()
    yield
    health.reset()


def _contacts_callback(nonce: str, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
    """A 通讯录变更 push (change_contact) for the test corp, signed with the contacts token or forged."""
    ts = str(int(utcnow().timestamp()))
    plain = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
             f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]>"
             f"</Event><ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[lina]]></UserID></xml>")
    encrypted = crypto.encrypt(CONTACT_AES_KEY, CORP, plain.encode())
    signature = "0" * 40 if forged else crypto.sign(CONTACT_TOKEN, ts, nonce, encrypted)
    body = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return {"msg_signature": signature, "timestamp": ts, "nonce": nonce}, body.encode()


def _contacts_health(page: str) -> str:
    """The 通讯录回调 card of the sync page."""
    return page[page.index('id="contacts-callback"'):].split("</section>", 1)[0]


@pytest.mark.usefixtures("_fresh_health")
async def test_the_sync_page_shows_whether_the_last_contacts_callback_verified(console: Console,
                                                                               queue: RecordingQueue) -> None:
    admin = await console.login(ADMIN)
    assert "未配置 Token" in _contacts_health((await admin.get("/console/repair/sync")).text)
    configured = console.h5.settings.with_overrides(wecom=WeComSettings(
        corp_id=CORP, contact_token=Secret(CONTACT_TOKEN), contact_aes_key=Secret(CONTACT_AES_KEY)))
    set_settings(configured)  # the callback endpoints'
    console.h5.app.state.settings = configured  # the pages'
    card = _contacts_health((await admin.get("/console/repair/sync")).text)
    assert "http://127.0.0.1:8000/callbacks/wecom/contacts" in card and "尚未收到" in card
    assert "未配置" not in card
    params, body = _contacts_callback("n1", forged=True)
    r = await console.h5.client.post("/callbacks/wecom/contacts", params=params, content=body)
    assert (r.status_code, r.text) == (403, "bad_signature")  # the platform's answer is unchanged
    card = _contacts_health((await admin.get("/console/repair/sync")).text)
    assert "最近一次回调校验失败：签名错误" in card and "近 24 小时被拒 1 次" in card and "尚未收到" not in card
    params, body = _contacts_callback("n2")
    r = await console.h5.client.post("/callbacks/wecom/contacts", params=params, content=body)
    assert r.status_code == 200
    card = _contacts_health((await admin.get("/console/repair/sync")).text)
    assert "✓ 验证通过" in card and "校验失败" not in card and "近 24 小时被拒 1 次" in card
    # the self-built app's callback is a channel account's (渠道与集成): it does not show here
    params, body = _contacts_callback("n3", forged=True)
    await console.h5.client.post("/callbacks/wecom/app", params=params, content=body)
    assert "✓ 验证通过" in _contacts_health((await admin.get("/console/repair/sync")).text)
