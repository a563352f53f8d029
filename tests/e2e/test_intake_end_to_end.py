"""The intake journeys on a real `gongdan serve` (embedded on SQLite, and MariaDB + Redis + an arq worker), with the
simulator playing WeChat: a VIP's first message after hours, and a customer with two open tickets replying.

Nothing is faked on the desk's side: the clock is the real one, so the after-hours test gives the after-sales group a
calendar that opens at the next minute boundary and waits for the real assignment cron to hand the ticket out.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from tests.e2e.conftest import APPID, ROOT, Desk, gongdan

CHINA = ZoneInfo("Asia/Shanghai")
WEEKDAY_NAMES = "一二三四五六日"

#: run inside the desk's environment: a customer known through WeCom as a VIP, holding the unionid WeChat will give
MAKE_VIP = """
import asyncio, sys
from tortoise import Tortoise
from app.db import tortoise_config
from app.settings import load_settings
from app.customers.models import Customer, CustomerIdentity

async def main():
    await Tortoise.init(config=tortoise_config(load_settings()))
    vip = await Customer.create(name="钱女士", vip_level=1)
    await CustomerIdentity.create(customer=vip, kind="unionid", value=sys.argv[1])
    print(vip.id)
    await Tortoise.close_connections()

asyncio.run(main())
"""


def _python(desk: Desk, script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=desk.env, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()


def _sql(desk: Desk, query: str, *args: Any) -> list[tuple[Any, ...]]:
    url = desk.env["DATABASE_URL"]
    if url.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
            return list(conn.execute(query.replace("%s", "?"), args).fetchall())
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=url.rsplit("/", 1)[1],
                           autocommit=True, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def _opening_in_a_moment(now: datetime) -> datetime:
    """The next minute boundary at least 20 seconds away (time for the message to be parked first)."""
    return (now + timedelta(seconds=80)).replace(second=0, microsecond=0)


def _calendar_opening_at(now: datetime, opens: datetime, tmp: Path) -> Path:
    """An SLA document giving 售后组 a calendar closed from `now` until `opens`, then open around the clock.

    The days after are open so that the calendar still holds the SLA targets of the tickets the later journeys
    open when `opens` is a minute before midnight (one minute a week would never hold them)."""
    weekly: dict[str, list[list[str]]] = {str(d): [["00:00", "24:00"]] for d in range(1, 8)}
    weekly[str(now.isoweekday())] = []
    weekly[str(opens.isoweekday())] = [[opens.strftime("%H:%M"), "24:00"]]
    document = {
        "calendars": [{"name": "旅程测试", "timezone": "Asia/Shanghai", "public_holidays": False, "weekly": weekly,
                       "extra_days_off": [], "extra_workdays": []}],
        "groups": {"售后组": {"calendar": "旅程测试", "assignment": "round_robin"}},
    }
    path = tmp / "journey-calendar.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def _send(desk: Desk, openid: str, text: str) -> None:
    result = asyncio.run(desk.driver.send_text(openid, text))
    assert result.delivered, result.attempts


def _tickets_of(desk: Desk, customer_id: int) -> list[dict[str, Any]]:
    with desk.client() as c:
        return list(c.get("/api/v1/tickets", params={"customer_id": customer_id}).json()["items"])


def test_a_vip_first_message_after_hours_is_parked_told_and_assigned_when_the_group_opens(
        desk: Desk, tmp_path: Path) -> None:
    now = datetime.now(CHINA)
    opens = _opening_in_a_moment(now)
    gongdan(desk.env, "sla", "import", str(_calendar_opening_at(now, opens, tmp_path)))
    openid = "oJourney" + uuid.uuid4().hex[:18]
    unionid = "oUJourney" + uuid.uuid4().hex[:18]
    desk.sim.mp.set_user(APPID, openid, unionid=unionid)
    vip_id = int(_python(desk, MAKE_VIP, unionid))

    _send(desk, openid, "我要投诉，快递三天没动了")
    tickets = desk.wait_for(lambda: _tickets_of(desk, vip_id))
    ticket = tickets[0]
    group_id = int(_sql(desk, "SELECT id FROM skill_group WHERE name = %s", "售后组")[0][0])
    assert (ticket["group_id"], ticket["priority"], ticket["tags"], ticket["assignee_id"]) == (
        group_id, "urgent", ["VIP"], None)
    # told when we open, and nobody woken: no card to staff while the ticket waits
    told = (f"您好，现在是非工作时间，您的工单 {ticket['number']} 已登记，售后组将于"
            f"{opens.month}月{opens.day}日（周{WEEKDAY_NAMES[opens.weekday()]}）{opens:%H:%M}开始处理，请耐心等待。")
    desk.wait_for(lambda: told in [m.body.get("text", {}).get("content")
                                   for m in desk.sim.sent_messages(touser=openid)])
    cards = "SELECT recipient FROM outbox_message WHERE channel = 'wecom_app' AND ticket_id = %s"
    assert _sql(desk, cards, ticket["id"]) == []

    # the group opens; the assignment cron hands the ticket to the group's member, who gets the card
    assigned = desk.wait_for(lambda: _tickets_of(desk, vip_id)[0]["assignee_id"], timeout=200)
    wangfang = int(_sql(desk, "SELECT id FROM staff WHERE userid = %s", "wangfang")[0][0])
    assert assigned == wangfang
    assert datetime.now(CHINA) >= opens
    assert [r[0] for r in _sql(desk, cards, ticket["id"])] == ["wangfang"]


def test_a_customer_with_two_open_tickets_answers_the_one_waiting_for_them(desk: Desk) -> None:
    openid = "oTwoTickets" + uuid.uuid4().hex[:15]
    _send(desk, openid, "我要投诉，快递员态度很差")
    rows = desk.wait_for(lambda: _sql(desk, "SELECT customer_id FROM customer_identity WHERE value = %s", openid))
    customer_id = int(rows[0][0])
    first = desk.wait_for(lambda: _tickets_of(desk, customer_id))[0]
    with desk.client() as c:
        # staff ask the customer something on the first ticket, and open a second one for the same customer
        r = c.post(f"/api/v1/tickets/{first['id']}/messages", json={"text": "请问是哪天的快递？", "status": "pending"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/tickets", json={"customer_id": customer_id, "subject": "退款还没到账"})
        assert r.status_code == 201, r.text
        second = r.json()
    _send(desk, openid, "是上周五的快递，我的电话 13912345678，邮箱 zhang.san@example.com，有事联系我")
    desk.wait_for(lambda: _sql(desk, "SELECT status FROM ticket WHERE id = %s", first["id"]) == [("open",)])
    joined = "SELECT ticket_id FROM message WHERE direction = 'in' AND text = %s"
    replied = "SELECT ticket_id FROM message WHERE direction = 'in' AND text LIKE %s"
    assert _sql(desk, replied, "是上周五的快递%") == [(first["id"],)]
    # naming the other ticket's number sends the message there
    _send(desk, openid, f"另外 {second['number']} 的退款什么时候到？")
    desk.wait_for(lambda: _sql(desk, joined, f"另外 {second['number']} 的退款什么时候到？"))
    assert _sql(desk, joined, f"另外 {second['number']} 的退款什么时候到？") == [(second["id"],)]


def _text_columns(desk: Desk) -> dict[str, list[str]]:
    """Every char/text/JSON column of every table of the desk's database."""
    if desk.env["DATABASE_URL"].startswith("sqlite://"):
        tables = [r[0] for r in _sql(desk, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [str(c[1]) for c in _sql(desk, f'PRAGMA table_info("{t}")')
                    if any(k in str(c[2]).upper() for k in ("CHAR", "TEXT", "JSON"))] for t in tables}
    rows = _sql(desk, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                      "DATABASE() AND data_type IN ('char', 'varchar', 'text', 'mediumtext', 'longtext', 'json')")
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), []).append(str(column))
    return out


