"""The dashboards and the ticket list behind them, over ASGI, on a small week made through the real flows.

The week (Mon 2026-11-02 .. Sun 2026-11-08, China time) and the week before, worked out by hand:

    previous week   P1  公众号  Wed 10-28 10:00  李娜    resolved, rated 2
    this week       T1  公众号  Tue 11-03 10:00  李娜    resolved, rated 5
                    T2  公众号  Tue 11-03 14:00  王芳    resolved 11-04, rated 3
                    T3  邮件    Wed 11-04 10:00  李娜    answered, still open
                    T4  企业微信 Thu 11-05 09:30  李娜    raised in the chat sidebar, resolved
                    and a 公众号 chat that became no ticket (Wed), a callback that failed (Wed)

so this week: 4 tickets created (1 before: ↑ 300.0%), CSAT 4.00 (5 and 3; before 2.00: ↑ 100.0%), 4-5 share 50.0%,
公众号 2 tickets (T1, T2), Tuesday 10 时 1 ticket (T1), 1 ticket still open; 李娜 alone: CSAT 5.00.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app import intake
from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount, InboundEvent
from app.customers import service as customers
from app.reports import jobs
from app.reports.demo import demo_clock
from app.security.scope import actor_for
from app.staff.models import SkillGroup, Staff
from app.tickets import ratings
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import CHINA, utcnow
from h5.console import dashboards
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console
from tests.untranslated import leaks, visible_text

WEEK = "from=2026-11-02&to=2026-11-08"
PAGES = ("overview", "reception", "conversion", "satisfaction", "response", "workload", "bot")
CHART_JSON = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.S)
TICKET_ROW = re.compile(r'<tr data-ticket="([^"]+)">')


def cn(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA).astimezone(UTC)


class _Week:
    """Writes the week above through intake, the ticket service and the ratings, on the demo clock."""

    def __init__(self, move: Any, people: dict[str, Staff]) -> None:
        self.move, self.people, self.n = move, people, 0

    async def say(self, account: ChannelAccount, who: str, text: str, **kw: Any) -> intake.Outcome:
        self.n += 1
        await InboundEvent.create(channel_account=account, dedupe_key=f"t:{self.n}", payload="{}", status="done",
                                  processed_at=utcnow())
        msg = InboundMessage(channel=account.kind, channel_account_id=account.id,
                             sender_kind="email" if account.kind == "email" else "mp_openid", sender_id=who,
                             msg_type="text", provider_msg_id=f"t-{self.n}", created_at=utcnow(), text=text, **kw)
        return await intake.receive(inbound=msg, account=account)

    async def work(self, ticket: Ticket, userid: str, *, group: str, replied: datetime,
                   resolved: datetime | None, score: int | None) -> str:
        staff = self.people[userid]
        actor = await actor_for(staff)
        admin = await actor_for(self.people["admin"])
        group_id = (await SkillGroup.get(name=group)).id
        fresh = await Ticket.get(id=ticket.id)
        if fresh.group_id != group_id or fresh.assignee_id != staff.id:  # type: ignore[attr-defined]
            await tickets.update(actor=admin, ticket_id=ticket.id, expected_version=fresh.version,
                                 changes={"group_id": group_id, "assignee_id": staff.id})
        self.move(replied)
        await tickets.reply(actor=actor, ticket_id=ticket.id, text="您好，正在处理")
        if resolved is not None:
            self.move(resolved)
            await tickets.reply(actor=actor, ticket_id=ticket.id, text="已处理完毕", status="resolved")
        if score is not None:
            self.move((resolved or replied).replace(minute=50))
            await ratings.record_rating(ticket_id=ticket.id, score=score, channel="h5", source="h5_page")
        return fresh.number


@pytest.fixture
async def week(console: Console) -> dict[str, str]:
    people = console.h5.people
    mp = await ChannelAccount.get(key="default")
    mail = await ChannelAccount.create(kind="email", key="mail-test", name="客服邮箱", config={"every_message": True})
    numbers: dict[str, str] = {}
    with demo_clock(cn(10, 28, 9)) as move:
        w = _Week(move, people)
        move(cn(10, 28, 10))
        p1 = (await w.say(mp, "oP1", "订单 20261028001 退款还没到账")).ticket
        assert p1 is not None
        numbers["P1"] = await w.work(p1, "lina", group="一线客服组", replied=cn(10, 28, 10, 30),
                                     resolved=cn(10, 28, 12), score=2)
        move(cn(11, 3, 10))
        t1 = (await w.say(mp, "oA", "我要投诉你们的快递员")).ticket
        assert t1 is not None
        numbers["T1"] = await w.work(t1, "lina", group="一线客服组", replied=cn(11, 3, 10, 20),
                                     resolved=cn(11, 3, 12), score=5)
        move(cn(11, 3, 14))
        t2 = (await w.say(mp, "oB", "退款还没到账")).ticket
        assert t2 is not None
        numbers["T2"] = await w.work(t2, "wangfang", group="售后组", replied=cn(11, 3, 15),
                                     resolved=cn(11, 4, 9), score=3)
        move(cn(11, 4, 10))
        t3 = (await w.say(mail, "c3@example.com", "发票开错了", subject="发票开错了", thread_number="")).ticket
        assert t3 is not None
        numbers["T3"] = await w.work(t3, "lina", group="一线客服组", replied=cn(11, 4, 11), resolved=None,
                                     score=None)
        move(cn(11, 4, 16))
        assert (await w.say(mp, "oC", "你好")).ticket is None
        await InboundEvent.create(channel_account=mp, dedupe_key="t:lost", payload="{}", status="failed",
                                  attempts=5, error="消息解密失败")
        move(cn(11, 5, 9, 30))
        customer = await customers.resolve_identity(kind="external_userid", value="wmT4", name="赵先生")
        t4 = await intake.staff_ticket(actor=await actor_for(people["lina"]), customer=customer,
                                       subject="门店退货流程咨询", source="sidebar",
                                       group_id=(await SkillGroup.get(name="一线客服组")).id)
        numbers["T4"] = await w.work(t4, "lina", group="一线客服组", replied=cn(11, 5, 9, 45),
                                     resolved=cn(11, 5, 11), score=None)
    await jobs.rebuild(since=None)
    return numbers


def charts(html: str) -> dict[str, dict[str, Any]]:
    """The page's chart specs by series key."""
    specs = [json.loads(body) for _, body in CHART_JSON.findall(html)]
    return {s["key"]: s for s in specs}


