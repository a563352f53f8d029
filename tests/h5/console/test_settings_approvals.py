"""设置 · 审批设置: the thresholds in force, saving them through ``approvals.policy`` (checked like the APPROVAL_*
settings, audited), errors next to fields, going back to the environment, and roles."""

from __future__ import annotations

import re
from dataclasses import replace

from app.settings import Settings, set_settings
from approvals.models import ApprovalPolicy
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/approvals"


async def test_admin_sees_the_settings_and_saves_new_thresholds(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE)
    assert r.status_code == 200 and "环境变量" in r.text and "<code>APPROVAL_*</code>" in r.text
    assert 'id="current-threshold">200.00<' in r.text
    r = await console.post(admin, BASE, {"threshold": "800", "levels": "0=1,5000=2", "timeout_minutes": "60"},
                           page=BASE)
    assert r.status_code == 303
    row = await ApprovalPolicy.get(id=1)
    assert (str(row.threshold), row.levels, row.timeout_minutes) == ("800.00", [["0", 1], ["5000", 2]], 60)
    page = await admin.get(BASE)
    assert "管理后台设置" in page.text and 'id="current-threshold">800.00<' in page.text
    assert "审批设置已保存" in page.text
    [row_audit] = await console.audit_rows("approval_policy")
    assert row_audit.reason == "门槛 800.00 元；层级 0=1,5000=2；超时 60 分钟"
    r = await console.post(admin, BASE + "/reset", {}, page=BASE)
    assert r.status_code == 303 and not await ApprovalPolicy.exists()
    assert len(await console.audit_rows("approval_policy")) == 2


async def test_bad_values_stay_on_the_form_with_their_errors(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE, {"threshold": "两百", "levels": "0=0", "timeout_minutes": "0"}, page=BASE)
    assert r.status_code == 422
    assert re.search(r'id="e-threshold">审批金额门槛应为不小于 0 的数字（元）<', r.text)
    assert re.search(r'id="e-levels">审批层级应写成 金额=层数', r.text)
    assert re.search(r'id="e-timeout_minutes">超时时间应为不小于 1 的整数（分钟）<', r.text)
    assert 'value="两百"' in r.text
    assert not await ApprovalPolicy.exists() and not await console.audit_rows()


async def test_leads_see_agents_do_not(console: Console) -> None:
    lead = await console.login(LEAD)
    r = await lead.get(BASE)
    assert r.status_code == 200 and 'name="threshold"' not in r.text
    r = await console.post(lead, BASE, {"threshold": "1", "levels": "0=1", "timeout_minutes": "5"}, page=BASE)
    assert r.status_code == 403 and "只有管理员可以修改审批设置" in r.text and not await ApprovalPolicy.exists()
    agent = await console.login(AGENT)
    r = await agent.get(BASE)
    assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text


async def test_admin_sets_the_wecom_templates_and_fallback_approvers(console: Console, settings: Settings) -> None:
    set_settings(console.h5.settings.with_overrides(workflow=replace(
        settings.workflow, approval_oa_templates=(("refund", "TPL-env"),), approval_fallback=("admin",))))
    admin = await console.login(ADMIN)
    page = (await admin.get(BASE)).text
    assert 'name="oa_templates"' in page and 'value="refund=TPL-env"' in page and 'value="admin"' in page
    assert "退款 → 模板 TPL-env" in page and 'id="current-fallback">管理员<' in page
    form = {"threshold": "200", "levels": "0=1", "timeout_minutes": "240", "oa_templates": "compensation=TPL-c",
            "fallback": "zhangwei，nobody"}
    r = await console.post(admin, BASE, form, page=BASE)
    assert r.status_code == 422
    assert re.search(r'id="e-fallback">找不到在职成员：nobody<', r.text) and 'value="zhangwei，nobody"' in r.text
    assert not await ApprovalPolicy.exists() and not await console.audit_rows()
    r = await console.post(admin, BASE, {**form, "fallback": "zhangwei, admin"}, page=BASE)
    assert r.status_code == 303
    row = await ApprovalPolicy.get(id=1)
    assert (row.oa_templates, row.fallback) == ([["compensation", "TPL-c"]], ["zhangwei", "admin"])
    [audit] = await console.audit_rows("approval_policy")
    assert audit.reason == ("门槛 200.00 元；层级 0=1；超时 240 分钟；企业微信审批模板 compensation=TPL-c；"
                            "兜底审批人 zhangwei,admin")
    page = (await admin.get(BASE)).text
    assert "补偿 → 模板 TPL-c" in page and "TPL-env" not in page
    assert 'id="current-fallback">张伟、管理员<' in page
    r = await console.post(admin, BASE, {**form, "oa_templates": "", "fallback": ""}, page=BASE)
    assert r.status_code == 303
    page = (await admin.get(BASE)).text
    assert "都在工单系统内审批" in page and 'id="current-fallback">全部管理员（管理员）<' in page
