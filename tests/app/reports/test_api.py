"""The reports API: scopes (admin and lead their scope, agents their own), drill-down, exports read back."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import openpyxl

from app.tickets.models import SlaPolicy
from app.timeutil import set_clock
from tests import factories
from tests.app.reports import dataset

PERIOD = {"from": "2026-11-09", "to": "2026-11-15"}


async def _setup() -> dict[str, Any]:
    data = await factories.org()
    people = data["people"]
    data["headers"] = {k: {"Authorization": f"Bearer {await factories.token(v)}"} for k, v in people.items()}
    policy = await SlaPolicy.create(name="标准", first_response_minutes=30, resolution_minutes=480)
    data["ids"] = await dataset.load(g1=data["groups"]["service"].id, g2=data["groups"]["tech"].id,
                                     a1=people["agent"].id, a2=people["tech"].id, policy_id=policy.id)
    set_clock(lambda: datetime(2026, 11, 16, tzinfo=UTC))
    return data


async def test_sections_by_role(api: httpx.AsyncClient) -> None:
    data = await _setup()
    h = data["headers"]
    r = await api.get("/api/v1/reports", headers=h["agent"])
    assert r.status_code == 200 and r.json()["items"][0] == {"key": "overview", "title": "概览"}
    r = await api.get("/api/v1/reports/volume", params=PERIOD, headers=h["admin"])
    assert r.status_code == 200, r.text
    created = next(f for f in r.json()["figures"] if f["key"] == "created")
    assert (created["value"], created["previous"], created["change"], created["drill"]) == (
        5, 2, 3, {"from": "2026-11-09", "to": "2026-11-15"})
    r = await api.get("/api/v1/reports/volume", params=PERIOD, headers=h["lead"])
    assert next(f for f in r.json()["figures"] if f["key"] == "created")["value"] == 3
    r = await api.get("/api/v1/reports/volume", params=PERIOD, headers=h["agent"])
    assert next(f for f in r.json()["figures"] if f["key"] == "created")["value"] == 3
    assert r.json()["filter"]["agent"] == str(data["people"]["agent"].id)
    # an agent asking for somebody else, or for a channel-level report: 403 in Chinese
    r = await api.get("/api/v1/reports/volume", params={**PERIOD, "agent": data["people"]["tech"].id},
                      headers=h["agent"])
    assert (r.status_code, r.json()["error"]["code"]) == (403, "reports_own_only")
    r = await api.get("/api/v1/reports/reception", params=PERIOD, headers=h["agent"])
    assert (r.status_code, r.json()["error"]["message"]) == (403, "只有管理员和组长可以查看渠道数据")
    r = await api.get("/api/v1/reports/nothing", headers=h["admin"])
    assert r.status_code == 404
    r = await api.get("/api/v1/reports/volume", params={"from": "2026-11-20", "to": "2026-11-01"},
                      headers=h["admin"])
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_period")
    r = await api.get("/api/v1/reports/volume", params=PERIOD)
    assert r.status_code == 401


async def test_drill_lists_exactly_the_segment(api: httpx.AsyncClient) -> None:
    data = await _setup()
    r = await api.get("/api/v1/reports/volume", params=PERIOD, headers=data["headers"]["admin"])
    heat = next(s for s in r.json()["series"] if s["key"] == "heatmap")
    cell = next(p for p in heat["points"] if p["key"] == "2:14")
    r = await api.get("/api/v1/reports/drill", params=cell["drill"], headers=data["headers"]["admin"])
    assert r.status_code == 200, r.text
    assert (r.json()["total"], [i["number"] for i in r.json()["items"]]) == (1, ["GD-2"])
    r = await api.get("/api/v1/reports/drill", params={**PERIOD, "backlog": "1"}, headers=data["headers"]["lead"])
    assert [i["number"] for i in r.json()["items"]] == []  # T3, T4 belong to the tech group
    r = await api.get("/api/v1/reports/drill", params={**PERIOD, "hour": "25"}, headers=data["headers"]["admin"])
    assert r.status_code == 400


async def test_exports_csv_and_xlsx_read_back(api: httpx.AsyncClient) -> None:
    data = await _setup()
    h = data["headers"]["admin"]
    r = await api.get("/api/v1/reports/export", params={**PERIOD, "reason": "keyword"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="gongdan-tickets-2026-11-09-2026-11-15.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][:5] == ["工单号", "渠道", "技能组", "坐席", "状态"]
    assert [(row[0], row[1], row[2], row[3], row[9], row[12]) for row in table[1:]] == [
        ("GD-1", "公众号", "客服组", "客服", "600", "3600"), ("GD-5", "公众号", "客服组", "客服", "60", "600")]

    r = await api.get("/api/v1/reports/export", params={**PERIOD, "format": "xlsx"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "工单号" and rows[0][20] == "满意度"
    assert [(row[0], row[6], row[20], row[21]) for row in rows[1:]] == [
        ("GD-1", "2026-11-10 10:00:00", 5, "关键词"), ("GD-2", "2026-11-10 14:00:00", 3, "转人工"),
        ("GD-3", "2026-11-12 09:00:00", None, "员工创建"), ("GD-4", "2026-11-14 20:00:00", None, "渠道策略"),
        ("GD-5", "2026-11-15 11:00:00", None, "关键词")]

    r = await api.get("/api/v1/reports/export", params={**PERIOD, "kind": "conversation", "format": "xlsx"},
                      headers=h)
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
    assert sheet is not None
    conv_rows = list(sheet.iter_rows(values_only=True))
    assert [(row[0], row[6], row[7]) for row in conv_rows[1:]] == [
        (1, "是", None), (2, "否", "GD-2"), (3, "否", "GD-1"), (4, "否", None)]
    # an agent exports only their own tickets, and no conversations
    r = await api.get("/api/v1/reports/export", params=PERIOD, headers=data["headers"]["agent"])
    assert [row[0] for row in list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[1:]] == [
        "GD-1", "GD-2", "GD-5"]
    r = await api.get("/api/v1/reports/export", params={**PERIOD, "kind": "conversation"},
                      headers=data["headers"]["agent"])
    assert r.status_code == 403
