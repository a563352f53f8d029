"""Routing: ordered rules turn a new ticket's facts into a group, priority, category, tags, assignee, SLA policy,
an auto-reply, or a place in the after-hours queue.

A rule matches when every condition it names holds (`when`); its actions (`then`) apply in order, later rules
overriding earlier ones, and `stop: true` ends the evaluation. The rule set in force is the one stored in the
database (`gongdan rules import`, or the API); without one, the bundled routing.yaml (or ROUTING_RULES_FILE).

Conditions: channel (one of), keywords (any of, in the text), regex (searched in the text), category (one of),
fields (extracted field -> value, list of values, or "*" for present), vip_min, customer_tags (any of),
business_hours (true/false, by the calendar of the group chosen so far), bot_handoff (true/false),
repeat_within_days (the customer opened another ticket within N days).
Actions: group, priority (low|normal|high|urgent, or +1/-1 for a step up/down), category, tags (added), assignee
(WeCom userid), sla_policy (name), auto_reply (text; {next_open}, {group} and {number} are filled in),
after_hours (true: outside the group's hours the ticket waits unassigned until the group opens).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from app.db import dialect_sql
from app.errors import ConfigError, ValidationFailed
from app.logs import get_logger
from app.staff.models import SkillGroup, Staff
from app.tickets import calendar as bizcal
from app.tickets.models import RoutingRuleSet, SlaPolicy, Ticket
from app.timeutil import utcnow
from app.ttl import Expiring

if TYPE_CHECKING:
    from app.customers.models import Customer

log = get_logger(__name__)

DEFAULT_FILE = Path(__file__).with_name("routing.yaml")
PRIORITIES = ("low", "normal", "high", "urgent")
CONDITION_KEYS = ("channel", "keywords", "regex", "category", "fields", "vip_min", "customer_tags", "business_hours",
                  "bot_handoff", "repeat_within_days")
ACTION_KEYS = ("group", "priority", "category", "tags", "assignee", "sla_policy", "auto_reply", "after_hours")
RULE_KEYS = ("name", "enabled", "when", "then", "stop")
#: conversion reasons that mean a bot (or the menu) handed the customer over to people
HANDOFF_REASONS = frozenset({"human_request", "bot_handoff"})


# ---- the rule model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conditions:
    channel: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    category: tuple[str, ...] = ()
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    vip_min: int | None = None
    customer_tags: tuple[str, ...] = ()
    business_hours: bool | None = None
    bot_handoff: bool | None = None
    repeat_within_days: int | None = None


@dataclass(frozen=True)
class Actions:
    group: str | None = None
    priority: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    sla_policy: str | None = None
    auto_reply: str | None = None
    after_hours: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    when: Conditions = field(default_factory=Conditions)
    then: Actions = field(default_factory=Actions)
    stop: bool = False
    enabled: bool = True
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RuleSet:
    default_group: str | None = None
    rules: tuple[Rule, ...] = ()

    @property
    def repeat_window_days(self) -> int:
        """The longest repeat-contact window any rule asks about."""
        return max((r.when.repeat_within_days or 0 for r in self.rules), default=0)

    def group_names(self) -> set[str]:
        """Every group the rule set names."""
        names = {r.then.group for r in self.rules if r.then.group}
        if self.default_group:
            names.add(self.default_group)
        return {n for n in names if n}


# ---- parsing and exporting ----------------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _strings(value: Any, where: str, errors: _Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        errors.add(where, "应为字符串列表")
        return ()
    return tuple(str(v) for v in value)


def _optional_bool(value: Any, where: str, errors: _Errors) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    errors.add(where, "应为 true 或 false")
    return None


def _optional_int(value: Any, where: str, errors: _Errors, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors.add(where, f"应为不小于 {minimum} 的整数")
        return None
    return value


def _optional_str(value: Any, where: str, errors: _Errors) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(where, "应为非空字符串")
        return None
    return value.strip()


def _parse_rule(raw: Any, where: str, errors: _Errors) -> Rule | None:
    if not isinstance(raw, dict):
        errors.add(where, "规则应为一个映射（name / when / then / stop）")
        return None
    for key in raw:
        if key not in RULE_KEYS:
            errors.add(f"{where}.{key}", f"未知的键，可用: {', '.join(RULE_KEYS)}")
    if raw.get("name") is None:
        errors.add(f"{where}.name", "必填")
        return None
    name = _optional_str(raw.get("name"), f"{where}.name", errors)
    if name is None:
        return None
    where = f"规则 {name!r}"
    when_raw = raw.get("when") or {}
    then_raw = raw.get("then") or {}
    if not isinstance(when_raw, dict) or not isinstance(then_raw, dict):
        errors.add(where, "when 和 then 应为映射")
        return None
    for key in when_raw:
        if key not in CONDITION_KEYS:
            errors.add(f"{where}.when.{key}", f"未知的条件，可用: {', '.join(CONDITION_KEYS)}")
    for key in then_raw:
        if key not in ACTION_KEYS:
            errors.add(f"{where}.then.{key}", f"未知的动作，可用: {', '.join(ACTION_KEYS)}")
    if not then_raw:
        errors.add(f"{where}.then", "至少需要一个动作")

    regex = _optional_str(when_raw.get("regex"), f"{where}.when.regex", errors)
    pattern = None
    if regex is not None:
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            errors.add(f"{where}.when.regex", f"正则表达式无效: {exc}")
    fields_raw = when_raw.get("fields") or {}
    field_conds: list[tuple[str, tuple[str, ...]]] = []
    if not isinstance(fields_raw, dict):
        errors.add(f"{where}.when.fields", "应为 字段名: 值 的映射")
    else:
        for fname, fvalue in sorted(fields_raw.items()):
            field_conds.append((str(fname), _strings(fvalue, f"{where}.when.fields.{fname}", errors)))
    when = Conditions(
        channel=_strings(when_raw.get("channel"), f"{where}.when.channel", errors),
        keywords=_strings(when_raw.get("keywords"), f"{where}.when.keywords", errors),
        regex=regex,
        category=_strings(when_raw.get("category"), f"{where}.when.category", errors),
        fields=tuple(field_conds),
        vip_min=_optional_int(when_raw.get("vip_min"), f"{where}.when.vip_min", errors),
        customer_tags=_strings(when_raw.get("customer_tags"), f"{where}.when.customer_tags", errors),
        business_hours=_optional_bool(when_raw.get("business_hours"), f"{where}.when.business_hours", errors),
        bot_handoff=_optional_bool(when_raw.get("bot_handoff"), f"{where}.when.bot_handoff", errors),
        repeat_within_days=_optional_int(when_raw.get("repeat_within_days"), f"{where}.when.repeat_within_days",
                                         errors, minimum=1),
    )
    priority = then_raw.get("priority")
    if priority is not None:
        priority = str(priority)
        if priority not in (*PRIORITIES, "+1", "-1"):
            errors.add(f"{where}.then.priority", f"应为 {', '.join(PRIORITIES)}、+1 或 -1，收到 {priority!r}")
    after_hours = then_raw.get("after_hours", False)
    if not isinstance(after_hours, bool):
        errors.add(f"{where}.then.after_hours", "应为 true 或 false")
        after_hours = False
    then = Actions(
        group=_optional_str(then_raw.get("group"), f"{where}.then.group", errors),
        priority=priority,
        category=_optional_str(then_raw.get("category"), f"{where}.then.category", errors),
        tags=_strings(then_raw.get("tags"), f"{where}.then.tags", errors),
        assignee=_optional_str(then_raw.get("assignee"), f"{where}.then.assignee", errors),
        sla_policy=_optional_str(then_raw.get("sla_policy"), f"{where}.then.sla_policy", errors),
        auto_reply=_optional_str(then_raw.get("auto_reply"), f"{where}.then.auto_reply", errors),
        after_hours=after_hours,
    )
    stop = _optional_bool(raw.get("stop"), f"{where}.stop", errors)
    enabled = _optional_bool(raw.get("enabled"), f"{where}.enabled", errors)
    return Rule(name=name, when=when, then=then, stop=bool(stop), enabled=enabled is not False, pattern=pattern)


def parse_document(data: Any) -> RuleSet:
    """Validate a routing document; every problem is reported at once (ValidationFailed, details.errors)."""
    errors = _Errors()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("路由规则文档应为一个映射（default_group / rules）", code="invalid_rules",
                               details={"errors": ["文档: 应为映射"]})
    for key in data:
        if key not in ("default_group", "rules"):
            errors.add(str(key), "未知的键，可用: default_group, rules")
    default_group = _optional_str(data.get("default_group"), "default_group", errors)
    raw_rules = data.get("rules") or []
    rules: list[Rule] = []
    if not isinstance(raw_rules, list):
        errors.add("rules", "应为规则列表")
        raw_rules = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, f"rules[{i + 1}]", errors)
        if rule is None:
            continue
        if rule.name in seen:
            errors.add(f"规则 {rule.name!r}", "名称重复")
        seen.add(rule.name)
        rules.append(rule)
    if errors.items:
        raise ValidationFailed(f"路由规则有 {len(errors.items)} 处错误：{errors.items[0]}", code="invalid_rules",
                               details={"errors": errors.items})
    return RuleSet(default_group=default_group, rules=tuple(rules))


def parse_yaml(text: str) -> RuleSet:
    """Parse and validate a YAML routing document."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"YAML 格式错误: {exc}", code="invalid_yaml",
                               details={"errors": [f"YAML: {exc}"]}) from exc
    return parse_document(data)


