"""The console's ticket list behind a figure: ``/console/tickets?<drill>`` and its CSV / xlsx export.

A chart segment, a figure card or a table row of the dashboards links here with the reports' drill-down
parameters (``app.reports.service.Drill``): the page lists exactly the tickets (or, for the bot's answered
chats, the conversations) behind it, in the viewer's scope, 50 a page, each linking to the ticket. The filter bar
changes the period, channel, group and agent while the segment's own conditions stay (shown as chips, each
removable). ``/console/tickets/export?format=csv|xlsx&<drill>`` downloads the same rows, one per ticket.
"""

from __future__ import annotations

import math
import os
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from app.errors import BadRequest
from app.labels import CHANNEL_LABELS
from app.reports import export as report_export
from app.reports import service as reports
from app.reports.service import Drill
from app.staff.models import SkillGroup, Staff
from app.tickets.states import STATUS_LABELS
from h5.console import nav
from h5.console.web import console_page, render_console
from h5.web import Ctx

__all__ = ["PAGE_SIZE", "conditions", "export", "export_url", "routes", "ticket_list"]

PAGE_SIZE = 50
#: people-facing names of the channels the reports know (the chat sidebar's tickets are 企业微信 ones)
CHANNEL_NAMES = {**CHANNEL_LABELS, "sidebar": "企业微信", "staff_h5": "工作台录入", "customer_h5": "客户自助",
                 "event": "业务事件"}
REASONS = {"keyword": "关键词", "duration": "会话时长", "handoff": "机器人转人工", "staff": "客服创建", "api": "接口",
           "channel": "渠道规则", "customer": "客户自助", "other": "其他"}
HANDOFFS = {"human_request": "要求人工", "bot_failed": "多次未答", "angry": "情绪激动", "vip": "VIP",
            "intake_complete": "已收集信息", "intake_failed": "信息未收集全", "none": "机器人已解答"}
CLOCKS = {"first_response": "首次响应", "next_response": "再次响应", "resolution": "解决"}
AGES = {"lt1d": "不到 1 天", "1to3d": "1-3 天", "3to7d": "3-7 天", "gt7d": "超过 7 天"}
BASES = {"created": "按创建日期", "resolved": "按解决日期", "rated": "按评价日期"}
#: why a ticket was opened (the intake decision's reason)
INTAKE_REASONS = {"keyword": "关键词", "human_request": "客户要求人工", "duration": "会话时长",
                  "message_count": "消息条数", "every_message": "渠道规则（每条建单）", "staff": "客服创建",
                  "api": "接口创建", "customer": "客户自助", "event": "业务事件"}
#: the channel filter: the kinds the reports know (a ticket's channel account, else how it was raised)
CHANNEL_OPTIONS: list[tuple[str, str]] = [
    ("wechat_mp", "公众号"), ("wecom_kf", "微信客服"), ("sidebar", "企业微信（聊天工具栏）"),
    ("wecom_app", "企业微信（应用消息）"), ("email", "邮件"), ("webchat", "网页"), ("api", "后台录入"),
    ("staff_h5", "工作台录入"), ("customer_h5", "客户自助"),
]
#: keys the filter bar edits; the others are the segment's own conditions
FILTER_KEYS = ("from", "to", "channel", "group", "agent")


def export_url(fmt: str, drill: Drill | None) -> str:
    """The download of a drill's rows (fmt: csv | xlsx)."""
    params = {"format": fmt, **(drill.to_params() if drill is not None else {})}
    return f"/console/tickets/export?{urlencode(params)}"


async def _names() -> tuple[dict[int, str], dict[int, str]]:
    groups = {g.id: g.name for g in await SkillGroup.all().only("id", "name")}
    staff = {s.id: s.name for s in await Staff.all().only("id", "name")}
    return groups, staff


def conditions(drill: Drill, params: dict[str, str], groups: dict[int, str],
               staff: dict[int, str]) -> list[tuple[str, str]]:
    """The segment's conditions as (text, link without it) chips."""
    out: list[tuple[str, str]] = []

    def chip(key: str, text: str) -> None:
        rest = {k: v for k, v in params.items() if k != key and k != "page"}
        out.append((text, f"/console/tickets?{urlencode(rest)}"))

    if drill.channel:
        chip("channel", f"渠道：{CHANNEL_NAMES.get(drill.channel, drill.channel)}")
    if drill.group_id is not None:
        chip("group", f"技能组：{groups.get(drill.group_id, drill.group_id)}")
    if drill.agent_id is not None:
        chip("agent", f"客服：{staff.get(drill.agent_id, drill.agent_id)}")
    if drill.reason:
        chip("reason", f"转化原因：{REASONS.get(drill.reason, drill.reason)}")
    if drill.weekday is not None:
        chip("weekday", f"星期：{reports.WEEKDAY_LABELS[drill.weekday - 1]}")
    if drill.hour is not None:
        chip("hour", f"时段：{drill.hour}:00-{drill.hour}:59")
    if drill.csat is not None:
        chip("csat", f"评分：{drill.csat} 分")
    if drill.policy_id is not None:
        chip("policy", f"SLA 策略 #{drill.policy_id}")
    if drill.clock:
        chip("clock", f"时限：{CLOCKS.get(drill.clock, drill.clock)}")
    if drill.sla:
        chip("sla", "已超时" if drill.sla == "breached" else "已达成")
    if drill.escalated is not None:
        chip("escalated", "已升级" if drill.escalated else "未升级")
    if drill.reopened is not None:
        chip("reopened", "被重新打开过" if drill.reopened else "未重新打开")
    if drill.handoff:
        chip("handoff", f"机器人：{HANDOFFS.get(drill.handoff, drill.handoff)}")
    if drill.backlog is not None:
        chip("backlog", "仍未解决" if drill.backlog else "已解决")
    if drill.age:
        chip("age", f"积压时长：{AGES.get(drill.age, drill.age)}")
    return out


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 45秒, 12分, 3小时5分, 2天4小时."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}秒"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes}分"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def _fmt_seconds(value: Any) -> str:
    return duration(value) if value is not None else ""


