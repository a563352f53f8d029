"""设置 · 路由规则: the ordered rule list, editing one rule, moving/enabling/deleting, the default group, the YAML
editor, and the dry run of a sample message against the rules in force.

Every change builds the whole routing document (``routing.to_document`` of the rules in force, with the one change)
and hands it to ``routing.parse_document`` + ``routing.store``, exactly what ``PUT /api/v1/routing/rules`` and
``gongdan rules import`` do; their messages are shown next to the form fields. A change carries the revision the page
was loaded at, so two admins editing at once cannot silently overwrite each other (409). Leads see the rules and use
the dry run; changes are for admins (the API's rule).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import NotFound, ValidationFailed, VersionConflict
from app.labels import CHANNEL_LABELS
from app.staff.models import SkillGroup, Staff
from app.tickets import routing
from app.tickets.models import RoutingRuleSet, SlaPolicy
from app.tickets.service import PRIORITY_LABELS as ticket_priorities
from app.timeutil import local, utcnow
from h5.console.settings import (
    audited,
    form_list,
    int_or_raw,
    manager,
    require_admin,
    split_errors,
    tri_bool,
)
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/rules"
ADMIN_ONLY = "只有管理员可以修改路由规则和 SLA 配置"
PRIORITY_LABELS = {**ticket_priorities, "+1": "提升一级", "-1": "降低一级"}
WHEN_FIELDS = ("when.channel", "when.keywords", "when.regex", "when.category", "when.fields", "when.vip_min",
               "when.customer_tags", "when.business_hours", "when.bot_handoff", "when.repeat_within_days")
THEN_FIELDS = ("then.group", "then.priority", "then.category", "then.tags", "then.assignee", "then.sla_policy",
               "then.auto_reply", "then.after_hours")
EDITABLE_CHANNELS = ("wechat_mp", "wecom_kf", "wecom_app", "email", "webchat", "api")


# ---- reading ----------------------------------------------------------------------------------------------------


async def _current() -> tuple[dict[str, Any], int, str]:
    """(document in force, stored revision or 0, "database" | "file")."""
    ruleset = await routing.active_rules()
    row = await RoutingRuleSet.filter(id=1).first()
    return routing.to_document(ruleset), (row.revision if row else 0), ("database" if row else "file")


def _join(values: Any) -> str:
    return "、".join(str(v) for v in values) if isinstance(values, list) else str(values)


def describe_when(when: dict[str, Any]) -> list[str]:
    """A rule's conditions in Chinese, one line each (the list page)."""
    out: list[str] = []
    if when.get("channel"):
        out.append("渠道：" + "、".join(CHANNEL_LABELS.get(c, c) for c in when["channel"]))
    for key, label in (("keywords", "包含关键词"), ("category", "分类"), ("customer_tags", "客户标签")):
        if when.get(key):
            out.append(f"{label}：{_join(when[key])}")
    if when.get("regex"):
        out.append(f"正则：{when['regex']}")
    for name, values in (when.get("fields") or {}).items():
        out.append(f"字段 {name}：{'有值' if values in (['*'], []) else _join(values)}")
    if when.get("vip_min") is not None:
        out.append(f"VIP 等级 ≥ {when['vip_min']}")
    if when.get("business_hours") is not None:
        out.append("工作时间内" if when["business_hours"] else "非工作时间")
    if when.get("bot_handoff") is not None:
        out.append("机器人转人工" if when["bot_handoff"] else "非机器人转人工")
    if when.get("repeat_within_days") is not None:
        out.append(f"{when['repeat_within_days']} 天内重复来访")
    return out or ["所有工单"]


def describe_then(then: dict[str, Any]) -> list[str]:
    """A rule's actions in Chinese, one line each."""
    out: list[str] = []
    if then.get("group"):
        out.append(f"分配到 {then['group']}")
    if then.get("priority"):
        out.append(f"优先级：{PRIORITY_LABELS.get(str(then['priority']), then['priority'])}")
    if then.get("category"):
        out.append(f"分类：{then['category']}")
    if then.get("tags"):
        out.append(f"标签：{_join(then['tags'])}")
    if then.get("assignee"):
        out.append(f"处理人：{then['assignee']}")
    if then.get("sla_policy"):
        out.append(f"SLA：{then['sla_policy']}")
    if then.get("after_hours"):
        out.append("非工作时间排队")
    if then.get("auto_reply"):
        out.append(f"自动回复：{then['auto_reply']}")
    return out