def figure_card(html: str, key: str) -> str:
    match = re.search(rf'<div class="c-stat d-figure" data-figure="{key}">(.*?)</div>\s*\n?</div>', html, re.S)
    assert match, f"no figure {key}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


async def listed(client: httpx.AsyncClient, url: str) -> set[str]:
    r = await client.get(url)
    assert r.status_code == 200, r.text
    return set(TICKET_ROW.findall(r.text))


@pytest.fixture
def with_echarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboards, "echarts_available", lambda: True)


async def test_every_dashboard_renders_the_weeks_figures(console: Console, week: dict[str, str],
                                                         with_echarts: None) -> None:
    admin = await console.login(ADMIN)
    for name in PAGES:
        r = await admin.get(f"/console/reports/{name}?{WEEK}")
        assert r.status_code == 200, (name, r.text[-2000:])
        assert 'src="/static/vendor/echarts/echarts.min.js' in r.text and "/static/console/charts.js" in r.text
        assert leaks(visible_text(r.text)) == [], name  # everything a user reads is Chinese
    sat = (await admin.get(f"/console/reports/satisfaction?{WEEK}")).text
    assert figure_card(sat, "csat_avg").startswith("满意度平均分 4.00 ↑ 100.0%")
    assert 'd-change d-good' in re.search(r'data-figure="csat_avg">(.*?)</a>', sat, re.S).group(1)  # type: ignore[union-attr]
    assert figure_card(sat, "csat_positive_share").startswith("满意（4-5分）占比 50.0%")
    assert charts(sat)["distribution"]["series"][0]["values"] == [0, 0, 1, 0, 1]
    work = (await admin.get(f"/console/reports/workload?{WEEK}")).text
    assert figure_card(work, "created").startswith("新建工单 4 ↑ 300.0%")
    assert figure_card(work, "backlog").startswith("本期未解决 1")
    by_channel = charts(work)["by_channel"]
    assert dict(zip(by_channel["categories"], by_channel["series"][0]["values"], strict=True)) == {
        "公众号": 2, "邮件": 1, "企业微信": 1}  # T4 was raised in the chat sidebar
    heat = charts(work)["heatmap"]
    assert heat["kind"] == "heatmap" and [c[:3] for c in heat["cells"] if c[2]] == [
        [10, 1, 1], [14, 1, 1], [10, 2, 1], [9, 3, 1]]  # (hour, weekday-1, tickets): T1, T2, T3, T4
    reception = (await admin.get(f"/console/reports/reception?{WEEK}")).text
    assert "消息解密失败" in reception  # the failed callback is listed
    # 5 callbacks this week (oA, oB, c3, oC, the failed one), 4 processed; the week before 1 of 1
    assert figure_card(reception, "reception_rate") == "消息接收率 80.0% ↓ 20.0 个百分点 4 / 5"
    assert 'd-change d-bad' in re.search(r'data-figure="reception_rate">(.*?)</div>\s*</div>', reception,
                                         re.S).group(1)  # type: ignore[union-attr]
    conversion = (await admin.get(f"/console/reports/conversion?{WEEK}")).text
    assert figure_card(conversion, "conversion_rate").startswith("工单转化率 75.0%")  # oA, oB, c3 of oA, oB, c3, oC
    response = (await admin.get(f"/console/reports/response?{WEEK}")).text
    # first replies after 20 min (T1), 60 (T2), 60 (T3), 15 (T4): nearest-rank median 20 min, P90 60 min
    assert figure_card(response, "frt_wall_median").startswith("首次响应时长（自然时间，中位数） 20分")
    assert figure_card(response, "frt_wall_p90").startswith("首次响应时长（自然时间，P90） 1小时")
    overview = (await admin.get(f"/console/reports/overview?{WEEK}")).text
    assert figure_card(overview, "created").startswith("新建工单 4 ↑ 300.0%")
    assert charts(overview)["daily"]["series"][0]["values"] == [0, 2, 1, 1, 0, 0, 0]  # Tue T1 T2, Wed T3, Thu T4