def _rule_document(rule: Rule) -> dict[str, Any]:
    w, t = rule.when, rule.then
    when: dict[str, Any] = {}
    for key in ("channel", "keywords", "category", "customer_tags"):
        if getattr(w, key):
            when[key] = list(getattr(w, key))
    if w.regex is not None:
        when["regex"] = w.regex
    if w.fields:
        when["fields"] = {k: list(v) for k, v in w.fields}
    for key in ("vip_min", "business_hours", "bot_handoff", "repeat_within_days"):
        if getattr(w, key) is not None:
            when[key] = getattr(w, key)
    then: dict[str, Any] = {}
    for key in ("group", "priority", "category", "assignee", "sla_policy", "auto_reply"):
        if getattr(t, key) is not None:
            then[key] = getattr(t, key)
    if t.tags:
        then["tags"] = list(t.tags)
    if t.after_hours:
        then["after_hours"] = True
    out: dict[str, Any] = {"name": rule.name}
    if not rule.enabled:
        out["enabled"] = False
    out["when"] = when
    out["then"] = then
    out["stop"] = rule.stop
    return out


def to_document(ruleset: RuleSet) -> dict[str, Any]:
    """The canonical document of a rule set (what export writes; parse_document(to_document(r)) == r)."""
    return {"default_group": ruleset.default_group, "rules": [_rule_document(r) for r in ruleset.rules]}