async def _choices() -> dict[str, list[tuple[str, str]]]:
    groups = [(str(n), str(n)) for n in await SkillGroup.all().order_by("id").values_list("name", flat=True)]
    staff = [(str(u), f"{n}（{u}）") for u, n in
             await Staff.filter(status="active").order_by("id").values_list("userid", "name")]
    policies = [(str(n), str(n)) for n in await SlaPolicy.all().order_by("id").values_list("name", flat=True)]
    return {
        "groups": [("", "（不改变）"), *groups],
        "default_groups": [("", "（不设置）"), *groups],
        "staff": [("", "（不指定）"), *staff],
        "policies": [("", "（不改变）"), *policies],
        "priorities": [("", "（不改变）"), *PRIORITY_LABELS.items()],
        "channels": [(c, CHANNEL_LABELS[c]) for c in EDITABLE_CHANNELS],
        "tri": [("", "不限"), ("1", "是"), ("0", "否")],
    }


# ---- the form <-> one rule of the document -----------------------------------------------------------------------


def _fields_text(fields: dict[str, Any]) -> str:
    return "\n".join(name if values in (["*"], []) else f"{name}: {', '.join(values)}"
                     for name, values in fields.items())


def rule_to_form(rule: dict[str, Any]) -> dict[str, Any]:
    """The form values showing a rule of the document."""
    when, then = rule.get("when") or {}, rule.get("then") or {}

    def tri(value: Any) -> str:
        return "" if value is None else ("1" if value else "0")

    return {
        "name": rule.get("name", ""), "enabled": rule.get("enabled", True) is not False, "stop": bool(rule.get("stop")),
        "when.channel": list(when.get("channel") or []), "when.keywords": "、".join(when.get("keywords") or []),
        "when.regex": when.get("regex") or "", "when.category": "、".join(when.get("category") or []),
        "when.fields": _fields_text(when.get("fields") or {}),
        "when.vip_min": "" if when.get("vip_min") is None else str(when["vip_min"]),
        "when.customer_tags": "、".join(when.get("customer_tags") or []),
        "when.business_hours": tri(when.get("business_hours")), "when.bot_handoff": tri(when.get("bot_handoff")),
        "when.repeat_within_days": "" if when.get("repeat_within_days") is None else str(when["repeat_within_days"]),
        "then.group": then.get("group") or "", "then.priority": str(then.get("priority") or ""),
        "then.category": then.get("category") or "", "then.tags": "、".join(then.get("tags") or []),
        "then.assignee": then.get("assignee") or "", "then.sla_policy": then.get("sla_policy") or "",
        "then.auto_reply": then.get("auto_reply") or "", "then.after_hours": bool(then.get("after_hours")),
    }