async def test_a_segment_lists_exactly_its_tickets(console: Console, week: dict[str, str],
                                                   with_echarts: None) -> None:
    admin = await console.login(ADMIN)
    work = (await admin.get(f"/console/reports/workload?{WEEK}")).text
    by_channel = charts(work)["by_channel"]
    mp_url = by_channel["series"][0]["urls"][by_channel["categories"].index("公众号")]
    assert await listed(admin, mp_url) == {week["T1"], week["T2"]}
    tuesday_10 = next(c[3] for c in charts(work)["heatmap"]["cells"] if c[:2] == [10, 1])
    assert parse_qs(urlsplit(tuesday_10).query)["weekday"] == ["2"]
    assert await listed(admin, tuesday_10) == {week["T1"]}
    sat = (await admin.get(f"/console/reports/satisfaction?{WEEK}")).text
    five = charts(sat)["distribution"]["series"][0]["urls"][4]
    assert await listed(admin, five) == {week["T1"]}  # the one 5
    everything = await listed(admin, f"/console/tickets?{WEEK}")
    assert everything == {week["T1"], week["T2"], week["T3"], week["T4"]}  # P1 is the week before
    page = (await admin.get(mp_url)).text
    assert leaks(visible_text(page)) == []
    assert "当前条件" in page and "渠道：公众号" in page and f'href="/h5/tickets/{week["T1"]}"' in page