def to_yaml(ruleset: RuleSet) -> str:
    """The canonical YAML of a rule set."""
    header = "# Gongdan routing rules (gongdan rules export). Edit, then: gongdan rules import <file>\n"
    return header + str(yaml.safe_dump(to_document(ruleset), allow_unicode=True, sort_keys=False, width=120))


# ---- evaluation -------------------------------------------------------------------------------------------------


@dataclass
class Facts:
    """What routing knows about a new ticket."""

    channel: str = ""
    text: str = ""
    category: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    vip_level: int = 0
    customer_tags: tuple[str, ...] = ()
    now: datetime = field(default_factory=utcnow)
    bot_handoff: bool = False
    #: when the customer's earlier tickets were opened (newest first), for repeat_within_days
    previous_tickets: tuple[datetime, ...] = ()
    priority: str = "normal"


@dataclass
class Decision:
    group_id: int | None
    priority: str
    matched: list[str]
    group: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    assignee: str | None = None
    assignee_id: int | None = None
    sla_policy: str | None = None
    sla_policy_id: int | None = None
    auto_reply: str | None = None
    #: set when the ticket waits in the after-hours queue: when its group opens
    after_hours_until: datetime | None = None
    #: per matched rule, what it changed (the dry run shows this)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The decision as the dry-run endpoint returns it."""
        return {
            "matched": self.matched,
            "steps": self.steps,
            "result": {
                "group": self.group, "group_id": self.group_id, "priority": self.priority, "category": self.category,
                "tags": self.tags, "assignee": self.assignee, "sla_policy": self.sla_policy,
                "auto_reply": self.auto_reply,
                "after_hours_until": self.after_hours_until.isoformat() if self.after_hours_until else None,
            },
        }


