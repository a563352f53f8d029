"""微信客服 (kf) end to end: customers write in the simulator, WeCom's ``kf_msg_or_event`` callback reaches a real
``gongdan serve`` process (MariaDB, Redis), and real ``gongdan worker`` processes pull the messages with
``kf/sync_msg`` page by page (GitHub issue 7, "Must hold").

Each test uses its own open_kfid (its own cursor and ``channel_account`` with ``sync_limit`` 20, so 50 messages are
three pages) and turns the account inactive when done, so the recovery cron of later tests leaves it alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer, SimulatorState
from simulator.wecom.driver import WeComDriver
from simulator.wecom.kf import KfState, kf_state
from simulator.wecom.orggen import add_default_apps, load_demo_org
from tests.conftest import redis_url_or_skip
from tests.e2e.conftest import _mysql_database, _wait_ready, free_port, gongdan, poll_until, spawn, tail_logs

pytestmark = pytest.mark.mysql

AGENT_ID = 1000002
APP_SECRET = "sim-agent-secret"
TOKEN = "simwecomtoken"
AES_KEY = "SimWeComAesKey0123456789abcdefghijklmnopqrs"
PAGE = 20
COUNT = 50


@dataclass
class KfDesk:
    url: str
    env: dict[str, str]
    db: str
    sim: SimulatorState
    kf: KfState
    driver: WeComDriver
    tmp: Path
    token: str
    logs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None

    # -- the database, read and written the way an operator would ----------------------------------------------
    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=self.db,
                               autocommit=True, charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def add_kf_account(self, open_kfid: str, *, recovery: bool = True) -> None:
        """What an admin does: the kf account in the simulator, its channel account in the desk (20 a page).
        ``recovery=False`` keeps the minutely token-less recovery pull (active accounts only) off it, so the
        only pulls are the callbacks'."""
        self.kf.add_account(open_kfid, "售后客服")
        self.sql("INSERT INTO channel_account (kind, `key`, name, config, is_default, active, created_at) "
                 "VALUES ('wecom_kf', %s, '售后客服', %s, 0, %s, UTC_TIMESTAMP(6))",
                 open_kfid, json.dumps({"open_kfid": open_kfid, "sync_limit": PAGE, "bot": False}), int(recovery))

    def sync_calls(self, open_kfid: str) -> list[Any]:
        return [c for c in self.sim.api_calls_for("kf/sync_msg") if open_kfid.encode() in c.body]

    def retire(self, open_kfid: str) -> None:
        self.sql("UPDATE channel_account SET active = 0 WHERE `key` = %s", open_kfid)

    def texts(self, prefix: str) -> list[str]:
        return [r[0] for r in self.sql("SELECT text FROM message WHERE direction = 'in' AND text LIKE %s "
                                       "ORDER BY id", prefix + "%")]

    def seen(self, open_kfid: str) -> int:
        return int(self.sql("SELECT COUNT(*) FROM kf_seen WHERE open_kfid = %s", open_kfid)[0][0])

    def cursor_pages(self, open_kfid: str) -> int:
        rows = self.sql("SELECT pages FROM kf_cursor WHERE open_kfid = %s", open_kfid)
        return int(rows[0][0]) if rows else 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    # -- WeCom's side --------------------------------------------------------------------------------------------
    def customers_write(self, open_kfid: str, prefix: str, n: int = COUNT) -> list[str]:
        user = "wmE2e" + uuid.uuid4().hex[:12]
        texts = [f"{prefix}第{i}条" for i in range(n)]
        for text in texts:
            self.kf.customer_message(self.sim.clock.now(), open_kfid, user, "text", {"content": text})
        return texts

    def callback(self, open_kfid: str) -> None:
        token = self.kf.issue_token(self.sim.clock.now(), open_kfid)
        delivery = asyncio.run(self.driver.send_event("kf_msg_or_event", [("Token", token), ("OpenKfId", open_kfid)],
                                                      from_user=None))
        assert delivery.delivered, delivery.attempts

    # -- processes -----------------------------------------------------------------------------------------------
    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        proc = spawn(self.env, "worker", log=log)
        self.procs.append(proc)
        self.worker = proc
        return proc

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> Any:
        return poll_until(predicate, timeout=timeout, interval=0.2, logs=self.logs)

    def tail(self) -> str:
        return tail_logs(self.logs)


