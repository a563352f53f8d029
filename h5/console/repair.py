"""修复工具 (the seed's 数据不同步的修复工具 and 消息丢失的补偿获取), admins only:

- 发送失败的消息: failed, dead-lettered and unknown outbox messages with filters, replay one or several;
- 处理失败的回调: stored callbacks whose processing failed, replay one or several;
- 企业微信同步: the sync runs with their reports, 「立即同步」, and the 微信客服 recovery pull on demand;
- 审计日志: the audit log with filters and the hash chain's verification.

Every action goes through the services (``app.repair.service``, ``wecom_sync.runs``), which write the audit rows
and keep a replay to one delivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.channels import health
from app.errors import BadRequest, DomainError, ValidationFailed
from app.http import parse_time
from app.labels import CHANNEL_LABELS
from app.repair import service
from app.security import audit
from app.staff.models import Staff
from app.timeutil import CHINA, local
from h5.console.web import console_page, flash, render_console, row_id
from h5.web import Ctx, redirect, safe_next
from wecom_sync import runs

__all__ = ["routes"]

ADMINS = ("admin",)
BASE = "/console/repair"
CHANNEL_CHOICES = [("", "全部渠道"), *((k, v) for k, v in CHANNEL_LABELS.items() if k not in ("api", "null")),
                   ("webhook", "事件推送")]
INBOUND_CHANNELS = [("", "全部渠道"), *((k, v) for k, v in CHANNEL_LABELS.items() if k not in ("api", "null")),
                    ("wecom_contacts", "通讯录变更")]
PAGE = 50


class _Kind:
    """What differs between the two lists (outbox messages, stored callbacks)."""

    def __init__(self, *, key: str, title: str, statuses: dict[str, str], channels: list[tuple[str, str]],
                 time_label: str) -> None:
        self.key = key
        self.title = title
        self.statuses = statuses
        self.channels = channels
        self.time_label = time_label


OUTBOX = _Kind(key="outbox", title="发送失败的消息", statuses=service.OUTBOX_STATUS_LABELS, channels=CHANNEL_CHOICES,
               time_label="创建时间")
INBOUND = _Kind(key="inbound", title="处理失败的回调", statuses=service.INBOUND_STATUS_LABELS,
                channels=INBOUND_CHANNELS, time_label="收到时间")


def _when(value: datetime | None) -> str:
    """A moment in China time, to the second."""
    return local(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _filters(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
    """The list filters from the query (times typed in China time), and their raw values for the filter bar."""
    params = request.query_params
    raw = {k: (params.get(k) or "").strip() for k in ("channel", "status", "since", "until", "error", "before")}
    filters: dict[str, Any] = {
        "channel": raw["channel"][:32] or None, "status": raw["status"][:16] or None,
        "since": parse_time(raw["since"], "since", assume=CHINA), "until": parse_time(raw["until"], "until",
                                                                                       assume=CHINA),
        "error": raw["error"][:100] or None}
    if raw["before"]:
        if not raw["before"].isdigit():
            raise BadRequest("before 必须是整数", code="invalid_parameter")
        filters["before_id"] = int(raw["before"])
    return filters, raw


async def _list_page(request: Request, ctx: Ctx, kind: _Kind) -> Response:
    assert ctx.actor is not None
    errors: dict[str, str] = {}
    try:
        filters, raw = _filters(request)
        if kind is OUTBOX:
            rows = [{**service.serialize_outbox(r), "at": _when(r.created_at), "done_at": _when(r.sent_at)}
                    for r in await service.list_outbox(actor=ctx.actor, limit=PAGE + 1, **filters)]
        else:
            rows = [{**service.serialize_inbound(r), "at": _when(r.received_at), "done_at": _when(r.processed_at)}
                    for r in await service.list_inbound(actor=ctx.actor, limit=PAGE + 1, **filters)]
        status = 200
    except (BadRequest, ValidationFailed) as exc:
        raw = {k: (request.query_params.get(k) or "").strip() for k in
               ("channel", "status", "since", "until", "error", "before")}
        errors = {item["field"]: item["message"] for item in exc.details.get("fields", [])}
        errors["_"] = exc.message
        rows, status = [], exc.status_code
    counts = await (service.count_outbox if kind is OUTBOX else service.count_inbound)(actor=ctx.actor)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    params = {k: v for k, v in raw.items() if v and k != "before"}
    next_url = None
    if more:
        next_url = f"{BASE}/{kind.key}?{urlencode({**params, 'before': str(rows[-1]['id'])})}"
    here = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    return render_console(request, ctx, "console/repair/list.html", active=f"repair.{kind.key}", status=status,
                          kind=kind, rows=rows, raw=raw, errors=errors, counts=counts,
                          since_value=raw["since"], until_value=raw["until"], next_url=next_url, here=here,
                          status_choices=[("", "需要处理的（默认）"), *kind.statuses.items()])


@console_page(roles=ADMINS)
async def outbox_list(request: Request, ctx: Ctx) -> Response:
    """发送失败的消息: failed, dead and unknown outbox messages."""
    return await _list_page(request, ctx, OUTBOX)


@console_page(roles=ADMINS)
async def inbound_list(request: Request, ctx: Ctx) -> Response:
    """处理失败的回调: stored callbacks whose processing failed."""
    return await _list_page(request, ctx, INBOUND)


def _back(ctx: Ctx, kind: _Kind) -> str:
    return safe_next(ctx.field("back"), f"{BASE}/{kind.key}")


async def _replay_one(request: Request, ctx: Ctx, kind: _Kind) -> Response:
    assert ctx.actor is not None
    number = row_id(request)
    if kind is OUTBOX:
        result = await service.replay_outbox(actor=ctx.actor, outbox_id=number)
    else:
        result = await service.replay_inbound(actor=ctx.actor, event_id=number)
    flash(ctx, f"#{number} 已重新排队，稍后自动处理" if result.replayed else f"#{number} 已在队列中，无需重复操作")
    return redirect(_back(ctx, kind))


async def _replay_many(request: Request, ctx: Ctx, kind: _Kind) -> Response:
    assert ctx.actor is not None
    raw_ids = ctx.form.getlist("ids") if ctx.form is not None else []
    try:
        ids = [int(str(v)) for v in raw_ids]
    except ValueError as exc:
        raise BadRequest("选择的记录编号不合法", code="invalid_parameter") from exc
    if not ids:
        flash(ctx, "请先勾选要重放的记录")
        return redirect(_back(ctx, kind))
    one = service.replay_outbox_many if kind is OUTBOX else service.replay_inbound_many
    result = await one(actor=ctx.actor, ids=ids)
    parts = [f"已重新排队 {len(result.replayed)} 条"]
    if result.already_queued:
        parts.append(f"{len(result.already_queued)} 条已在队列中")
    if result.refused:
        parts.append(f"{len(result.refused)} 条无法重放（" + "；".join(
            f"#{k} {v}" for k, v in list(result.refused.items())[:5]) + "）")
    flash(ctx, "，".join(parts))
    return redirect(_back(ctx, kind))


@console_page(roles=ADMINS)
async def outbox_replay(request: Request, ctx: Ctx) -> Response:
    """Replay one outbox message."""
    return await _replay_one(request, ctx, OUTBOX)


@console_page(roles=ADMINS)
async def outbox_replay_many(request: Request, ctx: Ctx) -> Response:
    """Replay the ticked outbox messages."""
    return await _replay_many(request, ctx, OUTBOX)


@console_page(roles=ADMINS)
async def inbound_replay(request: Request, ctx: Ctx) -> Response:
    """Replay one stored callback."""
    return await _replay_one(request, ctx, INBOUND)


@console_page(roles=ADMINS)
async def inbound_replay_many(request: Request, ctx: Ctx) -> Response:
    """Replay the ticked stored callbacks."""
    return await _replay_many(request, ctx, INBOUND)


# ---- WeCom sync and the kf recovery pull -------------------------------------------------------------------------


@console_page(roles=ADMINS)
async def sync_page(request: Request, ctx: Ctx) -> Response:
    """企业微信同步: runs with their reports, 立即同步, and the 微信客服 recovery pull."""
    assert ctx.actor is not None
    items = [{**runs.serialize(r), "started": _when(r.started_at), "finished": _when(r.finished_at)}
             for r in await runs.list_runs(actor=ctx.actor, limit=50)]
    kf_accounts = await service.list_kf_accounts(actor=ctx.actor)
    # the contacts callback drives the incremental sync between the nightly runs: an admin wondering why a change
    # in WeCom did not arrive looks here (it belongs to no channel account, so 渠道与集成 has no row for it)
    contacts = {"url": f"{ctx.settings.public_url.rstrip('/')}/callbacks/wecom/contacts",
                "configured": bool(str(ctx.settings.wecom.contact_token)),
                "check": (await health.list_status(scopes=[health.WECOM_CONTACTS])).get(health.WECOM_CONTACTS)}
    return render_console(request, ctx, "console/repair/sync.html", active="repair.sync", runs=items,
                          kinds=list(runs.KINDS.items()), kf_accounts=kf_accounts, contacts_callback=contacts)


@console_page(roles=ADMINS)
async def sync_now(request: Request, ctx: Ctx) -> Response:
    """Queue a full sync of the kind the button names."""
    assert ctx.actor is not None
    kind = ctx.field("kind")
    await runs.request_sync(actor=ctx.actor, kind=kind)
    flash(ctx, f"已开始同步{runs.KINDS[kind]}，完成后在下方列表中查看报告")
    return redirect(f"{BASE}/sync")


@console_page(roles=ADMINS)
async def kf_recover(request: Request, ctx: Ctx) -> Response:
    """Queue a recovery pull of one kf account."""
    assert ctx.actor is not None
    await service.request_kf_recovery(actor=ctx.actor, account_id=row_id(request))
    flash(ctx, "已开始补偿拉取，遗漏的客服消息将按原顺序补入会话")
    return redirect(f"{BASE}/sync")


# ---- the audit log ------------------------------------------------------------------------------------------------


@console_page(roles=ADMINS)
async def audit_page(request: Request, ctx: Ctx) -> Response:
    """审计日志: filters (action, object, actor, period) and the hash chain's state."""
    assert ctx.actor is not None
    params = request.query_params
    raw = {k: (params.get(k) or "").strip() for k in ("action", "object_type", "actor", "since", "until", "cursor")}
    errors: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    next_cursor = None
    status = 200
    try:
        if raw["actor"] and not raw["actor"].isdigit():
            raise ValidationFailed.for_field("actor", "操作人不合法", code="invalid_parameter")
        page = await audit.list_entries(
            actor=ctx.actor, action=raw["action"][:32] or None, object_type=raw["object_type"][:32] or None,
            staff_id=int(raw["actor"]) if raw["actor"] else None, cursor=raw["cursor"] or None, limit=PAGE,
            since=parse_time(raw["since"], "since", assume=CHINA), until=parse_time(raw["until"], "until",
                                                                                     assume=CHINA))
        entries = [{**shown, "at": local(item.created_at).strftime("%Y-%m-%d %H:%M:%S")}
                   for shown, item in zip(await audit.serialize(page.items), page.items, strict=True)]
        next_cursor = page.next_cursor
    except DomainError as exc:
        status = exc.status_code
        errors = {item["field"]: item["message"] for item in exc.details.get("fields", [])}
        errors["_"] = exc.message
    report = await audit.verify_chain(actor=ctx.actor)
    staff = await Staff.filter(role__in=["admin", "lead", "agent"]).order_by("id").values_list("id", "name")
    next_url = None
    if next_cursor:
        kept = {k: v for k, v in raw.items() if v and k != "cursor"}
        next_url = f"{BASE}/audit?{urlencode({**kept, 'cursor': next_cursor})}"
    return render_console(
        request, ctx, "console/repair/audit.html", active="repair.audit", status=status, entries=entries, raw=raw,
        errors=errors, report=report, next_url=next_url,
        action_choices=[("", "全部操作"), *sorted(audit.ACTION_LABELS.items(), key=lambda kv: kv[1])],
        object_choices=[("", "全部对象"), *audit.OBJECT_LABELS.items()],
        actor_choices=[("", "全部人员"), *((str(i), n) for i, n in staff)])


routes: list[BaseRoute] = [
    Route("/repair/outbox", outbox_list, methods=["GET"]),
    Route("/repair/outbox/replay", outbox_replay_many, methods=["POST"]),
    Route("/repair/outbox/{row_id}/replay", outbox_replay, methods=["POST"]),
    Route("/repair/inbound", inbound_list, methods=["GET"]),
    Route("/repair/inbound/replay", inbound_replay_many, methods=["POST"]),
    Route("/repair/inbound/{row_id}/replay", inbound_replay, methods=["POST"]),
    Route("/repair/sync", sync_page, methods=["GET"]),
    Route("/repair/sync", sync_now, methods=["POST"]),
    Route("/repair/kf/{row_id}/recover", kf_recover, methods=["POST"]),
    Route("/repair/audit", audit_page, methods=["GET"]),
]