async def test_the_ticket_list_pages_through_every_ticket(console: Console, week: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from h5.console import tickets as console_tickets

    monkeypatch.setattr(console_tickets, "PAGE_SIZE", 3)
    admin = await console.login(ADMIN)
    first = (await admin.get(f"/console/tickets?{WEEK}")).text
    assert "共 4 条" in first and 'rel="next"' in first
    pages = [set(TICKET_ROW.findall(first)), await listed(admin, f"/console/tickets?{WEEK}&page=2")]
    assert [len(p) for p in pages] == [3, 1] and pages[0] | pages[1] == {week[k] for k in ("T1", "T2", "T3", "T4")}
    # newest first
    assert TICKET_ROW.findall(first) == [week["T4"], week["T3"], week["T2"]]


async def test_an_agent_sees_only_their_own_figures(console: Console, week: dict[str, str],
                                                    with_echarts: None) -> None:
    agent = await console.login(AGENT)
    sat = (await agent.get(f"/console/reports/satisfaction?{WEEK}")).text
    assert figure_card(sat, "csat_avg").startswith("满意度平均分 5.00")  # T1 only: 王芳's 3 is not hers
    assert 'name="agent"' not in sat and 'name="group"' not in sat  # no choosing other people
    assert await listed(agent, f"/console/tickets?{WEEK}") == {week["T1"], week["T3"], week["T4"]}
    wangfang = console.h5.people["wangfang"].id
    assert (await agent.get(f"/console/tickets?{WEEK}&agent={wangfang}")).status_code == 403
    for name in ("reception", "conversion", "bot"):
        r = await agent.get(f"/console/reports/{name}?{WEEK}")
        assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text
    lead = await console.login(LEAD)
    assert (await lead.get(f"/console/reports/reception?{WEEK}")).status_code == 200


async def test_without_echarts_every_chart_is_its_table(console: Console, week: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboards, "echarts_available", lambda: False)
    admin = await console.login(ADMIN)
    work = (await admin.get(f"/console/reports/workload?{WEEK}")).text
    assert "echarts.min.js" not in work and 'type="application/json"' not in work and 'class="chart' not in work
    assert "图表组件（ECharts）未安装，数据以表格显示" in work
    table = re.search(r'data-series="by_channel">.*?<details class="d-data" open>(.*?)</details>', work, re.S)
    assert table is not None
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", table.group(1))
    assert ("公众号", "2") in rows


async def test_export_downloads_the_segments_rows(console: Console, week: dict[str, str]) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(f"/console/tickets/export?format=csv&{WEEK}&channel=wechat_mp")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    assert week["T1"] in text and week["T2"] in text and week["T3"] not in text
    r = await admin.get(f"/console/tickets/export?format=xlsx&{WEEK}")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    assert "attachment" in r.headers["content-disposition"]
    assert (await admin.get(f"/console/tickets/export?format=pdf&{WEEK}")).status_code == 400


async def test_tables_of_other_things_export_as_shown(console: Console, week: dict[str, str]) -> None:
    from openpyxl import load_workbook

    admin = await console.login(ADMIN)
    reception = (await admin.get(f"/console/reports/reception?{WEEK}")).text
    assert "/console/reports/table-export?format=xlsx&amp;table=reception.lost" in reception
    r = await admin.get(f"/console/reports/table-export?format=csv&table=reception.lost&{WEEK}")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "编号,渠道账号,渠道,状态,尝试次数,错误,收到时间"
    assert len(lines) == 2 and ",测试号,公众号,处理失败,5,消息解密失败," in lines[1]
    r = await admin.get(f"/console/reports/table-export?format=xlsx&table=reception.by_account&{WEEK}")
    path = console.h5.settings.data_dir / "by_account.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(r.content)
    rows = list(load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert rows[0][:3] == ("账号", "渠道", "接收") and ("测试号", "公众号", "4") == rows[1][:3]  # oA oB oC + failed
    assert (await admin.get(f"/console/reports/table-export?table=volume.heatmap&{WEEK}")).status_code == 400
    agent = await console.login(AGENT)
    assert (await agent.get(f"/console/reports/table-export?table=reception.lost&{WEEK}")).status_code == 403


async def test_bad_periods_are_a_clear_400(console: Console, week: dict[str, str]) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get("/console/reports/overview?from=2026-11-08&to=2026-11-01")
    assert r.status_code == 400 and "结束日期不能早于开始日期" in r.text
    r = await admin.get("/console/tickets?from=bad")
    assert r.status_code == 400
    assert (await admin.get(f"/console/tickets?{WEEK}&page=0")).status_code == 400


def test_period_presets() -> None:
    from datetime import date

    presets = {k: (a.isoformat(), b.isoformat()) for k, _, a, b in dashboards.period_presets(date(2026, 3, 15))}
    assert presets == {"today": ("2026-03-15", "2026-03-15"), "7d": ("2026-03-09", "2026-03-15"),
                       "30d": ("2026-02-14", "2026-03-15"), "month": ("2026-03-01", "2026-03-15"),
                       "last_month": ("2026-02-01", "2026-02-28")}


@pytest.mark.parametrize(("key", "unit", "value", "previous", "shown"), [
    ("csat_avg", "score", 4.0, 2.0, {"arrow": "↑", "text": "100.0%", "tone": "good"}),
    ("reception_rate", "ratio", 0.8, 1.0, {"arrow": "↓", "text": "20.0 个百分点", "tone": "bad"}),
    ("bot_resolution_rate", "ratio", 0.4, 0.3, {"arrow": "↑", "text": "10.0 个百分点", "tone": "good"}),
    ("frt_business_median", "seconds", 1800.0, 1200.0, {"arrow": "↑", "text": "50.0%", "tone": "bad"}),
    ("breached", "count", 3.0, 5.0, {"arrow": "↓", "text": "40.0%", "tone": "good"}),
    ("created", "count", 30.0, 20.0, {"arrow": "↑", "text": "50.0%", "tone": "flat"}),
    ("backlog", "count", 4.0, 0.0, {"arrow": "↑", "text": "4", "tone": "bad"}),
    ("csat_avg", "score", 4.0, None, {"arrow": "", "text": "上期无数据", "tone": "none"}),
    ("sla_attainment", "ratio", 0.9, 0.9, {"arrow": "→", "text": "与上期持平", "tone": "flat"}),
])
def test_the_change_from_the_previous_period(key: str, unit: str, value: float, previous: float | None,
                                             shown: dict[str, str]) -> None:
    from app.reports.service import figure

    assert dashboards.fmt_change(figure(key, "", unit, value, previous)) == shown