@pytest.fixture(scope="module")
def kfdesk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KfDesk]:
    tmp = tmp_path_factory.mktemp("kfdesk")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = SimulatorState()
    add_default_apps(sim.wecom, agent_id=AGENT_ID, app_secret=APP_SECRET, token=TOKEN, aes_key=AES_KEY,
                     app_callback_url=f"{url}/callbacks/wecom/app",
                     contacts_callback_url=f"{url}/callbacks/wecom/contacts")
    # the staff `seed-demo` writes are WeCom members: a staff card to the agent a ticket lands on reaches them
    load_demo_org(sim.wecom, external_contacts=0)
    server = SimulatorServer(sim).start()
    db_name = f"gongdan_e2e_kf_{os.getpid()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "DATABASE_", "REDIS_"))},
        "GONGDAN_ENV": "production",
        "SECRET_KEY": "e2e-secret-key-0123456789-abcdefghijklmnop",
        "DATA_DIR": str(tmp / "data"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PUBLIC_URL": url,
        "WECOM_API_BASE": server.wecom_api_base_url,
        "WECOM_CORP_ID": sim.wecom.corp_id,
        "WECOM_AGENT_ID": str(AGENT_ID),
        "WECOM_AGENT_SECRET": APP_SECRET,
        "WECOM_TOKEN": TOKEN,
        "WECOM_AES_KEY": AES_KEY,
        "WECOM_RATE_PER_MINUTE": "100000",
        "WECOM_RATE_PER_HOUR": "1000000",
        "DATABASE_URL": _mysql_database(db_name),
        "DB_POOL_SIZE": "10",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    redis_url = redis_url_or_skip().rsplit("/", 1)[0] + "/11"  # 12-15 are taken by bench and the other tiers
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env["REDIS_URL"] = redis_url
    desk: KfDesk | None = None
    try:
        gongdan(env, "migrate")
        gongdan(env, "seed-demo")
        token = gongdan(env, "token", "create", "--staff", "admin").stdout.strip()
        log = tmp / "serve.log"
        serve = spawn(env, "serve", "--port", str(port), log=log)
        desk = KfDesk(url=url, env=env, db=db_name, sim=sim, kf=kf_state(sim),
                      driver=WeComDriver(sim, sim.wecom.app("app"), f"{url}/callbacks/wecom/app", retries=0),
                      tmp=tmp, token=token, logs=[log], procs=[serve])
        _wait_ready(url, serve, log)
        desk.start_worker()
        yield desk
    finally:
        if desk is not None:
            for proc in desk.procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in desk.procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            desk.sql(f"DROP DATABASE IF EXISTS {db_name}")
        server.stop()


def _open_kfid() -> str:
    return "wkE2e" + uuid.uuid4().hex[:16]


def test_fifty_messages_on_three_pages_with_one_callback_arrive_once_in_order(kfdesk: KfDesk) -> None:
    open_kfid, prefix = _open_kfid(), "T1-"
    kfdesk.add_kf_account(open_kfid, recovery=False)
    expected = kfdesk.customers_write(open_kfid, prefix)
    kfdesk.callback(open_kfid)

    kfdesk.wait_for(lambda: len(kfdesk.texts(prefix)) >= COUNT and kfdesk.seen(open_kfid) >= COUNT)
    assert kfdesk.texts(prefix) == expected
    assert kfdesk.seen(open_kfid) == COUNT
    assert kfdesk.cursor_pages(open_kfid) == 3
    calls = kfdesk.sync_calls(open_kfid)
    assert len(calls) == 3 and all(b'"token"' in c.body for c in calls)  # one pull with the callback's Token
    # one customer, one conversation, the messages in it in order (as the desk's API shows them)
    conv = kfdesk.sql("SELECT DISTINCT conversation_id FROM message WHERE direction = 'in' AND text LIKE %s",
                      prefix + "%")
    assert len(conv) == 1
    kfdesk.retire(open_kfid)


def test_the_same_callback_delivered_three_times_changes_nothing(kfdesk: KfDesk) -> None:
    open_kfid, prefix = _open_kfid(), "T2-"
    kfdesk.add_kf_account(open_kfid, recovery=False)
    expected = kfdesk.customers_write(open_kfid, prefix)
    # raw callbacks are encrypted at rest: this test's three are the ones stored after this point
    before = int(kfdesk.sql("SELECT COALESCE(MAX(id), 0) FROM inbound_event")[0][0])
    for _ in range(3):
        kfdesk.callback(open_kfid)

    kfdesk.wait_for(lambda: len(kfdesk.texts(prefix)) >= COUNT and kfdesk.seen(open_kfid) >= COUNT)
    # all three callbacks are handled (a pull running meanwhile makes the others retry), and nothing changes
    kfdesk.wait_for(lambda: kfdesk.sql(
        "SELECT COUNT(*) FROM inbound_event WHERE id > %s AND status = 'done'", before)[0][0] == 3, timeout=90)
    assert kfdesk.texts(prefix) == expected
    assert kfdesk.seen(open_kfid) == COUNT
    kfdesk.retire(open_kfid)


def test_a_worker_killed_between_pages_loses_and_repeats_nothing(kfdesk: KfDesk) -> None:
    open_kfid, prefix = _open_kfid(), "T3-"
    expected = kfdesk.customers_write(open_kfid, prefix)
    # the first page answers at once, the second hangs long enough for the worker to be killed while waiting
    kfdesk.sim.faults.clear("wecom:kf/sync_msg")
    kfdesk.sim.inject_fault("wecom:kf/sync_msg", {"delay": 0.01}, 1)
    kfdesk.sim.inject_fault("wecom:kf/sync_msg", {"delay": 20}, 1)
    kfdesk.add_kf_account(open_kfid)
    kfdesk.callback(open_kfid)

    kfdesk.wait_for(lambda: kfdesk.cursor_pages(open_kfid) == 1 and not kfdesk.sim.faults.pending())
    worker = kfdesk.worker
    assert worker is not None
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert kfdesk.texts(prefix) == expected[:PAGE]  # killed between pages: the first page saved, nothing more
    assert kfdesk.cursor_pages(open_kfid) == 1
    lease = kfdesk.sql("SELECT lease_until FROM kf_cursor WHERE open_kfid = %s", open_kfid)[0][0]
    assert lease is not None  # a killed worker never releases its lease

    # the lease runs out (120 s; expired here rather than waited for), a new worker starts and its recovery cron
    # pulls the account from the stored cursor
    kfdesk.sql("UPDATE kf_cursor SET lease_until = NULL WHERE open_kfid = %s", open_kfid)
    kfdesk.start_worker()
    kfdesk.wait_for(lambda: len(kfdesk.texts(prefix)) >= COUNT and kfdesk.seen(open_kfid) >= COUNT, timeout=150)
    kfdesk.wait_for(lambda: kfdesk.cursor_pages(open_kfid) >= 3)
    assert kfdesk.texts(prefix) == expected
    assert kfdesk.seen(open_kfid) == COUNT
    kfdesk.retire(open_kfid)



REFUSED = "客户超过 48 小时没有发消息，微信客服已不能再发送；请等客户再次来信，或致电联系。"


def test_a_reply_after_48_hours_is_refused_with_a_reason_and_no_retry_storm(kfdesk: KfDesk) -> None:
    """Only WeCom's clock moves (the desk's cannot in a subprocess): the desk believes the window is open, WeCom
    answers 95002, and the reply fails at once, for good, with words staff understand. Runs last: it moves the
    simulator's clock 49 hours."""
    open_kfid, prefix = _open_kfid(), "T4-"
    kfdesk.add_kf_account(open_kfid)
    text = f"{prefix}我要投诉，东西坏了 {uuid.uuid4().hex[:6]}"
    kfdesk.kf.customer_message(kfdesk.sim.clock.now(), open_kfid, "wmE2e" + uuid.uuid4().hex[:12], "text",
                               {"content": text})
    kfdesk.callback(open_kfid)
    rows = kfdesk.wait_for(lambda: kfdesk.sql("SELECT ticket_id FROM message WHERE direction = 'in' AND text = %s "
                                              "AND ticket_id IS NOT NULL", text))
    ticket_id = int(rows[0][0])
    kfdesk.retire(open_kfid)

    def acks_sent() -> int:
        rows = kfdesk.sql("SELECT status, id FROM outbox_message WHERE ticket_id = %s AND kind = 'customer_message'",
                          ticket_id)
        return max(r[1] for r in rows) if rows and all(r[0] == "sent" for r in rows) else 0

    last_ack = kfdesk.wait_for(acks_sent)  # the desk's acknowledgement went out within the window
    kfdesk.sim.advance(49 * 3600)
    with kfdesk.client() as c:
        r = c.post(f"/api/v1/tickets/{ticket_id}/messages", json={"text": "您好，请问还需要帮助吗？"})
        assert r.status_code == 201, r.text

    def final() -> tuple[Any, ...] | None:
        found = kfdesk.sql("SELECT status, attempts, delivery_state, last_error FROM outbox_message "
                           "WHERE ticket_id = %s AND kind = 'customer_message' AND id > %s", ticket_id, last_ack)
        return found[0] if found and found[0][0] in ("failed", "sent") else None

    status, attempts, delivery_state, last_error = kfdesk.wait_for(final)
    assert (status, attempts, delivery_state) == ("failed", 1, "kf_window_closed")
    assert last_error == REFUSED
    event = kfdesk.wait_for(lambda: kfdesk.sql(
        "SELECT reason FROM ticket_event WHERE ticket_id = %s AND kind = 'delivery_failed'", ticket_id))
    assert [r[0] for r in event] == [REFUSED]
    time.sleep(5)  # a retry storm would show up as more refused sends meanwhile
    refused = [c for c in kfdesk.sim.api_calls_for("kf/send_msg") if c.errcode == 95002]
    assert len(refused) == 1
    assert kfdesk.sql("SELECT attempts, status FROM outbox_message WHERE ticket_id = %s "
                      "AND kind = 'customer_message' AND id > %s", ticket_id, last_ack) == [(1, "failed")]


def test_a_kf_customer_handed_off_by_the_bot_is_answered_from_the_desk_resolved_and_rated(kfdesk: KfDesk) -> None:
    """The intake issue's 微信客服 journey: the bot hands off, an agent answers through the API, resolves with
    confirmation, the customer confirms with 1 and rates 5 in the chat; every message reaches WeChat."""
    open_kfid = "wkE2eJourney" + uuid.uuid4().hex[:8]
    kfdesk.sim.advance(time.time() - kfdesk.sim.clock.now())  # an earlier test moved WeChat's clock 49 hours on
    kfdesk.add_kf_account(open_kfid, recovery=False)
    kfdesk.sql("UPDATE channel_account SET config = %s WHERE `key` = %s",
               json.dumps({"open_kfid": open_kfid, "sync_limit": PAGE, "bot": True}), open_kfid)
    user = "wmJourney" + uuid.uuid4().hex[:10]

    def say(text: str) -> None:
        kfdesk.kf.customer_message(kfdesk.sim.clock.now(), open_kfid, user, "text", {"content": text})
        kfdesk.callback(open_kfid)

    def sent_texts() -> list[str]:
        return [str(m.get("text", {}).get("content", "")) for m in kfdesk.kf.sent
                if m.get("touser") == user and m.get("msgtype") == "text"]

    say("转人工")
    rows = kfdesk.wait_for(lambda: kfdesk.sql(
        "SELECT t.id FROM ticket t JOIN channel_account a ON a.id = t.channel_account_id WHERE a.`key` = %s",
        open_kfid))
    ticket_id = int(rows[0][0])
    kfdesk.wait_for(lambda: any("转接人工客服" in t for t in sent_texts()))
    with kfdesk.client() as c:
        r = c.post(f"/api/v1/tickets/{ticket_id}/messages", json={"text": "您好，我是客服小王，已为您处理。"})
        assert r.status_code == 201, r.text
        version = c.get(f"/api/v1/tickets/{ticket_id}").json()["version"]
        r = c.patch(f"/api/v1/tickets/{ticket_id}", json={"version": version, "status": "resolved"})
        assert r.status_code == 200, r.text
    kfdesk.wait_for(lambda: "您好，我是客服小王，已为您处理。" in sent_texts())
    kfdesk.wait_for(lambda: any("已解决" in t for t in sent_texts()))
    say("1")
    kfdesk.wait_for(lambda: kfdesk.sql("SELECT 1 FROM ticket WHERE id = %s AND status = 'closed'", ticket_id))
    kfdesk.wait_for(lambda: any("请为本次服务打分" in t for t in sent_texts()))
    say("5")
    with kfdesk.client() as c:
        rating = kfdesk.wait_for(lambda: c.get(f"/api/v1/tickets/{ticket_id}").json().get("rating"))
    assert rating["score"] == 5
    failed = kfdesk.sql("SELECT kind, last_error FROM outbox_message WHERE ticket_id = %s AND status = 'failed'",
                        ticket_id)
    assert failed == []
    state = kfdesk.kf.session(open_kfid, user).state
    assert state in (0, 1, 4)  # the desk kept the session (closing the ticket ends it)
    kfdesk.retire(open_kfid)