def _fields_from_text(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, sep, values = line.partition(":") if ":" in line else line.partition("：")
        out[name.strip()] = form_list(values) or ["*"] if sep else ["*"]
    return out


def form_to_rule(ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the raw rule, as the YAML would hold it, for ``routing.parse_document``; the form values as typed)."""
    assert ctx.form is not None
    f = ctx.field
    when: dict[str, Any] = {}
    channels = [str(c) for c in ctx.form.getlist("when.channel") if str(c)]
    if channels:
        when["channel"] = channels
    for key in ("keywords", "category", "customer_tags"):
        if form_list(f(f"when.{key}")):
            when[key] = form_list(f(f"when.{key}"))
    if f("when.regex"):
        when["regex"] = f("when.regex")
    if _fields_from_text(f("when.fields")):
        when["fields"] = _fields_from_text(f("when.fields"))
    for key in ("vip_min", "repeat_within_days"):
        if int_or_raw(f(f"when.{key}")) is not None:
            when[key] = int_or_raw(f(f"when.{key}"))
    for key in ("business_hours", "bot_handoff"):
        if tri_bool(f(f"when.{key}")) is not None:
            when[key] = tri_bool(f(f"when.{key}"))
    then: dict[str, Any] = {}
    for key in ("group", "priority", "category", "assignee", "sla_policy", "auto_reply"):
        if f(f"then.{key}"):
            then[key] = f(f"then.{key}")
    if form_list(f("then.tags")):
        then["tags"] = form_list(f("then.tags"))
    if f("then.after_hours"):
        then["after_hours"] = True
    rule: dict[str, Any] = {"name": f("name"), "when": when, "then": then, "stop": bool(f("stop"))}
    if not f("enabled"):
        rule["enabled"] = False
    typed = {k: f(k) for k in (*WHEN_FIELDS[1:], *THEN_FIELDS[:-1])}
    values = {"name": f("name"), "enabled": bool(f("enabled")), "stop": bool(f("stop")), "when.channel": channels,
              **typed, "then.after_hours": bool(f("then.after_hours"))}
    return rule, values


def _field_of(name: str, index: int) -> Any:
    """Which form field a routing error path (``规则 'x'.when.vip_min``, ``rules[3].name``) belongs to."""
    prefix = f"规则 {name!r}"

    def field_of(where: str) -> str | None:
        if where in (prefix, f"rules[{index}]", f"rules[{index}].name"):
            return "name"
        if not where.startswith(prefix + "."):
            return None
        rest = where[len(prefix) + 1:].split(".")
        if rest[0] in ("stop", "enabled", "name"):
            return rest[0]
        if rest[0] in ("when", "then") and len(rest) > 1:
            key = f"{rest[0]}.{rest[1]}"
            return key if key in (*WHEN_FIELDS, *THEN_FIELDS) else None
        return None

    return field_of


# ---- storing ----------------------------------------------------------------------------------------------------


async def _store(ctx: Ctx, document: dict[str, Any], *, revision: int, reason: str) -> int:
    """Validate and store a whole document (the API's path), with its audit row; 409 if someone saved meanwhile."""
    ruleset = routing.parse_document(document)
    async with audited(ctx, action="rules_save", object_type="routing_rules", object_id=1, reason=reason):
        row = await RoutingRuleSet.filter(id=1).select_for_update().first()
        if (row.revision if row else 0) != revision:
            raise VersionConflict("路由规则已被他人修改，请刷新页面后重试。", code="stale_revision")
        return await routing.store(ruleset=ruleset)


def _revision(ctx: Ctx) -> int:
    value = ctx.field("revision")
    return int(value) if value.isdigit() else -1


def _index(request: Request, document: dict[str, Any]) -> int:
    index = int(request.path_params["index"])
    if not 1 <= index <= len(document["rules"]):
        raise NotFound("规则不存在，可能已被删除。请刷新页面。")
    return index


# ---- the dry run ----------------------------------------------------------------------------------------------


async def _dry_run(request: Request, ctx: Ctx) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, str]]:
    """(the decision for the sample in the query, or None; the sample's values; errors in the sample)."""
    q = request.query_params
    sample = {k: q.get(k, "") for k in ("text", "channel", "category", "priority", "vip_level", "customer_tags",
                                         "reason", "at")}
    if q.get("dry") != "1":
        sample["channel"] = sample["channel"] or "wechat_mp"
        return None, sample, {}
    errors: dict[str, str] = {}
    vip = int_or_raw(sample["vip_level"])
    if isinstance(vip, str) or (isinstance(vip, int) and vip < 0):
        errors["vip_level"] = "VIP 等级应为不小于 0 的整数"
    if sample["priority"] and sample["priority"] not in routing.PRIORITIES:
        errors["priority"] = "优先级无效"
    at = utcnow()
    if sample["at"]:
        try:
            at = datetime.fromisoformat(sample["at"]).replace(tzinfo=ZoneInfo(ctx.settings.timezone))
        except ValueError:
            errors["at"] = "时间格式应为 年-月-日 时:分"
    if errors:
        return None, sample, errors
    ruleset = await routing.active_rules()
    facts = await routing.facts_for(category=sample["category"], text=sample["text"],
                                    channel=sample["channel"] or "wechat_mp", reason=sample["reason"] or None,
                                    priority=sample["priority"] or "normal", now=at,
                                    repeat_window_days=ruleset.repeat_window_days)
    if isinstance(vip, int):
        facts.vip_level = vip
    facts.customer_tags = tuple(form_list(sample["customer_tags"]))
    decision = await routing.decide(facts=facts, ruleset=ruleset)
    return _dry_view(decision.to_json()), sample, {}


