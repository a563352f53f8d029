"""设置 · 路由规则: list, edit with the routing service's own validation, move/toggle/delete, the YAML editor, the
dry run following a change, audit rows, and who may do what."""

from __future__ import annotations

import re
from typing import Any

from app.security.models import AuditLog
from app.tickets import routing
from app.tickets.models import RoutingRuleSet
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/rules"


async def _document() -> dict[str, Any]:
    return routing.to_document(await routing.active_rules())


def _revision(html: str) -> str:
    match = re.search(r'name="revision" value="(\d+)"', html)
    assert match
    return match.group(1)


def _rule_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"name": "发票加急", "enabled": "1", "when.keywords": "发票、报销", "then.group": "财务组",
                            "then.priority": "high"}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


async def _post(console: Console, client: Any, path: str, data: dict[str, Any], page: str = BASE) -> Any:
    html = (await client.get(page)).text
    return await console.post(client, path, {"revision": _revision(html), **data}, page=page)


async def test_admin_sees_the_ordered_rules_with_conditions_and_actions(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE)
    assert r.status_code == 200
    names = [rule["name"] for rule in (await _document())["rules"]]
    positions = [r.text.index(f"<strong>{name}</strong>") for name in names]
    assert positions == sorted(positions)
    assert "包含关键词：发票" in r.text and "分配到 财务组" in r.text and "新建规则" in r.text
    assert 'aria-current="page">路由规则<' in r.text


async def test_lead_may_look_and_dry_run_but_not_change(console: Console) -> None:
    lead = await console.login(LEAD)
    r = await lead.get(BASE)
    assert r.status_code == 200 and "新建规则" not in r.text and "试运行" in r.text
    assert (await lead.get(BASE + "/new")).status_code == 403
    before = await _document()
    r = await _post(console, lead, BASE + "/new", _rule_form())
    assert r.status_code == 403 and "只有管理员可以修改路由规则和 SLA 配置" in r.text
    r = await _post(console, lead, BASE + "/1/delete", {})
    assert r.status_code == 403
    assert await _document() == before and not await AuditLog.filter(action="rules_save").exists()


async def test_agent_gets_the_chinese_403_page(console: Console) -> None:
    agent = await console.login(AGENT)
    for path in (BASE, BASE + "/new", BASE + "/yaml"):
        r = await agent.get(path)
        assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text


async def test_adding_a_rule_stores_it_last_and_writes_an_audit_row(console: Console) -> None:
    admin = await console.login(ADMIN)
    count = len((await _document())["rules"])
    r = await _post(console, admin, BASE + "/new", _rule_form(), page=BASE + "/new")
    assert r.status_code == 303 and r.headers["location"] == BASE
    doc = await _document()
    assert len(doc["rules"]) == count + 1
    assert doc["rules"][-1] == {"name": "发票加急", "when": {"keywords": ["发票", "报销"]},
                                "then": {"group": "财务组", "priority": "high"}, "stop": False}
    assert (await RoutingRuleSet.get(id=1)).revision == 1
    [row] = await console.audit_rows("rules_save")
    assert row.staff_id == console.h5.people[ADMIN].id and row.object_type == "routing_rules"
    assert row.reason == "新建规则「发票加急」"
    page = await admin.get(BASE)
    assert "规则「发票加急」已保存" in page.text


