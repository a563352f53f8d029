"""The console's dashboards (数据报表): the figures of `app.reports.service` over any period, channel, group and agent.

Each page is a GET form (period presets 今天/近7天/近30天/本月/上月 or any from/to, channel, group, agent), figure cards
with the change from the previous period (↑/↓, green when it is better, red when it is worse), and charts drawn by
``static/console/charts.js`` from JSON embedded in the page. Every chart is also a table (what shows when ECharts
is not installed) and every point links to ``/console/tickets?<drill>``: exactly the tickets behind it
(``h5.console.tickets``). Scope is the reports service's: admins all, leads their groups, agents their own tickets;
the channel-level pages (消息接收率, 工单转化率, 机器人) are for admins and leads.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import xlsxwriter
from markupsafe import Markup
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.channels.models import ChannelAccount
from app.errors import BadRequest
from app.reports import service as reports
from app.reports.service import Drill, ReportFilter
from app.security.scope import Actor
from app.staff.models import SkillGroup, Staff
from app.timeutil import local, utcnow
from h5.console import nav
from h5.console.tickets import (
    CHANNEL_NAMES,
    CHANNEL_OPTIONS,
    XLSX_TYPE,
    disposition,
    duration,
    export_url,
)
from h5.console.web import console_page, render_console
from h5.web import STATIC_DIR, Ctx

__all__ = ["CHANNEL_OPTIONS", "PAGES", "drill_url", "echarts_available", "period_presets", "routes"]

#: copied there by `make assets` (npm's echarts package); never committed. Without it the tables are the figures.
ECHARTS_JS = STATIC_DIR / "vendor" / "echarts" / "echarts.min.js"

#: figures where a rise is bad news (times, breaches, backlog, failures); counts that are neither are neutral
LOWER_IS_BETTER_PREFIXES = ("frt_", "nrt_", "resolution_", "handling")
LOWER_IS_BETTER_WORDS = ("backlog", "breach", "escalations", "reopened", "failed", "lost", "handoffs")
NEUTRAL = ("created", "received", "conversations", "converted", "resolved", "handled", "replies",
           "bot_conversations", "csat_count")
LOST_STATUS = {"failed": "处理失败", "pending": "未处理", "done": "已处理", "ignored": "已忽略"}


@dataclass(frozen=True)
class Page:
    """One dashboard: its nav key, path, title, the report sections it shows and who may open it."""

    key: str
    path: str
    label: str
    sections: tuple[str, ...]
    template: str
    roles: tuple[str, ...] = nav.ALL_ROLES


PAGES: tuple[Page, ...] = (
    Page("reports.overview", "/reports/overview", "总览", ("overview",), "overview.html"),
    Page("reports.reception", "/reports/reception", "消息接收率", ("reception",), "reception.html", nav.MANAGERS),
    Page("reports.conversion", "/reports/conversion", "工单转化率", ("conversion",), "conversion.html",
         nav.MANAGERS),
    Page("reports.satisfaction", "/reports/satisfaction", "客户满意度", ("satisfaction",), "satisfaction.html"),
    Page("reports.response", "/reports/response", "响应与解决时效", ("response", "sla"), "response.html"),
    Page("reports.workload", "/reports/workload", "工作量", ("volume", "agents"), "workload.html"),
    Page("reports.bot", "/reports/bot", "机器人", ("bot",), "bot.html", nav.MANAGERS),
)


@lru_cache(maxsize=1)
def echarts_available() -> bool:
    """Whether the build step put ECharts in place (the dashboards work without it: tables only)."""
    return ECHARTS_JS.is_file()


def drill_url(drill: Drill | None) -> str | None:
    """The console ticket list showing exactly the tickets (or conversations) behind a figure or segment."""
    return f"/console/tickets?{urlencode(drill.to_params())}" if drill is not None else None


# ---- the period ---------------------------------------------------------------------------------------------


def period_presets(today: date) -> list[tuple[str, str, date, date]]:
    """(key, label, from, to) of the preset periods, relative to ``today`` (local date)."""
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    return [
        ("today", "今天", today, today),
        ("7d", "近7天", today - timedelta(days=6), today),
        ("30d", "近30天", today - timedelta(days=29), today),
        ("month", "本月", month_start, today),
        ("last_month", "上月", last_month_end.replace(day=1), last_month_end),
    ]


def _with(params: QueryParams | dict[str, str], **changes: str | None) -> str:
    """The query string with some keys replaced (None drops a key)."""
    values = {k: v for k, v in dict(params).items() if v != ""}
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return urlencode(values)


# ---- presenting figures -------------------------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    """A figure's value in its unit (ratio as a percentage)."""
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "seconds":
        return duration(value)
    if unit == "score":
        return f"{value:.2f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _tone(key: str, change: float | None) -> str:
    if change is None or change == 0 or any(key.startswith(n) or key == n for n in NEUTRAL):
        return "flat"
    worse_up = key.startswith(LOWER_IS_BETTER_PREFIXES) or any(word in key for word in LOWER_IS_BETTER_WORDS)
    return "bad" if (change > 0) == worse_up else "good"