def _step_priority(current: str, action: str) -> str:
    if action in PRIORITIES:
        return action
    i = PRIORITIES.index(current) if current in PRIORITIES else 1
    i = min(len(PRIORITIES) - 1, i + 1) if action == "+1" else max(0, i - 1)
    return PRIORITIES[i]


def _field_matches(value: Any, allowed: tuple[str, ...]) -> bool:
    if value in (None, "", [], {}):
        return False
    if not allowed or "*" in allowed:
        return True
    return str(value) in allowed


def matches(rule: Rule, facts: Facts, *, calendar: bizcal.Calendar) -> bool:
    """Whether every condition of the rule holds (cheap checks first)."""
    w = rule.when
    if w.channel and facts.channel not in w.channel:
        return False
    if w.category and facts.category not in w.category:
        return False
    if w.vip_min is not None and facts.vip_level < w.vip_min:
        return False
    if w.bot_handoff is not None and facts.bot_handoff != w.bot_handoff:
        return False
    if w.customer_tags and not any(t in facts.customer_tags for t in w.customer_tags):
        return False
    if w.keywords and not any(k in facts.text for k in w.keywords):
        return False
    if rule.pattern is not None and rule.pattern.search(facts.text) is None:
        return False
    for name, allowed in w.fields:
        if not _field_matches(facts.fields.get(name), allowed):
            return False
    if w.repeat_within_days is not None:
        since = facts.now - timedelta(days=w.repeat_within_days)
        if not any(t >= since for t in facts.previous_tickets):
            return False
    return w.business_hours is None or calendar.is_open(facts.now) == w.business_hours


def evaluate(ruleset: RuleSet, facts: Facts, *, calendars: Callable[[str | None], bizcal.Calendar]) -> Decision:
    """Run the rules over the facts (pure: names are resolved to ids by `route`)."""
    d = Decision(group_id=None, priority=facts.priority, matched=[], group=ruleset.default_group)
    for rule in ruleset.rules:
        if not rule.enabled or not matches(rule, facts, calendar=calendars(d.group)):
            continue
        t = rule.then
        step: dict[str, Any] = {"rule": rule.name}
        if t.group:
            d.group = step["group"] = t.group
        if t.priority:
            d.priority = step["priority"] = _step_priority(d.priority, t.priority)
        if t.category:
            d.category = step["category"] = t.category
        if t.tags:
            d.tags.extend(x for x in t.tags if x not in d.tags)
            step["tags"] = list(t.tags)
        if t.assignee:
            d.assignee = step["assignee"] = t.assignee
        if t.sla_policy:
            d.sla_policy = step["sla_policy"] = t.sla_policy
        if t.after_hours:
            cal = calendars(d.group)
            if not cal.is_open(facts.now):
                d.after_hours_until = cal.next_open(facts.now)
                step["after_hours_until"] = d.after_hours_until.isoformat()
        if t.auto_reply:
            d.auto_reply = t.auto_reply
            step["auto_reply"] = render_reply(t.auto_reply, calendar=calendars(d.group), now=facts.now,
                                              group=d.group)
        if rule.stop:
            step["stop"] = True
        d.matched.append(rule.name)
        d.steps.append(step)
        if rule.stop:
            break
    return d


def render_reply(template: str, *, calendar: bizcal.Calendar, now: datetime, group: str | None,
                 number: str = "") -> str:
    """Fill {next_open}, {group} and {number} into an auto-reply."""
    values = {"next_open": calendar.describe(calendar.next_open(now)), "group": group or "", "number": number}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        # a stray brace in a hand-written reply must not block intake: send it as written
        return template


# ---- the rule set in force ------------------------------------------------------------------------------------