async def test_bad_input_shows_the_services_messages_next_to_the_fields_and_changes_nothing(
        console: Console) -> None:
    admin = await console.login(ADMIN)
    before = await _document()
    r = await _post(console, admin, BASE + "/new", _rule_form(**{
        "when.vip_min": "很多", "when.regex": "([", "then.group": "不存在的组"}), page=BASE + "/new")
    assert r.status_code == 422
    assert re.search(r'id="e-when.vip_min">应为不小于 0 的整数<', r.text)
    assert re.search(r'id="e-when.regex">正则表达式无效', r.text)
    assert 'value="很多"' in r.text  # the form comes back as typed
    assert await _document() == before
    assert not await RoutingRuleSet.exists() and not await AuditLog.filter(action="rules_save").exists()
    # a reference the parser accepts but the store refuses (check_references)
    r = await _post(console, admin, BASE + "/new", _rule_form(**{"then.assignee": "nobody"}), page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-then.assignee">成员 &#39;nobody&#39; 不存在或已停用<', r.text)
    r = await _post(console, admin, BASE + "/new", _rule_form(name=""), page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-name">应为非空字符串<', r.text)
    r = await _post(console, admin, BASE + "/new", _rule_form(name=before["rules"][0]["name"]), page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-name">名称重复<', r.text)
    assert await _document() == before and not await AuditLog.filter(action="rules_save").exists()


async def test_editing_moving_toggling_and_deleting(console: Console) -> None:
    admin = await console.login(ADMIN)
    doc = await _document()
    first, second = doc["rules"][0]["name"], doc["rules"][1]["name"]
    form = (await admin.get(BASE + "/2")).text
    assert f'value="{second}"' in form
    r = await _post(console, admin, BASE + "/2", _rule_form(name=second, **{"when.keywords": "退货"}), page=BASE + "/2")
    assert r.status_code == 303
    edited = (await _document())["rules"][1]
    assert edited["when"] == {"keywords": ["退货"]} and edited["name"] == second
    assert (await _post(console, admin, BASE + "/2/up", {})).status_code == 303
    assert [x["name"] for x in (await _document())["rules"][:2]] == [second, first]
    await _post(console, admin, BASE + "/1/toggle", {})
    assert (await _document())["rules"][0]["enabled"] is False
    await _post(console, admin, BASE + "/1/toggle", {})
    assert "enabled" not in (await _document())["rules"][0]
    await _post(console, admin, BASE + "/1/delete", {})
    assert second not in [x["name"] for x in (await _document())["rules"]]
    reasons = [row.reason for row in await console.audit_rows("rules_save")]
    assert reasons == [f"修改规则「{second}」", f"上移规则「{second}」", f"停用规则「{second}」",
                       f"启用规则「{second}」", f"删除规则「{second}」"]


async def test_a_stale_page_cannot_overwrite_a_newer_change(console: Console) -> None:
    admin = await console.login(ADMIN)
    html = (await admin.get(BASE)).text
    stale = _revision(html)
    assert (await _post(console, admin, BASE + "/1/delete", {})).status_code == 303
    before = await _document()
    r = await console.post(admin, BASE + "/1/delete", {"revision": stale}, page=BASE)
    assert r.status_code == 409 and "已被他人修改" in r.text
    assert await _document() == before and len(await console.audit_rows("rules_save")) == 1


async def test_unknown_rule_is_a_404_page(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE + "/999")
    assert r.status_code == 404 and "规则不存在" in r.text


async def test_default_group_and_yaml_editor(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await _post(console, admin, BASE + "/default", {"default_group": "售后组"})
    assert r.status_code == 303 and (await _document())["default_group"] == "售后组"
    page = await admin.get(BASE + "/yaml")
    assert "default_group: 售后组" in page.text
    r = await _post(console, admin, BASE + "/yaml", {"yaml": "rules: [{name: x}]"}, page=BASE + "/yaml")
    assert r.status_code == 422 and "至少需要一个动作" in r.text
    text = "default_group: 财务组\nrules:\n- name: 全部给财务\n  then: {group: 财务组}\n"
    r = await _post(console, admin, BASE + "/yaml", {"yaml": text}, page=BASE + "/yaml")
    assert r.status_code == 303
    assert await _document() == {"default_group": "财务组", "rules": [
        {"name": "全部给财务", "when": {}, "then": {"group": "财务组"}, "stop": False}]}
    assert [row.reason for row in await console.audit_rows("rules_save")] == ["默认技能组改为「售后组」",
                                                                              "以 YAML 修改全部规则"]


async def test_the_dry_run_follows_a_rule_change(console: Console) -> None:
    admin = await console.login(ADMIN)
    query = {"dry": "1", "text": "我要开发票", "channel": "wechat_mp"}
    r = await admin.get(BASE, params=query)
    assert r.status_code == 200
    assert re.search(r'id="dry-group">财务组<', r.text)
    index = next(i for i, rule in enumerate((await _document())["rules"], start=1) if rule["name"] == "发票财务")
    await _post(console, admin, f"{BASE}/{index}", _rule_form(name="发票财务", **{
        "when.keywords": "发票", "then.group": "售后组", "then.priority": "urgent"}), page=f"{BASE}/{index}")
    r = await admin.get(BASE, params=query)
    assert re.search(r'id="dry-group">售后组<', r.text) and re.search(r'id="dry-priority">紧急<', r.text)
    assert "发票财务" in r.text


async def test_a_bad_dry_run_sample_is_a_422_with_the_field_error(console: Console) -> None:
    lead = await console.login(LEAD)
    r = await lead.get(BASE, params={"dry": "1", "text": "x", "vip_level": "abc", "at": "昨天"})
    assert r.status_code == 422
    assert re.search(r'id="e-vip_level">VIP 等级应为不小于 0 的整数<', r.text)
    assert re.search(r'id="e-at">时间格式应为', r.text)
