"""渠道与集成 (admins only): mailboxes, webhook subscriptions with their delivery log, business-event rules, web
chat sites and API tokens.

Each form is checked by the same pydantic model as the API or the CLI (``MailboxIn``, ``WebhookCreate``,
``EventRuleIn``, ``WebchatSiteIn``) and saved by the same service functions, which write the audit rows. Bad input
re-renders the form with a 422 and the Chinese error beside each field; nothing is written. Secrets (a webhook's
signing secret, an API token) are shown once, on the page that answers their creation, and never again.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.channels.email import service as mail
from app.channels.webchat import service as webchat
from app.channels.webchat import visitors
from app.errors import BadRequest, DomainError
from app.http import validation_detail
from app.integrations import events as rules
from app.integrations.schemas import EventRuleIn, EventRulePatch
from app.security import service as security
from app.security.models import ApiToken
from app.staff.models import SkillGroup, Staff
from app.tickets.service import PRIORITY_LABELS as ticket_priorities
from app.timeutil import local
from app.webhooks import service as webhooks
from app.webhooks.endpoints import WebhookCreate
from app.webhooks.models import WebhookDelivery
from h5.console.web import console_page, flash, render_console, row_id
from h5.web import Ctx, redirect

__all__ = ["routes"]

ADMINS = ("admin",)
BASE = "/console/channels"
EVENT_LABELS = {"ticket.created": "工单创建", "ticket.updated": "工单更新", "ticket.status_changed": "工单状态变更",
                "message.created": "新消息", "sla.warning": "SLA 即将超时", "sla.breached": "SLA 已超时",
                "csat.submitted": "客户评价", "approval.decided": "审批结果"}
DELIVERY_LABELS = {"pending": "等待发送", "retrying": "重试中", "sent": "已送达", "failed": "失败",
                   "skipped": "已跳过（订阅停用）"}
ACTION_LABELS = {"ticket": "创建主动工单", "message": "给客户发消息", "both": "创建工单并发消息"}
OP_LABELS = {"eq": "等于", "ne": "不等于", "gt": "大于", "gte": "大于等于", "lt": "小于", "lte": "小于等于",
             "in": "属于（逗号分隔）", "contains": "包含", "exists": "存在（填 true/false）"}
PRIORITY_LABELS = {"": "按路由规则", **ticket_priorities}
SCOPE_LABELS = {"read": "读取", "write": "写入", "events": "业务事件", "admin": "管理"}
CONDITION_ROWS = 5
SECURITY_CHOICES = [("", "按端口自动"), ("ssl", "SSL/TLS"), ("starttls", "STARTTLS"), ("none", "不加密")]


def _when(value: Any) -> str:
    return local(value).strftime("%Y-%m-%d %H:%M") if value else ""


def _field_errors(exc: ValidationError, rename: dict[str, str] | None = None) -> dict[str, str]:
    """A pydantic error as {form field: Chinese message} (the first message per field)."""
    out: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        detail = validation_detail(error)
        loc = [str(p) for p in error.get("loc", ())]
        name = loc[0] if loc else "_"
        if rename:
            name = rename.get(".".join(loc[:3]), rename.get(".".join(loc[:2]), rename.get(name, name)))
        message = detail["message"]
        if error.get("type") == "value_error":
            message = str((error.get("ctx") or {}).get("error", message))
        out.setdefault(name, message)
    return out


def _domain_errors(exc: DomainError) -> dict[str, str]:
    fields = {item["field"]: item["message"] for item in exc.details.get("fields", []) if "field" in item}
    return fields or {"_": exc.message}


# ---- mailboxes ----------------------------------------------------------------------------------------------------

MAIL_FIELDS = ("key", "name", "address", "imap_host", "imap_port", "imap_security", "smtp_host", "smtp_port",
               "smtp_security", "username", "password", "folder")


MODE_LABELS = {"idle": "IDLE", "poll": "轮询"}


def _mail_values(account: Any | None) -> dict[str, Any]:
    if account is None:
        return {"key": "", "name": "", "address": "", "imap_host": "", "imap_port": 993, "imap_security": "",
                "smtp_host": "", "smtp_port": 465, "smtp_security": "", "username": "", "password": "",
                "folder": "INBOX", "idle": True}
    c = account.config or {}
    return {"key": account.key, "name": account.name, "password": "", "idle": bool(c.get("idle", True)),
            **{k: c.get(k, "") for k in MAIL_FIELDS if k not in ("key", "name", "password")}}


async def _mail_page(request: Request, ctx: Ctx, *, values: dict[str, Any], editing: bool,
                     errors: dict[str, str] | None = None, status: int = 200,
                     check: mail.ConnectionCheck | None = None, checked_id: int | None = None) -> Response:
    assert ctx.actor is not None
    boxes = [{"id": b.account.id, "key": b.account.key, "name": b.account.name, "address": b.address,
              "imap": f"{(b.account.config or {}).get('imap_host')}:{(b.account.config or {}).get('imap_port')}",
              "smtp": f"{(b.account.config or {}).get('smtp_host')}:{(b.account.config or {}).get('smtp_port')}",
              "active": b.account.active, "polled_at": _when(b.polled_at), "last_error": b.last_error,
              "mode": b.mode, "mode_label": MODE_LABELS[b.mode], "mode_note": b.mode_note}
             for b in await mail.list_mailboxes(actor=ctx.actor)]
    return render_console(request, ctx, "console/channels/mailboxes.html", active="channels.mailboxes",
                          status=status, boxes=boxes, values=values, errors=errors or {}, editing=editing,
                          security_choices=SECURITY_CHOICES, check=check, checked_id=checked_id)


@console_page(roles=ADMINS)
async def mailboxes(request: Request, ctx: Ctx) -> Response:
    """邮箱: the mailboxes with their last poll, and the form to add one."""
    return await _mail_page(request, ctx, values=_mail_values(None), editing=False)


@console_page(roles=ADMINS)
async def mailbox_edit(request: Request, ctx: Ctx) -> Response:
    """One mailbox's form, filled in (the password left empty keeps the stored one)."""
    assert ctx.actor is not None
    account = await mail.get_mailbox(actor=ctx.actor, account_id=row_id(request))
    return await _mail_page(request, ctx, values=_mail_values(account), editing=True)