CACHE_SECONDS = 5.0
#: the rule set in force, read again after CACHE_SECONDS
_rules: Expiring[RuleSet] = Expiring(CACHE_SECONDS)
#: (stored revision, its rule set): a revision unchanged since the last read is not parsed again
_parsed: tuple[int, RuleSet] | None = None
#: (the file's text, its rule set): the file is read again every CACHE_SECONDS but parsed only when it changed
#: (PyYAML's pure-Python parse of the bundled file costs tens of milliseconds)
_file_parsed: tuple[str, RuleSet] | None = None


#: skill group name -> id: the names rules use, resolved once per CACHE_SECONDS like the rules
_groups: Expiring[dict[str, int]] = Expiring(CACHE_SECONDS)


def invalidate() -> None:
    """Forget the cached rule set and group names (after an import; other processes refresh within
    CACHE_SECONDS)."""
    global _parsed
    _parsed = None
    _rules.clear()
    _groups.clear()


async def group_ids() -> dict[str, int]:
    """Skill group ids by name (cached as long as the rule set; a group renamed or created shows within
    CACHE_SECONDS, as a stored rule set does)."""
    names = _groups.get()
    if names is not None:
        return names
    return _groups.put({str(name): int(gid) for gid, name in await SkillGroup.all().values_list("id", "name")})


def load_file(path: Path | None = None) -> RuleSet:
    """The rule set of a YAML file (ROUTING_RULES_FILE, else the bundled routing.yaml)."""
    global _file_parsed
    path = path or Path(os.environ.get("ROUTING_RULES_FILE") or DEFAULT_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"ROUTING_RULES_FILE could not be read: {exc}") from exc
    if _file_parsed is not None and _file_parsed[0] == text:
        return _file_parsed[1]
    try:
        ruleset = parse_yaml(text)
    except ValidationFailed as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc
    _file_parsed = (text, ruleset)
    return ruleset


async def active_rules() -> RuleSet:
    """The rule set in force: the stored one, else the file."""
    global _parsed
    cached = _rules.get()
    if cached is not None:
        return cached
    row = await RoutingRuleSet.filter(id=1).first()
    if row is None:
        return _rules.put(load_file())
    if _parsed is None or _parsed[0] != row.revision:
        _parsed = (row.revision, parse_document(row.document))
    return _rules.put(_parsed[1])


# kept for callers of the first engine
async def load_rules() -> RuleSet:
    """The routing rules in force."""
    return await active_rules()


async def check_references(ruleset: RuleSet) -> None:
    """Refuse a rule set naming groups, staff or SLA policies that do not exist."""
    errors: list[str] = []
    groups = {str(x) for x in await SkillGroup.all().values_list("name", flat=True)}
    staff = {str(x) for x in await Staff.filter(status="active").values_list("userid", flat=True)}
    policies = {str(x) for x in await SlaPolicy.all().values_list("name", flat=True)}
    if ruleset.default_group and ruleset.default_group not in groups:
        errors.append(f"default_group: 技能组 {ruleset.default_group!r} 不存在")
    for r in ruleset.rules:
        if r.then.group and r.then.group not in groups:
            errors.append(f"规则 {r.name!r}.then.group: 技能组 {r.then.group!r} 不存在")
        if r.then.assignee and r.then.assignee not in staff:
            errors.append(f"规则 {r.name!r}.then.assignee: 成员 {r.then.assignee!r} 不存在或已停用")
        if r.then.sla_policy and r.then.sla_policy not in policies:
            errors.append(f"规则 {r.name!r}.then.sla_policy: SLA 策略 {r.then.sla_policy!r} 不存在")
    if errors:
        raise ValidationFailed(f"路由规则有 {len(errors)} 处错误：{errors[0]}", code="invalid_rules",
                               details={"errors": errors})


async def store(*, ruleset: RuleSet) -> int:
    """Make a validated rule set the one in force; returns its revision."""
    await check_references(ruleset)
    document = to_document(ruleset)
    row = await RoutingRuleSet.filter(id=1).first()
    if row is None:
        await RoutingRuleSet.create(id=1, document=document, revision=1)
        revision = 1
    else:
        revision = row.revision + 1
        await RoutingRuleSet.filter(id=1).update(document=document, revision=revision, updated_at=utcnow())
    invalidate()
    log.info("routing.rules_stored", revision=revision, rules=len(ruleset.rules))
    return revision


