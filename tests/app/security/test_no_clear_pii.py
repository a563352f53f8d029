"""After a realistic flow no phone number, ID-card number or e-mail address is left in clear anywhere: not in any text
column of the database, not in the log output (issue 11, finding 8).

The flow: a customer writes on a channel (phone, full-width phone, e-mail, ID-card number) and the message opens a
ticket, staff reply quoting the phone, the reply is delivered, the customer opens a ticket on the H5 page with a
phone; an access-log line of a customer search by e-mail. Then every text column of every table and the captured log
are scanned with the detector (`app.security.pii.find_pii`): only tokens, ciphertexts and masked forms may remain.
The same flow with tokenising, payload encryption and log redaction switched off is scanned too, so the scanner is
shown to find what it looks for.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import pytest
from tortoise import Tortoise

from app import intake
from app.channels.base import InboundMessage
from app.channels.testing import RecordingAdapter
from app.queue import InProcessQueue
from app.security import tokens
from app.security.pii import find_pii
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import utcnow
from tests import factories
from tests.h5.conftest import H5, csrf_of, h5  # noqa: F401  (the h5 fixture)

PHONE, WIDE_PHONE = "13812345678", "１３６１２３４５６７１"
EMAIL, ID_CARD = "zhang.san@example.com", "11010519491231002X"
H5_PHONE, H5_EMAIL = "13987654321", "li.si@example.org"



# reads SQLite's own catalogue / a seeded SQLite file
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def hook() -> Iterator[None]:
    tokens.install()  # what setup() registers (idempotent: the hook stays for the tests after this one)
    yield


async def _flow(h5: H5, jobs: InProcessQueue, recording: RecordingAdapter) -> None:  # noqa: F811
    account, customer = await factories.channel_customer()
    inbound = InboundMessage(
        channel="test", channel_account_id=account.id, sender_kind="test_id", sender_id="u-1", msg_type="text",
        provider_msg_id="m-1", created_at=utcnow(),
        text=f"我要投诉，快递丢了。电话 {PHONE} 或 {WIDE_PHONE}，邮箱 {EMAIL}，身份证 {ID_CARD}")
    outcome = await intake.receive(inbound=inbound, account=account, customer=customer)
    assert outcome.created_ticket and outcome.ticket is not None
    await tickets.reply(actor=SYSTEM, ticket_id=outcome.ticket.id, text=f"已收到，我们会拨打 {PHONE} 联系您")
    await jobs.drain()
    # the customer got the reply in clear
    assert any(PHONE in str(s["payload"]) for s in recording.sent)

    await h5.login_customer("oScan")
    page = await h5.client.get("/h5/my/new")
    r = await h5.client.post("/h5/my/new", data={
        "csrf_token": csrf_of(page.text), "subject": "报修", "description": f"热水器不热，邮件 {H5_EMAIL} 联系",
        "phone": H5_PHONE, "consent": "1"})
    assert r.status_code == 303, r.text
    await jobs.drain()
    assert await Ticket.all().count() == 2
    # an access-log line of a customer search by e-mail (uvicorn's format, the query URL-encoded)
    logging.getLogger("uvicorn.access").warning('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET",
                                                f"/api/v1/customers?q={EMAIL.replace('@', '%40')}", "1.1", 200)
    logging.getLogger("app.test").warning("search %s", EMAIL)


def _findings(text: str) -> list[str]:
    found = [text[s:e] for s, e, _, _ in find_pii(text)]
    if "%" in text:
        decoded = unquote_plus(text)
        found += [decoded[s:e] for s, e, _, _ in find_pii(decoded)]
    return found


async def _scan_database() -> dict[str, list[str]]:
    conn = Tortoise.get_connection("default")
    _, tables = await conn.execute_query("SELECT name FROM sqlite_master WHERE type = 'table'")
    found: dict[str, list[str]] = {}
    for table in (t["name"] for t in tables):
        _, columns = await conn.execute_query(f'PRAGMA table_info("{table}")')
        # hex digests (row_hash, phone_hash, ...) are not personal data, but 11 of their digits can look like a phone
        names = [c["name"] for c in columns if any(k in str(c["type"]).upper() for k in ("CHAR", "TEXT", "JSON"))
                 and not str(c["name"]).endswith("hash")]
        if not names:
            continue
        _, rows = await conn.execute_query(f'SELECT {", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)} '
                                           f'FROM "{table}"')
        for row in rows:
            for name in names:
                value: Any = row[name]
                if isinstance(value, str):
                    for hit in _findings(value):
                        found.setdefault(f"{table}.{name}", []).append(hit)
    return found


async def test_no_personal_data_in_clear_after_a_realistic_flow(
        h5: H5, jobs: InProcessQueue, recording: RecordingAdapter, log_output: io.StringIO,  # noqa: F811
        hook: None) -> None:
    await _flow(h5, jobs, recording)
    in_db = await _scan_database()
    in_log = _findings(log_output.getvalue())
    print(f"\nclear personal data after: database {sum(map(len, in_db.values()))}, log {len(in_log)}")
    assert in_db == {}
    assert in_log == []
    assert log_output.getvalue(), "the flow logged nothing: the log scan would prove nothing"
    assert "z***@example.com" in log_output.getvalue()


async def test_the_scan_finds_clear_data_when_protection_is_off(
        h5: H5, jobs: InProcessQueue, recording: RecordingAdapter, log_output: io.StringIO,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app import logs
    from app.security import fields

    async def unchanged(texts: list[str], *, customer_id: int | None = None) -> list[str]:
        return list(texts)

    monkeypatch.setattr(tokens, "tokenise_many", unchanged)
    monkeypatch.setattr(fields, "encrypt_field", lambda value: value)
    monkeypatch.setattr(fields, "decrypt_field", lambda value: value)
    monkeypatch.setattr(fields, "_FERNET_PREFIX", "{")
    monkeypatch.setattr(logs, "_mask", lambda text: text)
    await _flow(h5, jobs, recording)
    in_db = await _scan_database()
    in_log = _findings(log_output.getvalue())
    print(f"\nclear personal data before: database {sum(map(len, in_db.values()))} in {sorted(in_db)}, "
          f"log {len(in_log)}")
    assert {"message.text", "ticket.subject", "ticket.description", "outbox_message.payload"} <= set(in_db)
    assert len(in_log) >= 2