def test_no_personal_data_or_secret_in_clear_in_the_database_or_the_logs_after_the_journeys(desk: Desk) -> None:
    """PIPL: after the journeys above (a phone and an e-mail written in a message), no table and no process log
    holds a phone number, an ID-card number or an e-mail address in clear, nor a secret of the deployment."""
    from app.security.pii import find_pii

    quote = '"' if desk.env["DATABASE_URL"].startswith("sqlite://") else "`"
    found: dict[str, list[str]] = {}
    scanned = 0
    for table, all_columns in _text_columns(desk).items():
        # hex digests (row_hash, phone_hash, ...) are not personal data, but 11 of their digits can look like a phone
        columns = [c for c in all_columns if not c.endswith("hash")]
        if not columns:
            continue
        listed = ", ".join(f"{quote}{c}{quote}" for c in columns)
        for row in _sql(desk, f"SELECT {listed} FROM {quote}{table}{quote}"):
            for column, value in zip(columns, row, strict=True):
                text = value.decode() if isinstance(value, bytes) else value
                if isinstance(text, str):
                    scanned += 1
                    for start, end, _, _ in find_pii(text):
                        found.setdefault(f"{table}.{column}", []).append(text[start:end])
    assert scanned > 100
    assert found == {}
    secrets = [desk.env["SECRET_KEY"], desk.env["WECHAT_APP_SECRET"], desk.env["WECHAT_AES_KEY"]]
    for log in desk.logs:
        text = log.read_text(errors="replace")
        assert [(log.name, s, e) for s, e, _, _ in find_pii(text)] == []
        assert [s for s in secrets if s in text] == []