@console_page(roles=ADMINS)
async def mailbox_save(request: Request, ctx: Ctx) -> Response:
    """Add or change a mailbox (the CLI's checks); the password is stored encrypted."""
    assert ctx.actor is not None
    values: dict[str, Any] = {k: ctx.field(k) for k in MAIL_FIELDS}
    editing = ctx.field("editing") == "1"
    try:
        body = mail.MailboxIn.model_validate({**{k: v for k, v in values.items() if v != "" or k in ("key", "address")},
                                              "idle": ctx.field("idle") == "1"})
        account = await mail.save_mailbox(actor=ctx.actor, body=body)
    except ValidationError as exc:
        values["password"] = ""
        values["idle"] = ctx.field("idle") == "1"
        return await _mail_page(request, ctx, values=values, editing=editing, errors=_field_errors(exc), status=422)
    except DomainError as exc:
        values["password"] = ""
        values["idle"] = ctx.field("idle") == "1"
        return await _mail_page(request, ctx, values=values, editing=editing, errors=_domain_errors(exc),
                                status=exc.status_code)
    flash(ctx, f"邮箱 {account.config['address']} 已保存，" + (
        "服务器支持 IDLE 时新邮件几秒内收取，否则每分钟收一次信" if body.idle else "系统每分钟收一次信"))
    return redirect(f"{BASE}/mailboxes")


@console_page(roles=ADMINS)
async def mailbox_test(request: Request, ctx: Ctx) -> Response:
    """Log in to the mailbox's IMAP and SMTP servers and show how each went."""
    assert ctx.actor is not None
    account_id = row_id(request)
    check = await mail.check_connection(actor=ctx.actor, account_id=account_id)
    return await _mail_page(request, ctx, values=_mail_values(None), editing=False, check=check,
                            checked_id=account_id)


# ---- webhooks -----------------------------------------------------------------------------------------------------