def reason_label(reason: str) -> str:
    """An intake reason as people read it (bot:angry -> 机器人转人工（情绪激动）)."""
    if reason.startswith("bot:"):
        why = reason.removeprefix("bot:")
        return f"机器人转人工（{HANDOFFS.get(why, why)}）"
    return INTAKE_REASONS.get(reason, reason)


STATUS_NAMES: dict[str, str] = {str(k): v for k, v in STATUS_LABELS.items()}


def _row(row: Any, kind: str, groups: dict[int, str], staff: dict[int, str]) -> dict[str, Any]:
    def get(name: str) -> Any:
        return getattr(row, name, None)

    group_id, agent_id = get("group_id"), get("agent_id")
    return {
        "ticket_id": get("ticket_id"), "number": get("number") or "", "conversation_id": get("conversation_id"),
        "channel": CHANNEL_NAMES.get(get("channel") or "", get("channel") or ""),
        "group": groups.get(group_id, "") if group_id is not None else "",
        "agent": staff.get(agent_id, "") if agent_id is not None else "",
        "status": STATUS_NAMES.get(get("status") or "", get("status") or ""),
        "created_at": get("created_at") or get("started_at"), "resolved_at": get("resolved_at"),
        "frt": _fmt_seconds(get("frt_business")), "resolution": _fmt_seconds(get("resolution_business")),
        "csat": get("csat") if get("csat") is not None else "", "reason": reason_label(get("reason") or ""),
        "handoff": HANDOFFS.get(get("handoff") or "", get("handoff") or ""),
    }


def _page_number(value: str | None) -> int:
    if value is None or value == "":
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 100000:
        raise BadRequest("页码不正确", code="bad_page")
    return int(value)


@console_page(roles=nav.ALL_ROLES)
async def ticket_list(request: Request, ctx: Ctx) -> Response:
    """工单明细: exactly the tickets behind a dashboard figure or segment, with filters and pages."""
    assert ctx.actor is not None
    params = {k: v for k, v in request.query_params.items() if v != ""}
    page = _page_number(params.pop("page", None))
    drill = Drill.from_params(params)
    result = await reports.drill_page(actor=ctx.actor, drill=drill, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    groups, staff = await _names()
    pages = max(1, math.ceil(result.total / PAGE_SIZE))

    def page_url(n: int) -> str:
        return f"/console/tickets?{urlencode({**params, 'page': str(n)})}"

    group_options = [("", "全部技能组")] + [(str(i), n) for i, n in groups.items()
                                            if ctx.actor.group_ids is None or i in ctx.actor.group_ids]
    agent_options = [("", "全部客服")] + [(str(i), n) for i, n in staff.items()]
    hidden = {k: v for k, v in params.items() if k not in FILTER_KEYS}
    return render_console(
        request, ctx, "console/dashboards/tickets.html", active="reports.tickets", drill=drill,
        rows=[_row(r, drill.kind, groups, staff) for r in result.rows], total=result.total, page=page, pages=pages,
        page_url=page_url, chips=conditions(drill, params, groups, staff), hidden=hidden,
        channels=[("", "全部渠道"), *CHANNEL_OPTIONS],
        groups=group_options if ctx.actor.role != "agent" else [],
        agents=agent_options if ctx.actor.role != "agent" else [], basis=BASES.get(drill.basis, ""),
        export_url=export_url, title="工单明细",
        breadcrumb=[("数据报表", None), ("工单明细", None)])


def _filename(drill: Drill, ext: str) -> str:
    what = "会话明细" if drill.kind == "conversation" else "工单明细"
    start: date = drill.start
    return f"{what}_{start.isoformat()}_{drill.end.isoformat()}.{ext}"


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def disposition(name: str) -> str:
    """An attachment header with the Chinese file name (RFC 6266 filename*)."""
    ascii_name = name.encode("ascii", "ignore").decode() or "export"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@console_page(roles=nav.ALL_ROLES)
async def export(request: Request, ctx: Ctx) -> Response:
    """Download the rows behind a drill as CSV (UTF-8 with BOM, for Excel) or xlsx, one row per ticket."""
    assert ctx.actor is not None
    params = {k: v for k, v in request.query_params.items() if v != ""}
    fmt = params.pop("format", "csv")
    params.pop("page", None)
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("导出格式只能是 csv 或 xlsx", code="bad_format")
    drill = Drill.from_params(params)
    if fmt == "csv":
        return StreamingResponse(report_export.csv_chunks(actor=ctx.actor, drill=drill),
                                 media_type="text/csv; charset=utf-8",
                                 headers={"content-disposition": disposition(_filename(drill, "csv"))})
    path = await report_export.xlsx_file(actor=ctx.actor, drill=drill)
    return FileResponse(path, media_type=XLSX_TYPE,
                        headers={"content-disposition": disposition(_filename(drill, "xlsx"))},
                        background=BackgroundTask(os.unlink, path))


routes: list[BaseRoute] = [
    Route("/tickets", ticket_list, methods=["GET"]),
    Route("/tickets/export", export, methods=["GET"]),
]
