"""设置 · SLA 策略 / 工作日历 / 节假日通知: pages that change the SLA document through ``sla_config`` and import
notices through ``holiday_notice``, with errors next to fields, nothing half-written, audit rows and roles."""

from __future__ import annotations

import re
from pathlib import Path

from app.security.models import AuditLog
from app.tickets import sla_config
from app.tickets.models import BusinessCalendar, HolidayNotice, SlaPolicy
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

SLA = "/console/settings/sla"
CAL = "/console/settings/calendars"
DEMO = Path(__file__).resolve().parents[3] / "app" / "tickets" / "demo_sla.yaml"
NOTICE = "一、元旦：1月1日（周五）至3日（周日）放假，共3天。\n二、端午节：6月9日（周三）放假1天。"


async def _demo() -> None:
    await sla_config.store(document=sla_config.parse_yaml(DEMO.read_text(encoding="utf-8")))


async def test_policies_list_in_order_and_roles(console: Console) -> None:
    await _demo()
    admin = await console.login(ADMIN)
    r = await admin.get(SLA)
    assert r.status_code == 200 and "新建策略" in r.text
    assert r.text.index("<strong>紧急</strong>") < r.text.index("<strong>高</strong>")
    assert "30 分钟" in r.text and "4 小时" in r.text
    lead = await console.login(LEAD)
    r = await lead.get(SLA)
    assert r.status_code == 200 and "新建策略" not in r.text
    urgent = await SlaPolicy.get(name="紧急")
    assert (await lead.get(f"{SLA}/{urgent.id}")).status_code == 403
    agent = await console.login(AGENT)
    assert (await agent.get(SLA)).status_code == 403 and (await agent.get(CAL)).status_code == 403


async def test_change_a_policy_keeps_the_order_and_audits(console: Console) -> None:
    await _demo()
    admin = await console.login(ADMIN)
    urgent = await SlaPolicy.get(name="紧急")
    positions = {p.name: p.position for p in await SlaPolicy.all()}
    r = await console.post(admin, f"{SLA}/{urgent.id}", {
        "priority": "urgent", "first_response_minutes": "15", "next_response_minutes": "60",
        "resolution_minutes": "120", "warn_ratio": "0.5", "escalation_minutes": "0, 10, 20", "active": "1"},
        page=f"{SLA}/{urgent.id}")
    assert r.status_code == 303 and r.headers["location"] == SLA
    urgent = await SlaPolicy.get(id=urgent.id)
    assert (urgent.first_response_minutes, urgent.resolution_minutes, urgent.warn_ratio,
            urgent.escalation_minutes) == (15, 120, 0.5, [0, 10, 20])
    assert {p.name: p.position for p in await SlaPolicy.all()} == positions
    [row] = await console.audit_rows("sla_save")
    assert row.reason == "修改 SLA 策略「紧急」" and row.object_type == "sla_policy"
    r = await console.post(admin, f"{SLA}/new", {"name": "大客户", "vip_min": "2", "first_response_minutes": "10",
                                                 "escalation_minutes": "0,30,60", "warn_ratio": "0.8"},
                           page=f"{SLA}/new")
    assert r.status_code == 303, re.findall(r'(?:c-field-error|c-alert-error)[^>]*>([^<]*)', r.text)
    vip = await SlaPolicy.get(name="大客户")
    assert vip.position == len(positions) and vip.vip_min == 2 and vip.active is False


async def test_bad_policy_input_shows_sla_config_messages_and_changes_nothing(console: Console) -> None:
    await _demo()
    admin = await console.login(ADMIN)
    urgent = await SlaPolicy.get(name="紧急")
    before = sla_config.to_yaml(await sla_config.export())
    r = await console.post(admin, f"{SLA}/{urgent.id}", {
        "first_response_minutes": "半小时", "warn_ratio": "2", "escalation_minutes": "60, 30, 0"},
        page=f"{SLA}/{urgent.id}")
    assert r.status_code == 422
    assert re.search(r'id="e-first_response_minutes">应为非负整数<', r.text)
    assert re.search(r'id="e-warn_ratio">应为 0 到 1 之间的小数<', r.text)
    assert re.search(r'id="e-escalation_minutes">应为三个递增的非负整数（分钟）<', r.text)
    assert 'value="半小时"' in r.text
    r = await console.post(admin, f"{SLA}/new", {"name": "高", "escalation_minutes": "0,30,60"}, page=f"{SLA}/new")
    assert r.status_code == 422 and re.search(r'id="e-name">已有名为「高」的 SLA 策略<', r.text)
    assert sla_config.to_yaml(await sla_config.export()) == before
    assert not await AuditLog.exists()