async def _hooks_page(request: Request, ctx: Ctx, *, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None, status: int = 200, secret: str | None = None,
                      created_id: int | None = None) -> Response:
    assert ctx.actor is not None
    subs = [{**webhooks.serialize(s), "auto_disabled": bool(not s.active and s.disabled_reason
                                                            and s.disabled_reason != "管理员停用"),
             "disabled_when": _when(s.disabled_at)}
            for s in await webhooks.list_subscriptions(actor=ctx.actor)]
    return render_console(request, ctx, "console/channels/webhooks.html", active="channels.webhooks", status=status,
                          subs=subs, values=values or {"url": "", "description": "", "events": []},
                          errors=errors or {}, secret=secret, created_id=created_id, event_labels=EVENT_LABELS,
                          disable_after=webhooks.DISABLE_AFTER_FAILURES)


@console_page(roles=ADMINS)
async def webhook_list(request: Request, ctx: Ctx) -> Response:
    """事件推送: subscriptions, the automatic disabling notice, and the form to add one."""
    return await _hooks_page(request, ctx)


@console_page(roles=ADMINS)
async def webhook_create(request: Request, ctx: Ctx) -> Response:
    """Subscribe a URL; the answer shows the signing secret this once."""
    assert ctx.actor is not None and ctx.form is not None
    values = {"url": ctx.field("url"), "description": ctx.field("description"),
              "events": [str(e) for e in ctx.form.getlist("events")]}
    try:
        body = WebhookCreate.model_validate(values)
    except ValidationError as exc:
        return await _hooks_page(request, ctx, values=values, errors=_field_errors(exc), status=422)
    sub, secret = await webhooks.create(actor=ctx.actor, url=body.url, events=list(body.events),
                                        description=body.description)
    return await _hooks_page(request, ctx, secret=secret, created_id=sub.id, status=201)


async def _set_active(request: Request, ctx: Ctx, active: bool) -> Response:
    assert ctx.actor is not None
    sub = await webhooks.set_active(actor=ctx.actor, subscription_id=row_id(request), active=active)
    flash(ctx, f"已{'启用' if active else '停用'}事件推送 #{sub.id}")
    return redirect(f"{BASE}/webhooks")


@console_page(roles=ADMINS)
async def webhook_enable(request: Request, ctx: Ctx) -> Response:
    """Switch a subscription on again (its failure count starts afresh)."""
    return await _set_active(request, ctx, True)


@console_page(roles=ADMINS)
async def webhook_disable(request: Request, ctx: Ctx) -> Response:
    """Switch a subscription off."""
    return await _set_active(request, ctx, False)


@console_page(roles=ADMINS)
async def webhook_delete(request: Request, ctx: Ctx) -> Response:
    """Remove a subscription and its delivery log."""
    assert ctx.actor is not None
    subscription_id = row_id(request)
    await webhooks.delete(actor=ctx.actor, subscription_id=subscription_id)
    flash(ctx, f"已删除事件推送 #{subscription_id}")
    return redirect(f"{BASE}/webhooks")


@console_page(roles=ADMINS)
async def webhook_deliveries(request: Request, ctx: Ctx) -> Response:
    """One subscription's delivery log: status, attempts, the receiver's response code, and 重发."""
    assert ctx.actor is not None
    sub = await webhooks.get(actor=ctx.actor, subscription_id=row_id(request))
    before = request.query_params.get("before") or ""
    if before and not before.isdigit():
        raise BadRequest("before 必须是整数", code="invalid_parameter")
    rows: list[WebhookDelivery] = await webhooks.list_deliveries(
        actor=ctx.actor, subscription_id=sub.id, before_id=int(before) if before else None, limit=51)
    items = [{"id": d.id, "event": EVENT_LABELS.get(d.event_type, d.event_type), "event_type": d.event_type,
              "msg_id": d.msg_id, "status": d.status, "status_label": DELIVERY_LABELS.get(d.status, d.status),
              "attempts": d.attempts, "code": d.last_status_code, "error": d.last_error or "",
              "created": _when(d.created_at), "delivered": _when(d.delivered_at),
              "replayable": d.status in ("sent", "failed", "skipped")} for d in rows[:50]]
    shown = {**webhooks.serialize(sub), "auto_disabled": bool(not sub.active and sub.disabled_reason
                                                             and sub.disabled_reason != "管理员停用")}
    next_url = f"{BASE}/webhooks/{sub.id}?before={rows[49].id}" if len(rows) > 50 else None
    return render_console(request, ctx, "console/channels/deliveries.html", active="channels.webhooks", sub=shown,
                          items=items, next_url=next_url, title=f"投递记录 · {sub.url[:60]}",
                          breadcrumb=[("渠道与集成", None), ("事件推送", f"{BASE}/webhooks"), ("投递记录", None)])