_STEP_LABELS = {"group": "技能组", "priority": "优先级", "category": "分类", "tags": "标签", "assignee": "处理人",
                "sla_policy": "SLA 策略", "auto_reply": "自动回复", "after_hours_until": "排队至"}


def _when(value: str | None) -> str:
    return local(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M") if value else ""


def _dry_view(data: dict[str, Any]) -> dict[str, Any]:
    """The dry-run decision for people: Chinese labels, local times, the auto-reply as it would be sent."""
    steps = []
    for step in data["steps"]:
        parts = []
        for key, label in _STEP_LABELS.items():
            if key not in step:
                continue
            value = step[key]
            if key == "priority":
                value = PRIORITY_LABELS.get(value, value)
            elif key == "tags":
                value = "、".join(value)
            elif key == "after_hours_until":
                value = _when(value)
            parts.append((label, str(value)))
        steps.append({"rule": step["rule"], "parts": parts, "stop": bool(step.get("stop"))})
    result = dict(data["result"])
    replies = [step["auto_reply"] for step in data["steps"] if step.get("auto_reply")]
    result["auto_reply"] = replies[-1] if replies else None
    result["after_hours_until"] = _when(result.get("after_hours_until"))
    return {"matched": data["matched"], "steps": steps, "result": result}


# ---- pages ----------------------------------------------------------------------------------------------------


@console_page
async def rules_page(request: Request, ctx: Ctx) -> Response:
    """The ordered rule list with the default group and the dry run."""
    document, revision, source = await _current()
    decision, sample, sample_errors = await _dry_run(request, ctx)
    rows = [{"index": i, "rule": r, "when": describe_when(r.get("when") or {}),
             "then": describe_then(r.get("then") or {})} for i, r in enumerate(document["rules"], start=1)]
    return render_console(request, ctx, "console/settings/rules.html", active="settings.rules", rows=rows,
                          document=document, revision=revision, source=source, choices=await _choices(),
                          decision=decision, sample=sample, sample_errors=sample_errors,
                          can_edit=manager(ctx).is_admin, channel_labels=CHANNEL_LABELS,
                          priority_labels=PRIORITY_LABELS, status=422 if sample_errors else 200)


async def _edit_form(request: Request, ctx: Ctx, *, index: int | None, values: dict[str, Any], revision: int,
                     errors: dict[str, str] | None = None, general: list[str] | None = None,
                     status: int = 200) -> Response:
    title = "新建路由规则" if index is None else f"编辑路由规则 · {values.get('name') or index}"
    return render_console(request, ctx, "console/settings/rule_edit.html", active="settings.rules", title=title,
                          breadcrumb=[("设置", None), ("路由规则", BASE), (title, None)], index=index, values=values,
                          revision=revision, errors=errors or {}, general=general or [], choices=await _choices(),
                          status=status)


@console_page
async def rule_edit(request: Request, ctx: Ctx) -> Response:
    """Edit one rule (``/new``: a new rule, added at the end)."""
    document, revision, _ = await _current()
    index = None if request.path_params.get("index") is None else _index(request, document)
    if request.method == "GET":
        require_admin(ctx, ADMIN_ONLY)
        rule = document["rules"][index - 1] if index else {"name": "", "when": {}, "then": {}, "stop": False}
        return await _edit_form(request, ctx, index=index, values=rule_to_form(rule), revision=revision)
    require_admin(ctx, ADMIN_ONLY)
    rule, values = form_to_rule(ctx)
    rules = list(document["rules"])
    position = index if index is not None else len(rules) + 1
    old_name = rules[index - 1]["name"] if index else None
    if index is None:
        rules.append(rule)
    else:
        rules[index - 1] = rule
    try:
        await _store(ctx, {**document, "rules": rules}, revision=_revision(ctx),
                     reason=f"{'新建' if index is None else '修改'}规则「{rule['name'] or old_name}」")
    except ValidationFailed as exc:
        errors, general = split_errors(exc, _field_of(rule["name"], position))
        return await _edit_form(request, ctx, index=index, values=values, revision=_revision(ctx), errors=errors,
                                general=general, status=422)
    flash(ctx, f"规则「{rule['name']}」已保存")
    return redirect(BASE)


@console_page
async def rule_action(request: Request, ctx: Ctx) -> Response:
    """Move a rule up or down, enable or disable it, or delete it."""
    require_admin(ctx, ADMIN_ONLY)
    document, _, _ = await _current()
    index = _index(request, document)
    action = request.path_params["action"]
    rules = list(document["rules"])
    rule = dict(rules[index - 1])
    name = rule["name"]
    if action in ("up", "down"):
        other = index - 2 if action == "up" else index
        if not 0 <= other < len(rules):
            flash(ctx, "规则已在最" + ("前" if action == "up" else "后"))
            return redirect(BASE)
        rules[index - 1], rules[other] = rules[other], rules[index - 1]
        verb = "上移" if action == "up" else "下移"
        reason, notice = f"{verb}规则「{name}」", f"规则「{name}」已{verb}"
    elif action == "toggle":
        enabled = rule.get("enabled", True) is False
        if enabled:
            rule.pop("enabled", None)
        else:
            rule["enabled"] = False
        rules[index - 1] = rule
        reason = notice = f"{'启用' if enabled else '停用'}规则「{name}」"
    elif action == "delete":
        del rules[index - 1]
        reason = notice = f"删除规则「{name}」"
    else:
        raise NotFound("页面不存在。")
    await _store(ctx, {**document, "rules": rules}, revision=_revision(ctx), reason=reason)
    flash(ctx, notice)
    return redirect(BASE)


@console_page
async def default_group(request: Request, ctx: Ctx) -> Response:
    """Set the group a ticket goes to when no rule names one."""
    require_admin(ctx, ADMIN_ONLY)
    document, _, _ = await _current()
    group = ctx.field("default_group") or None
    await _store(ctx, {**document, "default_group": group}, revision=_revision(ctx),
                 reason=f"默认技能组改为「{group or '无'}」")
    flash(ctx, "默认技能组已保存")
    return redirect(BASE)


@console_page
async def yaml_editor(request: Request, ctx: Ctx) -> Response:
    """The whole rule set as YAML (what `gongdan rules export` writes), editable by admins."""
    document, revision, _ = await _current()
    text = routing.to_yaml(routing.parse_document(document))
    general: list[str] = []
    status = 200
    if request.method == "POST":
        require_admin(ctx, ADMIN_ONLY)
        text = ctx.field("yaml")
        try:
            ruleset = routing.parse_yaml(text)
            await _store(ctx, routing.to_document(ruleset), revision=_revision(ctx), reason="以 YAML 修改全部规则")
        except ValidationFailed as exc:
            general = [str(e) for e in (exc.details or {}).get("errors") or [exc.message]]
            status = 422
        else:
            flash(ctx, "路由规则已保存")
            return redirect(BASE)
    return render_console(request, ctx, "console/settings/rules_yaml.html", active="settings.rules",
                          title="以 YAML 编辑路由规则", breadcrumb=[("设置", None), ("路由规则", BASE), ("YAML", None)],
                          text=text, revision=_revision(ctx) if request.method == "POST" else revision,
                          general=general, can_edit=manager(ctx).is_admin, status=status)


routes: list[BaseRoute] = [
    Route("/settings/rules", rules_page, methods=["GET"]),
    Route("/settings/rules/new", rule_edit, methods=["GET", "POST"]),
    Route("/settings/rules/yaml", yaml_editor, methods=["GET", "POST"]),
    Route("/settings/rules/default", default_group, methods=["POST"]),
    Route("/settings/rules/{index:int}", rule_edit, methods=["GET", "POST"]),
    Route("/settings/rules/{index:int}/{action}", rule_action, methods=["POST"]),
]
