"""Browser tier for the dashboards: Debian's Chromium (Playwright) at 1440×900 against `gongdan serve` as a real
uvicorn process, the simulator playing WeCom, and the demo month (`gongdan seed-demo --month`) as the traffic.

The admin logs in with the QR-code login (the simulator's wwlogin page; the development login is off), every
dashboard draws its charts from the seeded month (a canvas per chart, data in every main chart), a click on the
公众号 bar of the workload page lands on exactly the 公众号 tickets of the period (checked against the database), and
the ticket list's Excel export reads back with openpyxl. Screenshots land in tests/_artifacts/console/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.timeutil import CHINA
from tests.browser import DESKTOP, ROOT, Desk, browser, qr_login, require_browser, screenshots, wechat_desk

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

ECHARTS = ROOT / "static" / "vendor" / "echarts" / "echarts.min.js"
AGENT_ID, AGENT_SECRET = 1000002, "console-browser-secret-0123456789"
#: each dashboard and the series whose chart must show data from the month
DASHBOARDS = {"overview": "daily", "reception": "by_account_reception_rate", "conversion": "by_reason",
              "satisfaction": "distribution", "response": "by_group_frt_business_avg", "workload": "by_channel",
              "bot": "handoff_reasons"}
_shot = screenshots("console")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    require_browser()  # a missing browser tier is the reason given before a missing ECharts
    if not ECHARTS.is_file():
        pytest.skip("ECharts is not installed (run `make assets`; `make test` does)")
    with wechat_desk(tmp_path_factory, "console-browser", secret_key="console-browser-secret-key-0123456789-abcdef",
                     agent_id=AGENT_ID, agent_secret=AGENT_SECRET, users=[("admin", "管理员")], seed=["--month"],
                     KB_EMBEDDER="off") as running:
        yield running


@pytest.fixture(scope="module")
def page(desk: Desk, browser: Any) -> Iterator[Any]:
    """A desktop Chromium page logged in as the admin through the QR-code login."""
    context = browser.new_context(**DESKTOP, accept_downloads=True)
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    qr_login(p, desk.url, "/console/reports/overview", "管理员")
    p.errors = errors  # type: ignore[attr-defined]
    yield p
    context.close()


def _charts_drawn(p: Any) -> list[dict[str, Any]]:
    """Wait until charts.js has drawn every chart; each chart's series key, canvas and data total."""
    # polled from here: wait_for_function evaluates a string in the page, which the console's CSP forbids
    deadline = time.monotonic() + 15
    while not p.evaluate("() => document.querySelectorAll('.chart[data-chart]').length === "
                         "document.querySelectorAll('.chart[data-drawn]').length"):
        assert time.monotonic() < deadline, "charts were not drawn"
        time.sleep(0.1)
    return list(p.evaluate("""() => Array.from(document.querySelectorAll('.chart[data-chart]')).map(el => {
        const spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
        const values = spec.cells ? spec.cells.map(c => c[2]) : spec.series.flatMap(s => s.values);
        return {key: spec.key, canvas: !!el.querySelector('canvas'), visible: el.offsetHeight > 100,
                total: values.reduce((a, v) => a + (v || 0), 0)};
    })"""))


def test_each_dashboard_draws_the_month(desk: Desk, page: Any) -> None:
    for name, main in DASHBOARDS.items():
        page.goto(f"{desk.url}/console/reports/{name}")
        charts = _charts_drawn(page)
        _shot(page, f"dashboard-{name}")
        assert charts, name
        assert all(c["canvas"] and c["visible"] for c in charts), (name, charts)
        if main is not None:
            assert next(c for c in charts if c["key"] == main)["total"] > 0, (name, charts)
        assert "—" not in page.inner_text(".d-figure .c-stat-value >> nth=0"), name
    assert not [e for e in page.errors if "Content Security Policy" in e or "echarts" in e.lower()]


def test_clicking_a_bar_lands_on_exactly_its_tickets(desk: Desk, page: Any) -> None:
    page.goto(f"{desk.url}/console/reports/workload")
    _charts_drawn(page)
    point = page.evaluate("""() => {
        const chart = [...document.querySelectorAll('.chart[data-chart]')].map(e => ({e,
            spec: JSON.parse(document.getElementById(e.dataset.chart).textContent)}))
            .find(c => c.spec.key === 'by_channel');
        const i = chart.spec.categories.indexOf('公众号');
        const value = chart.spec.series[0].values[i];
        const inst = echarts.getInstanceByDom(chart.e);
        const [x, y] = inst.convertToPixel({seriesIndex: 0}, [i, value / 2]);
        chart.e.scrollIntoView();
        const again = chart.e.getBoundingClientRect();
        return {x: again.left + x, y: again.top + y, value: value, url: chart.spec.series[0].urls[i]};
    }""")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(lambda url: "/console/tickets?" in url)
    _shot(page, "tickets-from-chart")
    query = parse_qs(urlsplit(page.url).query)
    assert query["channel"] == ["wechat_mp"]
    start, end = query["from"][0], query["to"][0]
    listed = set(page.eval_on_selector_all("tr[data-ticket]", "rows => rows.map(r => r.dataset.ticket)"))
    lo = datetime.fromisoformat(start).replace(tzinfo=CHINA).astimezone(UTC)
    hi = (datetime.fromisoformat(end) + timedelta(days=1)).replace(tzinfo=CHINA).astimezone(UTC)
    expected = {n for (n, created) in desk.query(
        "SELECT t.number, t.created_at FROM ticket t JOIN channel_account a ON a.id = t.channel_account_id "
        "WHERE a.kind = 'wechat_mp'") if lo <= datetime.fromisoformat(created).astimezone(UTC) < hi}
    assert expected and listed == expected
    assert len(listed) == point["value"]


def test_the_ticket_list_exports_an_xlsx_that_reads_back(desk: Desk, page: Any, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    page.goto(f"{desk.url}/console/tickets?channel=wechat_mp")
    listed = page.eval_on_selector_all("tr[data-ticket]", "rows => rows.map(r => r.dataset.ticket)")
    with page.expect_download() as download:
        page.click("text=导出 Excel")
    target = tmp_path / "export.xlsx"
    download.value.save_as(target)
    sheet = load_workbook(target, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert "工单号" in header
    numbers = {r[header.index("工单号")] for r in body}
    assert numbers == set(listed) and len(body) == len(listed)