@console_page(roles=ADMINS)
async def webhook_replay(request: Request, ctx: Ctx) -> Response:
    """Send a logged delivery again (same webhook-id, signed anew)."""
    assert ctx.actor is not None
    subscription_id = row_id(request)
    delivery_id = row_id(request, "delivery_id")
    await webhooks.replay(actor=ctx.actor, subscription_id=subscription_id, delivery_id=delivery_id)
    flash(ctx, f"投递 #{delivery_id} 已重新排队")
    return redirect(f"{BASE}/webhooks/{subscription_id}")


# ---- business-event rules -------------------------------------------------------------------------------------


def _condition_value(op: str, raw: str) -> Any:
    """A condition's value typed in the form: a list for "in", a bool for "exists", a number when it is one."""

    def one(text: str) -> Any:
        text = text.strip()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text) if "." in text else int(text)
        return text

    if op == "in":
        return [one(p) for p in re.split(r"[,，、]", raw) if p.strip()]
    if op == "exists":
        return raw.strip().lower() != "false"
    return one(raw) if raw.strip() else None


def _rule_form(ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the form shows again, the body for the pydantic model)."""
    conditions_shown: list[dict[str, str]] = []
    conditions: list[dict[str, Any]] = []
    for i in range(CONDITION_ROWS):
        field, op, value = ctx.field(f"cond_field_{i}"), ctx.field(f"cond_op_{i}") or "eq", ctx.field(
            f"cond_value_{i}")
        conditions_shown.append({"field": field, "op": op, "value": value})
        if field:
            conditions.append({"field": field, "op": op, "value": _condition_value(op, value)})
    tags = [t for t in re.split(r"[,，、\s]+", ctx.field("tags")) if t]
    names = ("name", "event_type", "action", "subject", "description", "message", "priority", "category")
    shown: dict[str, Any] = {k: ctx.field(k) for k in names}
    shown.update(tags=ctx.field("tags"), active=ctx.field("active") == "1", conditions=conditions_shown)
    body = {**{k: v for k, v in shown.items() if k not in ("tags", "conditions", "priority")},
            "priority": shown["priority"] or None, "tags": tags, "conditions": conditions}
    return shown, body


def _rule_values(rule: Any | None) -> dict[str, Any]:
    conditions = [{"field": str(c.get("field", "")), "op": str(c.get("op", "eq")),
                   "value": "、".join(str(v) for v in c["value"]) if isinstance(c.get("value"), list)
                   else ("" if c.get("value") is None else str(c.get("value")).lower()
                         if isinstance(c.get("value"), bool) else str(c.get("value")))}
                  for c in (rule.conditions if rule else [])]
    conditions += [{"field": "", "op": "eq", "value": ""}] * (CONDITION_ROWS - len(conditions))
    if rule is None:
        return {"name": "", "event_type": "", "action": "ticket", "subject": "", "description": "", "message": "",
                "priority": "", "category": "", "tags": "", "active": True, "conditions": conditions}
    return {"name": rule.name, "event_type": rule.event_type, "action": rule.action, "subject": rule.subject,
            "description": rule.description, "message": rule.message, "priority": rule.priority or "",
            "category": rule.category, "tags": "、".join(rule.tags or []), "active": rule.active,
            "conditions": conditions}


def _rule_errors(exc: ValidationError) -> dict[str, str]:
    out = _field_errors(exc, {f"conditions.{i}.{part}": f"cond_{part}_{i}" for i in range(CONDITION_ROWS)
                              for part in ("field", "op", "value")})
    if "conditions" in out:
        out.setdefault("cond_field_0", out["conditions"])
    return out


def _rule_page(request: Request, ctx: Ctx, *, values: dict[str, Any], rule_id: int | None,
               errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return render_console(
        request, ctx, "console/channels/rule_form.html", active="channels.rules", status=status, values=values,
        rule_id=rule_id, errors=errors or {}, action_choices=list(ACTION_LABELS.items()),
        op_choices=list(OP_LABELS.items()), priority_choices=list(PRIORITY_LABELS.items()),
        title="修改业务事件规则" if rule_id else "新建业务事件规则",
        breadcrumb=[("渠道与集成", None), ("业务事件规则", f"{BASE}/rules"), ("编辑" if rule_id else "新建", None)])


@console_page(roles=ADMINS)
async def rule_list(request: Request, ctx: Ctx) -> Response:
    """业务事件规则: every rule with its conditions and action."""
    assert ctx.actor is not None
    items = []
    for rule in await rules.list_rules(actor=ctx.actor):
        shown = rules.serialize_rule(rule)
        shown["action_label"] = ACTION_LABELS.get(rule.action, rule.action)
        shown["conditions_text"] = "；".join(
            f"{c.get('field')} {OP_LABELS.get(str(c.get('op')), c.get('op'))} {c.get('value')}"
            for c in rule.conditions or []) or "（无条件）"
        items.append(shown)
    return render_console(request, ctx, "console/channels/rules.html", active="channels.rules", rules=items)


@console_page(roles=ADMINS)
async def rule_new(request: Request, ctx: Ctx) -> Response:
    """The empty rule form."""
    return _rule_page(request, ctx, values=_rule_values(None), rule_id=None)


@console_page(roles=ADMINS)
async def rule_create(request: Request, ctx: Ctx) -> Response:
    """Add a rule (the API's checks)."""
    assert ctx.actor is not None
    shown, body = _rule_form(ctx)
    try:
        model = EventRuleIn.model_validate(body)
    except ValidationError as exc:
        return _rule_page(request, ctx, values=shown, rule_id=None, errors=_rule_errors(exc), status=422)
    rule = await rules.create_rule(actor=ctx.actor, body=model)
    flash(ctx, f"已新建规则「{rule.name}」")
    return redirect(f"{BASE}/rules")


@console_page(roles=ADMINS)
async def rule_edit(request: Request, ctx: Ctx) -> Response:
    """One rule's form, filled in."""
    assert ctx.actor is not None
    rule = await rules.get_rule(actor=ctx.actor, rule_id=row_id(request))
    return _rule_page(request, ctx, values=_rule_values(rule), rule_id=rule.id)


@console_page(roles=ADMINS)
async def rule_update(request: Request, ctx: Ctx) -> Response:
    """Change a rule: the whole form, checked as a new rule would be (the API's checks)."""
    assert ctx.actor is not None
    rule = await rules.get_rule(actor=ctx.actor, rule_id=row_id(request))
    shown, body = _rule_form(ctx)
    try:
        EventRuleIn.model_validate(body)
        patch = EventRulePatch.model_validate(body)
    except ValidationError as exc:
        return _rule_page(request, ctx, values=shown, rule_id=rule.id, errors=_rule_errors(exc), status=422)
    updated = await rules.update_rule(actor=ctx.actor, rule_id=rule.id, body=patch)
    flash(ctx, f"已保存规则「{updated.name}」")
    return redirect(f"{BASE}/rules")


@console_page(roles=ADMINS)
async def rule_delete(request: Request, ctx: Ctx) -> Response:
    """Remove a rule."""
    assert ctx.actor is not None
    rule_id = row_id(request)
    await rules.delete_rule(actor=ctx.actor, rule_id=rule_id)
    flash(ctx, "规则已删除")
    return redirect(f"{BASE}/rules")


# ---- web chat sites -------------------------------------------------------------------------------------------


def _site_values(account: Any | None) -> dict[str, Any]:
    if account is None:
        return {"key": "", "name": "", "origins": "", "bot": True, "group_id": "", "verify_mailbox": "",
                "per_visitor": visitors.PER_VISITOR, "per_ip": visitors.PER_IP, "max_chars": visitors.MAX_CHARS}
    c = account.config or {}
    limits = webchat.limits(account)
    return {"key": account.key, "name": account.name, "origins": "\n".join(c.get("origins") or []),
            "bot": bool(c.get("bot", True)), "group_id": str(c.get("group_id") or ""),
            "verify_mailbox": str(c.get("verify_mailbox") or ""),
            "per_visitor": limits.per_visitor, "per_ip": limits.per_ip, "max_chars": limits.max_chars}


async def _sites_page(request: Request, ctx: Ctx, *, values: dict[str, Any], editing: bool,
                      errors: dict[str, str] | None = None, status: int = 200) -> Response:
    assert ctx.actor is not None
    boxes = await webchat.verify_mailboxes(actor=ctx.actor)
    box_labels = {b.key: f"{b.name}（{(b.config or {}).get('address', '')}）" for b in boxes}
    sites = []
    for account in await webchat.list_sites(actor=ctx.actor):
        limits = webchat.limits(account)
        chosen = str((account.config or {}).get("verify_mailbox") or "")
        sites.append({"id": account.id, "key": account.key, "name": account.name,
                      "origins": list((account.config or {}).get("origins") or []),
                      "verify_mailbox": (box_labels.get(chosen, f"{chosen}（已停用或已删除）") if chosen
                                         else "自动（第一个邮箱）"),
                      "bot": bool((account.config or {}).get("bot", True)), "limits": limits,
                      "snippet": webchat.snippet(account, public_url=ctx.settings.public_url)})
    groups = [("", "不指定（全局工作时间）"), *((str(i), n) for i, n in
                                             await SkillGroup.all().order_by("id").values_list("id", "name"))]
    mailbox_choices = [("", "自动（第一个启用的邮箱）"), *box_labels.items()]
    return render_console(request, ctx, "console/channels/webchat.html", active="channels.webchat", status=status,
                          sites=sites, values=values, errors=errors or {}, editing=editing, groups=groups,
                          mailboxes=mailbox_choices)


@console_page(roles=ADMINS)
async def site_list(request: Request, ctx: Ctx) -> Response:
    """网页聊天: every site with its embed snippet, and the form to add one."""
    return await _sites_page(request, ctx, values=_site_values(None), editing=False)


@console_page(roles=ADMINS)
async def site_edit(request: Request, ctx: Ctx) -> Response:
    """One site's form: allowed origins, the bot, the group whose hours apply, the limits, the code mailbox."""
    assert ctx.actor is not None
    account = await webchat.get_site(actor=ctx.actor, account_id=row_id(request))
    return await _sites_page(request, ctx, values=_site_values(account), editing=True)


@console_page(roles=ADMINS)
async def site_save(request: Request, ctx: Ctx) -> Response:
    """Add or change a site."""
    assert ctx.actor is not None
    values: dict[str, Any] = {k: ctx.field(k) for k in ("key", "name", "origins", "group_id", "verify_mailbox",
                                                         "per_visitor", "per_ip", "max_chars")}
    values["bot"] = ctx.field("bot") == "1"
    editing = ctx.field("editing") == "1"
    body = {"key": values["key"], "name": values["name"], "bot": values["bot"],
            "origins": [o for o in re.split(r"[\s,，]+", values["origins"]) if o],
            "group_id": values["group_id"] or None, "verify_mailbox": values["verify_mailbox"],
            **{k: values[k] for k in ("per_visitor", "per_ip", "max_chars") if values[k] != ""}}
    try:
        model = webchat.WebchatSiteIn.model_validate(body)
        account = await webchat.save_site(actor=ctx.actor, body=model)
    except ValidationError as exc:
        return await _sites_page(request, ctx, values=values, editing=editing, errors=_field_errors(exc),
                                 status=422)
    except DomainError as exc:
        return await _sites_page(request, ctx, values=values, editing=editing, errors=_domain_errors(exc),
                                 status=exc.status_code)
    flash(ctx, f"站点 {account.key} 已保存，新打开的聊天窗口立即生效")
    return redirect(f"{BASE}/webchat")


# ---- API tokens ---------------------------------------------------------------------------------------------------


async def _tokens_page(request: Request, ctx: Ctx, *, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, status: int = 200, raw: str | None = None) -> Response:
    assert ctx.actor is not None
    tokens: list[ApiToken] = await security.list_tokens(actor=ctx.actor)
    items = [{"id": t.id, "prefix": t.prefix, "name": t.name, "owner": t.staff.name,
              "scopes": "、".join(SCOPE_LABELS.get(s, s) for s in t.scopes.split(",") if s),
              "created": _when(t.created_at), "used": _when(t.last_used_at), "revoked": t.revoked} for t in tokens]
    staff = [(str(i), f"{n}（{u}）") for i, n, u in
             await Staff.filter(status="active").order_by("id").values_list("id", "name", "userid")]
    return render_console(request, ctx, "console/channels/tokens.html", active="channels.tokens", status=status,
                          tokens=items, staff=staff, scope_labels=SCOPE_LABELS, errors=errors or {}, raw=raw,
                          values=values or {"staff_id": str(ctx.staff.id if ctx.staff else ""), "name": "",
                                            "scopes": ["read"]})


@console_page(roles=ADMINS)
async def token_list(request: Request, ctx: Ctx) -> Response:
    """API 令牌: every token (never the token itself), and the form to create one."""
    return await _tokens_page(request, ctx)


@console_page(roles=ADMINS)
async def token_create(request: Request, ctx: Ctx) -> Response:
    """Create a token with scopes; the answer shows it this once."""
    assert ctx.actor is not None and ctx.form is not None
    staff_id, name = ctx.field("staff_id"), ctx.field("name")[:64]
    scopes = [str(s) for s in ctx.form.getlist("scopes")]
    values: dict[str, Any] = {"staff_id": staff_id, "name": name, "scopes": scopes}
    if not staff_id.isdigit():
        return await _tokens_page(request, ctx, values=values, errors={"staff_id": "请选择令牌归属的员工"},
                                  status=422)
    try:
        _, raw = await security.issue_token(actor=ctx.actor, staff_id=int(staff_id), name=name,
                                            scopes=tuple(scopes))
    except DomainError as exc:
        return await _tokens_page(request, ctx, values=values, errors=_domain_errors(exc), status=exc.status_code)
    return await _tokens_page(request, ctx, raw=raw, status=201)


@console_page(roles=ADMINS)
async def token_revoke(request: Request, ctx: Ctx) -> Response:
    """Revoke a token (requests with it are refused at once)."""
    assert ctx.actor is not None
    token = await security.revoke_token_by_id(actor=ctx.actor, token_id=row_id(request))
    flash(ctx, f"令牌 {token.prefix}… 已吊销")
    return redirect(f"{BASE}/tokens")


routes: list[BaseRoute] = [
    Route("/channels/mailboxes", mailboxes, methods=["GET"]),
    Route("/channels/mailboxes", mailbox_save, methods=["POST"]),
    Route("/channels/mailboxes/{row_id}", mailbox_edit, methods=["GET"]),
    Route("/channels/mailboxes/{row_id}/test", mailbox_test, methods=["POST"]),
    Route("/channels/webhooks", webhook_list, methods=["GET"]),
    Route("/channels/webhooks", webhook_create, methods=["POST"]),
    Route("/channels/webhooks/{row_id}", webhook_deliveries, methods=["GET"]),
    Route("/channels/webhooks/{row_id}/enable", webhook_enable, methods=["POST"]),
    Route("/channels/webhooks/{row_id}/disable", webhook_disable, methods=["POST"]),
    Route("/channels/webhooks/{row_id}/delete", webhook_delete, methods=["POST"]),
    Route("/channels/webhooks/{row_id}/deliveries/{delivery_id}/replay", webhook_replay, methods=["POST"]),
    Route("/channels/rules", rule_list, methods=["GET"]),
    Route("/channels/rules", rule_create, methods=["POST"]),
    Route("/channels/rules/new", rule_new, methods=["GET"]),
    Route("/channels/rules/{row_id}", rule_edit, methods=["GET"]),
    Route("/channels/rules/{row_id}", rule_update, methods=["POST"]),
    Route("/channels/rules/{row_id}/delete", rule_delete, methods=["POST"]),
    Route("/channels/webchat", site_list, methods=["GET"]),
    Route("/channels/webchat", site_save, methods=["POST"]),
    Route("/channels/webchat/{row_id}", site_edit, methods=["GET"]),
    Route("/channels/tokens", token_list, methods=["GET"]),
    Route("/channels/tokens", token_create, methods=["POST"]),
    Route("/channels/tokens/{row_id}/revoke", token_revoke, methods=["POST"]),
]