async def _calendars(ruleset: RuleSet) -> Callable[[str | None], bizcal.Calendar]:
    by_name: dict[str | None, bizcal.Calendar] = {None: await bizcal.default_calendar()}
    needs_hours = any(r.when.business_hours is not None or r.then.after_hours or r.then.auto_reply
                      for r in ruleset.rules)
    if needs_hours:
        ids = await group_ids()
        for name in ruleset.group_names():
            if name in ids:
                by_name[name] = await bizcal.for_group(group_id=ids[name])
    return lambda name: by_name.get(name) or by_name[None]


#: every new ticket asks for the customer's recent ones (repeat contacts): SQL written once (`app.db.dialect_sql`),
#: as tortoise's query building cost more CPU than the round trip
_RECENT = "SELECT {q}created_at{q} FROM {q}ticket{q} WHERE {q}customer_id{q}={m} AND {q}created_at{q}>={m}"


async def facts_for(*, category: str, text: str, channel: str, customer: Customer | None = None,
                    fields: Mapping[str, Any] | None = None, reason: str | None = None,
                    priority: str = "normal", now: datetime | None = None, repeat_window_days: int = 0,
                    previous_tickets: tuple[datetime, ...] | None = None) -> Facts:
    """Gather what the rules may ask about a customer and their message (``previous_tickets``: when the caller knows
    them, none are read)."""
    now = now or utcnow()
    previous: tuple[datetime, ...] = previous_tickets or ()
    if customer is not None and repeat_window_days and previous_tickets is None:
        since = now - timedelta(days=repeat_window_days)
        conn: Any = Ticket._meta.db
        column = Ticket._meta.fields_map["created_at"]
        rows = await conn.execute_query_dict(dialect_sql(_RECENT, conn.capabilities.dialect),
                                             [customer.id, column.to_db_value(since, Ticket)])
        created = [column.to_python_value(r["created_at"]) for r in rows]
        previous = tuple(t for t in created if isinstance(t, datetime))
    return Facts(
        channel=channel, text=text, category=category, fields=dict(fields or {}),
        vip_level=customer.vip_level if customer else 0,
        customer_tags=tuple(customer.tags or ()) if customer else (),
        now=now, bot_handoff=reason in HANDOFF_REASONS or (reason or "").startswith("bot:"),
        previous_tickets=previous, priority=priority,
    )


async def decide(*, facts: Facts, ruleset: RuleSet | None = None) -> Decision:
    """Evaluate the rules and resolve the names they produce to ids."""
    ruleset = ruleset or await active_rules()
    decision = evaluate(ruleset, facts, calendars=await _calendars(ruleset))
    if decision.group:
        decision.group_id = (await group_ids()).get(decision.group)
        if decision.group_id is None:
            log.warning("routing.unknown_group", group=decision.group)
    if decision.assignee:
        staff = await Staff.get_or_none(userid=decision.assignee, status="active")
        decision.assignee_id = staff.id if staff else None
    if decision.sla_policy:
        policy = await SlaPolicy.get_or_none(name=decision.sla_policy)
        decision.sla_policy_id = policy.id if policy else None
    return decision


async def route(*, category: str, text: str, channel: str, priority: str = "normal", rules: RuleSet | None = None,
                customer: Customer | None = None, fields: Mapping[str, Any] | None = None,
                reason: str | None = None, now: datetime | None = None,
                previous_tickets: tuple[datetime, ...] | None = None) -> Decision:
    """Decide the group, priority and the rest for a new ticket (``previous_tickets``: the customer's earlier tickets'
    creation times when the caller knows them, as `facts_for`)."""
    ruleset = rules or await active_rules()
    facts = await facts_for(category=category, text=text, channel=channel, customer=customer, fields=fields,
                            reason=reason, priority=priority, now=now,
                            repeat_window_days=ruleset.repeat_window_days, previous_tickets=previous_tickets)
    return await decide(facts=facts, ruleset=ruleset)
