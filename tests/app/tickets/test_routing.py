"""Routing rules: conditions, actions, stop, validation, YAML round trip, and the demo rules at intake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.errors import ValidationFailed
from app.tickets import routing
from app.tickets.calendar import Calendar
from app.tickets.routing import Facts, evaluate, parse_document, parse_yaml, to_document, to_yaml
from app.timeutil import CHINA

DEMO = Path(routing.__file__).with_name("demo_rules.yaml").read_text(encoding="utf-8")
CAL = Calendar.build()
MONDAY_10 = datetime(2025, 9, 22, 10, 0, tzinfo=CHINA).astimezone(UTC)
MONDAY_20 = datetime(2025, 9, 22, 20, 0, tzinfo=CHINA).astimezone(UTC)


def run(rules: routing.RuleSet, **facts: object) -> routing.Decision:
    return evaluate(rules, Facts(**{"now": MONDAY_10, **facts}), calendars=lambda _: CAL)  # type: ignore[arg-type]


def test_demo_rules_route_invoice_tech_vip_and_after_hours() -> None:
    rules = parse_yaml(DEMO)
    d = run(rules, text="请帮我开一张发票", channel="wechat_mp")
    assert (d.group, d.priority, d.matched) == ("财务组", "normal", ["发票财务"])
    d = run(rules, text="App 登录一直报错 500")
    assert (d.group, d.matched) == ("技术支持组", ["技术故障"])
    d = run(rules, text="我要投诉", category="投诉", vip_level=1)
    assert (d.group, d.priority, d.tags) == ("售后组", "urgent", ["VIP"])  # high, then VIP one step up
    d = run(rules, text="你好", now=MONDAY_20)
    assert d.group == "一线客服组"
    assert d.after_hours_until == datetime(2025, 9, 23, 9, 0, tzinfo=CHINA).astimezone(UTC)
    assert d.steps[-1] == {
        "rule": "非工作时间",
        "after_hours_until": "2025-09-23T01:00:00+00:00",
        "auto_reply": "您好，现在是非工作时间，您的工单  已登记，"
                      "一线客服组将于9月23日（周二）09:00开始处理，请耐心等待。",
        "stop": True,
    }


def test_conditions_each_narrow_the_match() -> None:
    rules = parse_document({"rules": [
        {"name": "r", "when": {"channel": ["wecom_kf"], "regex": r"订单\d+", "fields": {"order_no": "*"},
                               "customer_tags": ["老客户"], "bot_handoff": True, "repeat_within_days": 7},
         "then": {"tags": ["hit"]}},
    ]})
    base: dict[str, Any] = {"channel": "wecom_kf", "text": "订单123 没到", "fields": {"order_no": "123"},
            "customer_tags": ("老客户",), "bot_handoff": True,
            "previous_tickets": (datetime(2025, 9, 20, tzinfo=UTC),)}
    assert run(rules, **base).matched == ["r"]
    changes: list[dict[str, Any]] = [{"channel": "wechat_mp"}, {"text": "订单 没到"}, {"fields": {}},
                                     {"customer_tags": ()}, {"bot_handoff": False},
                                     {"previous_tickets": (datetime(2025, 9, 1, tzinfo=UTC),)}]
    for change in changes:
        assert run(rules, **{**base, **change}).matched == [], change


def test_stop_ends_evaluation_and_later_rules_override() -> None:
    rules = parse_document({"default_group": "A", "rules": [
        {"name": "one", "when": {"keywords": ["x"]}, "then": {"group": "B", "priority": "low"}},
        {"name": "two", "when": {"keywords": ["x"]}, "then": {"group": "C"}, "stop": True},
        {"name": "three", "when": {}, "then": {"group": "D"}},
    ]})
    d = run(rules, text="x")
    assert (d.group, d.priority, d.matched) == ("C", "low", ["one", "two"])
    assert run(rules, text="y").group == "D"


def test_disabled_rule_is_skipped() -> None:
    rules = parse_document({"rules": [{"name": "off", "enabled": False, "when": {}, "then": {"group": "X"}}]})
    assert run(rules, text="").matched == []


def test_invalid_documents_list_every_problem() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_document({"rules": [
            {"name": "a", "when": {"regex": "(", "colour": "red"}, "then": {"priority": "asap"}},
            {"name": "a", "when": {"vip_min": -1}, "then": {}},
            {"when": {}},
        ]})
    assert info.value.code == "invalid_rules"
    errors = info.value.details["errors"]
    assert "规则 'a'.when.colour: 未知的条件，可用: channel, keywords, regex, category, fields, vip_min, " \
           "customer_tags, business_hours, bot_handoff, repeat_within_days" in errors
    assert any(e.startswith("规则 'a'.when.regex: 正则表达式无效") for e in errors)
    assert "规则 'a'.then.priority: 应为 low, normal, high, urgent、+1 或 -1，收到 'asap'" in errors
    assert "规则 'a'.when.vip_min: 应为不小于 0 的整数" in errors
    assert "规则 'a'.then: 至少需要一个动作" in errors
    assert "规则 'a': 名称重复" in errors
    assert "rules[3].name: 必填" in errors
    with pytest.raises(ValidationFailed) as info:
        parse_yaml("rules: [unclosed")
    assert info.value.code == "invalid_yaml"


def test_yaml_import_export_import_is_unchanged() -> None:
    first = parse_yaml(DEMO)
    exported = to_yaml(first)
    second = parse_yaml(exported)
    assert second == first
    assert to_yaml(second) == exported
    assert to_document(second)["rules"][0] == {
        "name": "投诉优先", "when": {"category": ["投诉"]}, "then": {"group": "售后组", "priority": "high"},
        "stop": False,
    }


def test_fifty_rules_evaluate_quickly_enough_to_count() -> None:
    # not a timing assertion: the figure lives in bench/sla.py; this checks a 50-rule set evaluates at all
    rules = parse_document({"rules": [{"name": f"r{i}", "when": {"keywords": [f"<词{i}>"]}, "then": {"tags": [str(i)]}}
                                      for i in range(50)]})
    assert run(rules, text="<词7> 和 <词42>").tags == ["7", "42"]


# ---- with the database ----------------------------------------------------------------------------------------


async def test_store_checks_references_and_takes_effect(db: None) -> None:
    from app.seed import ensure_org

    await ensure_org()
    bad = parse_document({"rules": [{"name": "x", "when": {}, "then": {"group": "不存在组", "assignee": "nobody"}}]})
    with pytest.raises(ValidationFailed) as info:
        await routing.store(ruleset=bad)
    assert info.value.details["errors"] == ["规则 'x'.then.group: 技能组 '不存在组' 不存在",
                                            "规则 'x'.then.assignee: 成员 'nobody' 不存在或已停用"]
    good = parse_document({"default_group": "财务组", "rules": []})
    assert await routing.store(ruleset=good) == 1
    decision = await routing.route(category="", text="你好", channel="wechat_mp")
    assert decision.group == "财务组" and decision.group_id is not None
    assert await routing.store(ruleset=parse_yaml(DEMO)) == 2
    assert (await routing.active_rules()) == parse_yaml(DEMO)


async def test_vip_customer_and_repeat_contact_from_the_database(db: None) -> None:
    from app.customers.models import Customer
    from app.security.scope import SYSTEM
    from app.seed import ensure_org
    from app.tickets import service
    from app.timeutil import set_clock

    await ensure_org()
    await routing.store(ruleset=parse_yaml(DEMO))
    set_clock(lambda: MONDAY_10)
    try:
        customer = await Customer.create(name="VIP 客户", vip_level=2, tags=["老客户"])
        first = await routing.route(category="", text="发票抬头写错了", channel="wechat_mp", customer=customer)
        assert (first.group, first.priority, first.tags) == ("财务组", "high", ["VIP"])
        await service.create(actor=SYSTEM, customer_id=customer.id, subject="发票")
        again = await routing.route(category="", text="发票还没收到", channel="wechat_mp", customer=customer,
                                    reason="human_request")
        assert again.tags == ["VIP", "重复来访", "转人工"]
    finally:
        set_clock(None)


async def test_demo_seed_loads_rules_policies_and_groups(db: None) -> None:
    from app.seed import seed_demo
    from app.tickets import sla_config

    result = await seed_demo()
    assert result["created"] is True
    assert (await routing.active_rules()) == parse_yaml(DEMO)
    exported = await sla_config.export()
    assert [p["name"] for p in exported["policies"]] == ["紧急", "高", "VIP", "标准"]
    assert exported["groups"]["技术支持组"] == {"calendar": "标准工作日", "assignment": "skills"}
    # export -> import -> export is unchanged
    await sla_config.store(document=sla_config.parse_yaml(sla_config.to_yaml(exported)))
    assert await sla_config.export() == exported
    from app.tickets.models import Ticket

    assert all(t.sla_policy_id is not None for t in await Ticket.all())  # type: ignore[attr-defined]


async def test_rules_api_put_validate_export_and_dry_run(api: object) -> None:
    from tests import factories

    client: Any = api
    o = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(o['people']['admin'])}"}
    agent = {"Authorization": f"Bearer {await factories.token(o['people']['agent'])}"}
    doc = {"default_group": "客服组", "rules": [
        {"name": "技术", "when": {"keywords": ["报错"]}, "then": {"group": "技术组", "priority": "+1"}, "stop": True}]}
    r = await client.put("/api/v1/routing/rules", json=doc, headers=agent)
    assert r.status_code == 403
    r = await client.put("/api/v1/routing/rules", json={"rules": [{"name": "x", "when": {}, "then": {"group": "无"}}]},
                         headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"] == ["规则 'x'.then.group: 技能组 '无' 不存在"]
    r = await client.put("/api/v1/routing/rules", json=doc, headers=admin)
    assert r.status_code == 200 and r.json()["revision"] == 1
    r = await client.get("/api/v1/routing/rules?format=yaml", headers=agent)
    assert parse_yaml(r.text) == parse_document(doc)
    r = await client.put("/api/v1/routing/rules", content=r.text.encode(), headers={
        **admin, "Content-Type": "application/yaml"})
    assert r.json()["revision"] == 2 and r.json()["document"] == to_document(parse_document(doc))
    r = await client.post("/api/v1/routing/dry-run", json={"text": "App 一直报错", "vip_level": 1}, headers=agent)
    assert r.json() == {
        "matched": ["技术"],
        "steps": [{"rule": "技术", "group": "技术组", "priority": "high", "stop": True}],
        "result": {"group": "技术组", "group_id": o["groups"]["tech"].id, "priority": "high", "category": None,
                   "tags": [], "assignee": None, "sla_policy": None, "auto_reply": None, "after_hours_until": None},
    }


async def test_group_names_resolve_from_a_cache_that_follows_the_rules(db: None) -> None:
    from app.seed import ensure_org
    from app.staff.models import SkillGroup
    from tests.sqlcount import count_statements

    await ensure_org()
    await routing.store(ruleset=parse_document({"default_group": "财务组", "rules": []}))
    finance = await SkillGroup.get(name="财务组")
    first = await routing.route(category="", text="你好", channel="wechat_mp")
    assert (first.group, first.group_id) == ("财务组", finance.id)
    with count_statements() as statements:
        again = await routing.route(category="", text="你好", channel="wechat_mp")
    assert again.group_id == finance.id
    assert not any("skill_group" in s for s in statements), statements
    # a rename shows once the cache goes (as a stored rule set does: invalidate here, CACHE_SECONDS elsewhere)
    await SkillGroup.filter(id=finance.id).update(name="财务二组")
    routing.invalidate()
    gone = await routing.route(category="", text="你好", channel="wechat_mp")
    assert (gone.group, gone.group_id) == ("财务组", None)
    assert await routing.group_ids() == {g.name: g.id for g in await SkillGroup.all()}


def test_the_rules_file_is_parsed_again_only_when_its_text_changed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real = routing.parse_yaml

    def counting(text: str) -> routing.RuleSet:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(routing, "parse_yaml", counting)
    rules = tmp_path / "routing.yaml"
    rules.write_text(DEMO, encoding="utf-8")
    first = routing.load_file(rules)
    # read again every CACHE_SECONDS in every process: the same text is the same rule set, not a second parse
    assert routing.load_file(rules) is first
    assert len(parsed) == 1
    rules.write_text(DEMO.replace("发票", "开票"), encoding="utf-8")
    changed = routing.load_file(rules)
    assert len(parsed) == 2
    assert changed == parse_yaml(DEMO.replace("发票", "开票")) != first
    assert routing.load_file(rules) is changed
