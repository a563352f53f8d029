"""Exports of the rows behind a drill: one row per ticket or per conversation, as CSV or xlsx.

Rows are read from the fact tables in keyset pages (never the whole range at once). CSV is streamed as it is read
(UTF-8 with a BOM, so Excel opens the Chinese headers right). xlsx is written by XlsxWriter in ``constant_memory``
mode (each row is flushed to disk as it is written, so a million rows take the memory of one) into a temporary
file that the endpoint streams and then deletes. No customer names, phone numbers or message texts are exported:
the rows carry ids, numbers, times and figures only.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter

from app.db import reader
from app.reports.models import ReportConversationFact, ReportTicketFact
from app.reports.service import (
    CHANNEL_LABELS,
    HANDOFF_LABELS,
    REASON_LABELS,
    Drill,
    drill_q,
    drill_scope,
)
from app.security.scope import Actor
from app.staff.models import SkillGroup, Staff
from app.timeutil import CHINA

PAGE = 2000
SLA_LABELS = {"met": "达成", "breached": "超时", "running": "进行中"}
STATUS_LABELS = {"new": "新建", "open": "处理中", "pending": "待客户回复", "resolved": "已解决", "closed": "已关闭"}

Getter = Callable[[Any, dict[str, dict[int, str]]], Any]


def _t(value: datetime | None) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if value else ""


#: (header, value of a ReportTicketFact)
TICKET_COLUMNS: tuple[tuple[str, Getter], ...] = (
    ("工单号", lambda f, n: f.number),
    ("渠道", lambda f, n: CHANNEL_LABELS.get(f.channel, f.channel)),
    ("技能组", lambda f, n: n["group"].get(f.group_id or 0, "")),
    ("坐席", lambda f, n: n["staff"].get(f.agent_id or 0, "")),
    ("状态", lambda f, n: STATUS_LABELS.get(f.status, f.status)),
    ("优先级", lambda f, n: f.priority),
    ("创建时间", lambda f, n: _t(f.created_at)),
    ("首次响应时间", lambda f, n: _t(f.first_response_at)),
    ("解决时间", lambda f, n: _t(f.resolved_at)),
    ("首次响应时长（工作秒）", lambda f, n: f.frt_business),
    ("首次响应时长（自然秒）", lambda f, n: f.frt_wall),
    ("再次响应时长（工作秒）", lambda f, n: f.nrt_business),
    ("解决时长（工作秒）", lambda f, n: f.resolution_business),
    ("解决时长（自然秒）", lambda f, n: f.resolution_wall),
    ("处理时长（秒）", lambda f, n: f.handling_wall),
    ("重开次数", lambda f, n: f.reopened),
    ("SLA 首次响应", lambda f, n: SLA_LABELS.get(f.sla_first or "", "")),
    ("SLA 再次响应", lambda f, n: SLA_LABELS.get(f.sla_next or "", "")),
    ("SLA 解决", lambda f, n: SLA_LABELS.get(f.sla_resolution or "", "")),
    ("升级次数", lambda f, n: f.escalations),
    ("满意度", lambda f, n: f.csat),
    ("转化原因", lambda f, n: REASON_LABELS.get(f.reason_group, f.reason_group)),
    ("转人工原因", lambda f, n: HANDOFF_LABELS.get(f.handoff or "", f.handoff or "")),
    ("回复数", lambda f, n: f.replies),
)

#: (header, value of a ReportConversationFact)
CONVERSATION_COLUMNS: tuple[tuple[str, Getter], ...] = (
    ("会话 ID", lambda c, n: c.conversation_id),
    ("渠道", lambda c, n: CHANNEL_LABELS.get(c.channel, c.channel)),
    ("开始时间", lambda c, n: _t(c.started_at)),
    ("客户消息数", lambda c, n: c.messages_in),
    ("发出消息数", lambda c, n: c.messages_out),
    ("机器人消息数", lambda c, n: c.bot_messages),
    ("机器人独立解决", lambda c, n: "是" if c.bot_resolved else "否"),
    ("工单号", lambda c, n: c.ticket_number or ""),
    ("转化原因", lambda c, n: REASON_LABELS.get(c.reason_group, c.reason_group)),
    ("转人工原因", lambda c, n: HANDOFF_LABELS.get(c.handoff or "", c.handoff or "")),
    ("技能组", lambda c, n: n["group"].get(c.group_id or 0, "")),
    ("坐席", lambda c, n: n["staff"].get(c.agent_id or 0, "")),
)


def columns(drill: Drill) -> tuple[tuple[str, Getter], ...]:
    """The columns of a drill's export."""
    return CONVERSATION_COLUMNS if drill.kind == "conversation" else TICKET_COLUMNS


async def rows(*, actor: Actor, drill: Drill, page: int = PAGE) -> AsyncIterator[list[Any]]:
    """The export's data rows, oldest first, read a page at a time (the caller's scope applied)."""
    drill, scope = drill_scope(actor, drill)
    # a generator's reads name their connection: a context variable set here would outlive the yields
    db = reader()
    names = {"group": dict(await SkillGroup.all().using_db(db).values_list("id", "name")),
             "staff": dict(await Staff.all().using_db(db).values_list("id", "name"))}
    cols = columns(drill)
    q = drill_q(drill, scope)
    last = 0
    while True:
        batch: list[Any]
        if drill.kind == "conversation":
            batch = await ReportConversationFact.filter(q, conversation_id__gt=last).using_db(db).order_by(
                "conversation_id").limit(page)
            if batch:
                last = batch[-1].conversation_id
        else:
            batch = await ReportTicketFact.filter(q, ticket_id__gt=last).using_db(db).order_by("ticket_id").limit(
                page)
            if batch:
                last = batch[-1].ticket_id
        for item in batch:
            yield [get(item, names) for _, get in cols]
        if len(batch) < page:
            return


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


async def csv_chunks(*, actor: Actor, drill: Drill) -> AsyncIterator[bytes]:
    """The CSV export, streamed: a BOM and the header, then a chunk per page of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for header, _ in columns(drill)])
    pending = 0
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    async for row in rows(actor=actor, drill=drill):
        writer.writerow([_cell(v) for v in row])
        pending += 1
        if pending >= PAGE:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


async def xlsx_file(*, actor: Actor, drill: Drill) -> Path:
    """Write the xlsx export to a temporary file (the caller deletes it) and return its path."""
    fd, name = tempfile.mkstemp(prefix="gongdan-report-", suffix=".xlsx")
    os.close(fd)
    path = Path(name)
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                               "strings_to_formulas": False, "strings_to_urls": False})
    try:
        sheet = workbook.add_worksheet("会话" if drill.kind == "conversation" else "工单")
        bold = workbook.add_format({"bold": True})
        for c, (header, _) in enumerate(columns(drill)):
            sheet.write_string(0, c, header, bold)
        r = 1
        async for row in rows(actor=actor, drill=drill):
            for c, value in enumerate(row):
                if value is None or value == "":
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sheet.write_number(r, c, value)
                else:
                    # write_string: a text that looks like a formula stays text (no CSV/xlsx injection)
                    sheet.write_string(r, c, str(value))
            r += 1
    except BaseException:
        workbook.close()
        os.unlink(name)
        raise
    workbook.close()
    return path


def filename(drill: Drill, fmt: str) -> str:
    """The download's file name (ASCII, so every browser keeps it)."""
    kind = "conversations" if drill.kind == "conversation" else "tickets"
    return f"gongdan-{kind}-{drill.start.isoformat()}-{drill.end.isoformat()}.{fmt}"