async def test_calendars_create_edit_and_errors(console: Console) -> None:
    await _demo()
    admin = await console.login(ADMIN)
    r = await admin.get(CAL)
    assert r.status_code == 200 and "标准工作日" in r.text and "周一：09:00-12:00, 13:00-18:00" in r.text
    data = {"name": "夜班", "timezone": "Asia/Shanghai", "weekly_1": "18:00-24:00", "weekly_6": "",
            "extra_days_off": "2026-12-31", "public_holidays": "1"}
    r = await console.post(admin, f"{CAL}/new", data, page=f"{CAL}/new")
    assert r.status_code == 303
    row = await BusinessCalendar.get(name="夜班")
    assert row.weekly["1"] == [["18:00", "24:00"]] and row.weekly["2"] == [] and row.extra_days_off == ["2026-12-31"]
    assert (await console.audit_rows("calendar_save"))[0].reason == "新建工作日历「夜班」"
    standard = await BusinessCalendar.get(name="标准工作日")
    before = (standard.weekly, standard.extra_workdays)
    r = await console.post(admin, f"{CAL}/{standard.id}", {"timezone": "Asia/Shanghai", "weekly_3": "9点到6点",
                                                            "extra_workdays": "明天", "public_holidays": "1"},
                           page=f"{CAL}/{standard.id}")
    assert r.status_code == 422
    assert re.search(r'id="e-weekly_3">星期3: ', r.text)
    r = await console.post(admin, f"{CAL}/{standard.id}", {"timezone": "Mars/Base", "weekly_1": "09:00-18:00"},
                           page=f"{CAL}/{standard.id}")
    assert r.status_code == 422 and re.search(r'id="e-timezone">未知时区', r.text)
    r = await console.post(admin, f"{CAL}/{standard.id}", {"timezone": "Asia/Shanghai", "extra_workdays": "明天"},
                           page=f"{CAL}/{standard.id}")
    assert r.status_code == 422 and re.search(r'id="e-extra_workdays">公司加班日: 日期格式应为 YYYY-MM-DD', r.text)
    standard = await BusinessCalendar.get(id=standard.id)
    assert (standard.weekly, standard.extra_workdays) == before
    assert len(await console.audit_rows("calendar_save")) == 1


async def test_holiday_notice_check_then_import(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = f"{CAL}/notice"
    r = await console.post(admin, page, {"text": NOTICE, "year": "2027", "check": "1"}, page=page)
    assert r.status_code == 200 and 'id="notice-preview"' in r.text and "2027-06-09" in r.text
    assert not await HolidayNotice.exists()
    r = await console.post(admin, page, {"text": NOTICE, "year": "2027"}, page=page)
    assert r.status_code == 303
    notice = await HolidayNotice.get(year=2027)
    assert [h["name"] for h in notice.document["holidays"]] == ["元旦", "端午节"]
    [row] = await console.audit_rows("notice_import")
    assert row.object_id == "2027"
    assert "2027 年节假日通知已导入" in (await admin.get(CAL)).text


async def test_a_bad_notice_is_refused_with_its_reason(console: Console) -> None:
    admin = await console.login(ADMIN)
    page = f"{CAL}/notice"
    r = await console.post(admin, page, {"text": "一、元旦：1月1日（周四）至3日（周日）放假，共3天。", "year": "2027"},
                           page=page)
    assert r.status_code == 422 and "写的是周四，但 2027-01-01 是周五" in r.text
    r = await console.post(admin, page, {"text": NOTICE, "year": "明年"}, page=page)
    assert r.status_code == 422 and re.search(r'id="e-year">年份应为整数<', r.text)
    assert not await HolidayNotice.exists() and not await AuditLog.exists()
    lead = await console.login(LEAD)
    r = await console.post(lead, page, {"text": NOTICE, "year": "2027"}, page=CAL)
    assert r.status_code == 403 and "只有管理员可以导入节假日通知" in r.text