def fmt_change(figure: Any) -> dict[str, str]:
    """The change from the previous period: arrow, text and tone (good | bad | flat | none)."""
    if figure.value is None or figure.previous is None:
        return {"arrow": "", "text": "上期无数据", "tone": "none"}
    change = figure.change if figure.change is not None else figure.value - figure.previous
    if change == 0:
        return {"arrow": "→", "text": "与上期持平", "tone": "flat"}
    arrow = "↑" if change > 0 else "↓"
    if figure.unit == "ratio":
        text = f"{abs(change) * 100:.1f} 个百分点"
    elif figure.change_ratio is not None:
        text = f"{abs(figure.change_ratio) * 100:.1f}%"
    elif figure.unit == "seconds":
        text = duration(abs(change))
    else:
        text = fmt_value(abs(change), figure.unit)
    return {"arrow": arrow, "text": text, "tone": _tone(figure.key, change)}


def _chart_value(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    if unit == "ratio":
        return round(value * 100, 1)
    if unit == "seconds":
        return round(value / 60, 1)
    return round(value, 2)


CHART_UNITS = {"ratio": "%", "seconds": "分钟", "score": "分", "count": ""}


@dataclass
class Chart:
    """A series as the page shows it: the ECharts spec (JSON) and the same points as a table."""

    id: str
    key: str
    title: str
    kind: str
    unit: str
    rows: list[dict[str, Any]]
    spec: dict[str, Any]
    export: Drill | None = None

    @property
    def spec_json(self) -> Markup:
        # inside <script type="application/json">: "</" must not end the element early
        text = json.dumps(self.spec, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
        return Markup(text)  # JSON of our own figures, "</" escaped above


def chart_of(series: Any, *, index: str) -> Chart:
    """Turn a reports Series into a chart spec plus its fallback table rows."""
    unit = series.unit
    points = list(series.points)
    if series.key == "by_channel":  # the intake sources too (the chat sidebar's tickets are 企业微信 ones)
        points = [replace(p, label=CHANNEL_NAMES.get(p.key, p.label)) for p in points]
    rows = [{"label": p.label, "value": fmt_value(p.value, unit), "previous": fmt_value(p.previous, unit)
             if p.previous is not None else "", "url": drill_url(p.drill)} for p in points]
    spec: dict[str, Any] = {"kind": series.kind if series.kind in ("line", "bar", "pie", "heatmap") else "bar",
                            "unit": CHART_UNITS.get(unit, ""), "title": series.label, "key": series.key}
    if spec["kind"] == "heatmap":
        cells = []
        for p in points:
            weekday, hour = (int(x) for x in str(p.key).split(":"))
            cells.append([hour, weekday - 1, p.value or 0, drill_url(p.drill)])
        spec.update(x=[f"{h}时" for h in range(24)], y=list(reports.WEEKDAY_LABELS), cells=cells,
                    series=[{"name": series.label}])
        for row, p in zip(rows, points, strict=True):
            weekday, hour = (int(x) for x in str(p.key).split(":"))
            row["label"] = f"{reports.WEEKDAY_LABELS[weekday - 1]} {hour}时"
    else:
        spec.update(categories=[p.label for p in points],
                    series=[{"name": series.label, "values": [_chart_value(p.value, unit) for p in points],
                             "urls": [drill_url(p.drill) for p in points]}])
        if len(points) > 8 and spec["kind"] == "bar" and all(len(p.label) > 3 for p in points):
            spec["kind"] = "hbar"
    return Chart(id=f"chart-{index}", key=series.key, title=series.label, kind=spec["kind"], unit=unit, rows=rows,
                 spec=spec)


@dataclass
class TableView:
    """A reports Table with formatted cells, each row's drill-down link, and what its export buttons download:
    the tickets behind it (``export``), or, for a table of other things (accounts, questions), the table itself
    (``table_export``: ``<section>.<table>``)."""

    key: str
    label: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    export: Drill | None
    table_export: str | None = None


RATE_SUFFIXES = ("rate", "share", "attainment")
TIME_PREFIXES = ("frt_", "nrt_", "resolution_", "handling")


def _cell(key: str, value: Any) -> str:
    """A table cell in the unit its column implies (rates as %, times as durations, scores with 2 decimals)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith(RATE_SUFFIXES):
        return fmt_value(value, "ratio")
    if key.startswith(TIME_PREFIXES):
        return duration(value)
    if key.startswith("csat_"):
        return fmt_value(value, "score")
    return fmt_value(value, "count")


#: tables that are also drawn as a bar chart: (section, table) -> (column, unit, title)
TABLE_CHARTS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("reception", "by_account"): ("reception_rate", "ratio", "各账号消息接收率"),
    ("satisfaction", "by_agent"): ("csat_avg", "score", "各坐席满意度平均分"),
    ("response", "by_group"): ("frt_business_avg", "seconds", "各技能组平均首次响应（工作时间）"),
    ("sla", "by_policy"): ("attainment", "ratio", "各 SLA 策略与时钟的达成率"),
    ("agents", "by_agent"): ("resolved", "count", "各坐席解决工单数"),
}


def table_series(section_key: str, table: Any) -> Any | None:
    """The bar chart of a table listed in TABLE_CHARTS (its rows' drills are the bars' links)."""
    wanted = TABLE_CHARTS.get((section_key, table.key))
    if wanted is None or not table.rows:
        return None
    column, unit, title = wanted
    label_keys = [k for k, _ in table.columns[:2] if k in ("account", "agent", "group", "policy", "clock")]
    points = tuple(reports.Point(key=str(i), label=" · ".join(str(row.get(k, "")) for k in label_keys) or str(i),
                                 value=row.get(column), drill=row.get("drill"))
                   for i, row in enumerate(table.rows))
    return reports.Series(key=f"{table.key}_{column}", label=title, unit=unit, points=points)


#: tables whose rows are not tickets: their export is the table itself
OWN_ROW_TABLES = {("reception", "by_account"), ("bot", "missed")}


def table_of(table: Any, flt: ReportFilter, *, section_key: str) -> TableView:
    rows = []
    first_drill: Drill | None = None
    for row in table.rows:
        drill = row.get("drill")
        first_drill = first_drill or drill
        rows.append({"cells": [_cell(key, row.get(key)) for key, _ in table.columns], "url": drill_url(drill)})
    if (section_key, table.key) in OWN_ROW_TABLES:
        return TableView(key=table.key, label=table.label, columns=list(table.columns), rows=rows, export=None,
                         table_export=f"{section_key}.{table.key}")
    export = base_drill(flt, kind=first_drill.kind if first_drill else "ticket",
                        basis=first_drill.basis if first_drill else "created")
    return TableView(key=table.key, label=table.label, columns=list(table.columns), rows=rows, export=export)


def base_drill(flt: ReportFilter, *, kind: str = "ticket", basis: str = "created") -> Drill:
    """Every ticket (or conversation) of the filter: what a table's export holds."""
    return Drill.of(flt, kind=kind, basis=basis)


@dataclass
class SectionView:
    key: str
    title: str
    figures: list[dict[str, Any]]
    charts: list[Chart]
    tables: list[TableView]


def section_view(section: Any, flt: ReportFilter) -> SectionView:
    figures = [{"key": f.key, "label": f.label, "value": fmt_value(f.value, f.unit), "change": fmt_change(f),
                "previous": fmt_value(f.previous, f.unit), "url": drill_url(f.drill),
                "detail": (f"{fmt_value(f.numerator, 'count')} / {fmt_value(f.denominator, 'count')}"
                           if f.unit == "ratio" and f.denominator is not None else "")} for f in section.figures]
    series_list = [*section.series, *(t for t in (table_series(section.key, tb) for tb in section.tables) if t)]
    charts = [chart_of(s, index=f"{section.key}-{i}") for i, s in enumerate(series_list)]
    for chart, series in zip(charts, series_list, strict=True):
        first = next((p.drill for p in series.points if p.drill is not None), None)
        chart.export = base_drill(flt, kind=first.kind, basis=first.basis) if first is not None else None
    return SectionView(key=section.key, title=section.title, figures=figures, charts=charts,
                       tables=[table_of(t, flt, section_key=section.key) for t in section.tables])


# ---- filter options -----------------------------------------------------------------------------------------


@dataclass
class FilterForm:
    """What the filter bar shows: the period, presets, and the channel/group/agent choices in the viewer's scope."""

    flt: ReportFilter
    presets: list[dict[str, Any]]
    channels: list[tuple[str, str]]
    groups: list[tuple[str, str]] = field(default_factory=list)
    agents: list[tuple[str, str]] = field(default_factory=list)


async def filter_form(request: Request, actor: Actor, flt: ReportFilter, today: date) -> FilterForm:
    presets = []
    for key, label, start, end in period_presets(today):
        query = _with(request.query_params, **{"from": start.isoformat(), "to": end.isoformat()})
        presets.append({"key": key, "label": label, "href": f"{request.url.path}?{query}",
                        "active": (flt.start, flt.end) == (start, end)})
    form = FilterForm(flt=flt, presets=presets, channels=[("", "全部渠道"), *CHANNEL_OPTIONS])
    if actor.role != "agent":
        groups = SkillGroup.all().order_by("id")
        if actor.group_ids is not None:
            groups = groups.filter(id__in=list(actor.group_ids))
        form.groups = [("", "全部技能组")] + [(str(g.id), g.name) for g in await groups]
        staff = Staff.filter(status="active").exclude(role="admin").order_by("id")
        if actor.group_ids is not None:
            staff = staff.filter(groups__id__in=list(actor.group_ids)).distinct()
        form.agents = [("", "全部客服")] + [(str(s.id), s.name) for s in await staff]
    return form


# ---- the pages ------------------------------------------------------------------------------------------------


def _today() -> date:
    return local(utcnow()).date()


def _page_view(page: Page) -> Any:
    @console_page(roles=page.roles)
    async def view(request: Request, ctx: Ctx) -> Response:
        assert ctx.actor is not None
        today = _today()
        flt = ReportFilter.from_params(request.query_params, today=today)
        sections = [section_view(await reports.section(actor=ctx.actor, flt=flt, name=name), flt)
                    for name in page.sections]
        extra: dict[str, Any] = {}
        if page.key == "reports.reception":
            extra["lost"] = await reports.lost_inbound(actor=ctx.actor, flt=flt)
            extra["accounts"] = {a.id: a.name or a.key for a in await ChannelAccount.all().only("id", "name", "key")}
            extra["lost_status"] = LOST_STATUS
        return render_console(
            request, ctx, f"console/dashboards/{page.template}", active=page.key, page=page, sections=sections,
            form=await filter_form(request, ctx.actor, flt, today), echarts=echarts_available(),
            channel_labels=CHANNEL_NAMES, export_url=export_url, base_drill=base_drill(flt),
            table_export_url=lambda fmt, which: table_export_url(fmt, which, flt),
            breadcrumb=[("数据报表", None), (page.label, None)], **extra)

    view.__name__ = page.key.replace(".", "_")
    return view


# ---- a table as a file --------------------------------------------------------------------------------------

LOST_COLUMNS = (("id", "编号"), ("account", "渠道账号"), ("channel", "渠道"), ("status", "状态"),
                ("attempts", "尝试次数"), ("error", "错误"), ("received_at", "收到时间"))


def table_export_url(fmt: str, which: str, flt: ReportFilter) -> str:
    """The download of one dashboard table as it is shown (accounts, missed questions, lost callbacks)."""
    return f"/console/reports/table-export?{urlencode({'format': fmt, 'table': which, **flt.to_params()})}"


async def _table_rows(actor: Actor, flt: ReportFilter, which: str) -> tuple[str, list[str], list[list[str]]]:
    section_key, _, table_key = which.partition(".")
    if which == "reception.lost":
        accounts = {a.id: a.name or a.key for a in await ChannelAccount.all().only("id", "name", "key")}
        lost = await reports.lost_inbound(actor=actor, flt=flt)
        body = [[str(r.id), accounts.get(r.account_id or 0, ""), CHANNEL_NAMES.get(r.channel, r.channel),
                 LOST_STATUS.get(r.status, r.status), str(r.attempts), r.error or "",
                 local(r.received_at).strftime("%Y-%m-%d %H:%M:%S")] for r in lost]
        return "丢失或处理失败的消息", [label for _, label in LOST_COLUMNS], body
    if (section_key, table_key) not in OWN_ROW_TABLES:
        raise BadRequest("没有这个表格", code="unknown_table")
    section = await reports.section(actor=actor, flt=flt, name=section_key)
    table = next((t for t in section.tables if t.key == table_key), None)
    if table is None:
        raise BadRequest("没有这个表格", code="unknown_table")
    return (table.label, [label for _, label in table.columns],
            [[_cell(k, row.get(k)) for k, _ in table.columns] for row in table.rows])


@console_page(roles=nav.ALL_ROLES)
async def table_export(request: Request, ctx: Ctx) -> Response:
    """Download a dashboard table that lists accounts, questions or callbacks (not tickets) as CSV or xlsx."""
    assert ctx.actor is not None
    params = dict(request.query_params)
    fmt, which = params.pop("format", "csv"), params.pop("table", "")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("导出格式只能是 csv 或 xlsx", code="bad_format")
    flt = ReportFilter.from_params(params, today=_today())
    title, header, body = await _table_rows(ctx.actor, flt, which)
    name = f"{title}_{flt.start.isoformat()}_{flt.end.isoformat()}.{fmt}"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(body)
        return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": disposition(name)})
    data = io.BytesIO()
    book = xlsxwriter.Workbook(data, {"in_memory": True})
    sheet = book.add_worksheet(title[:31])
    sheet.write_row(0, 0, header)
    for i, row in enumerate(body, start=1):
        sheet.write_row(i, 0, row)
    book.close()
    return Response(data.getvalue(), media_type=XLSX_TYPE, headers={"content-disposition": disposition(name)})


routes: list[BaseRoute] = [
    Route("/reports/table-export", table_export, methods=["GET"]),
    *(Route(page.path, _page_view(page), methods=["GET"]) for page in PAGES),
]
