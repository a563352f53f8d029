"""The daily privacy purge: raw callbacks after 30 days, message texts and media after a year, closed tickets'
personal data after three years; figures stay, a dry run changes nothing (issue 11)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app import cli
from app.channels.models import InboundEvent
from app.conversations.models import Message
from app.outbox.models import OutboxMessage
from app.security import retention, tokens
from app.security.crypto import encrypt_field, keyed_hash
from app.security.models import PiiToken
from app.security.scope import SYSTEM
from app.settings import Settings
from app.tickets import service as ticket_service
from app.tickets.models import Ticket
from app.timeutil import utcnow
from tests import factories

DAY = timedelta(days=1)


async def _world(settings: Settings) -> dict[str, int]:
    await factories.org()
    customer = await factories.customer()
    now = utcnow()
    old_event = await InboundEvent.create(dedupe_key="old", payload="<xml>13812345678</xml>")
    await InboundEvent.filter(id=old_event.id).update(received_at=now - 31 * DAY)
    await InboundEvent.create(dedupe_key="new", payload="<xml>fresh</xml>")

    photo = settings.media_dir / "2025/01/a.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(b"png")
    old_text = await tokens.tokenise("旧消息 13812345678", customer_id=customer.id)
    old = await Message.create(customer_id=customer.id, direction="in", author_kind="customer", text=old_text,
                               media=[{"kind": "image", "path": "2025/01/a.png"}], data={"via": "h5"})
    await Message.filter(id=old.id).update(created_at=now - 366 * DAY)
    fresh = await Message.create(customer_id=customer.id, direction="in", author_kind="customer",
                                 text=await tokens.tokenise("新消息 a@b.cn", customer_id=customer.id))
    sent = await OutboxMessage.create(channel="test", kind="customer_message", recipient="u", status="sent",
                                      payload={"text": "旧回复"}, next_attempt_at=now)
    await OutboxMessage.filter(id=sent.id).update(created_at=now - 366 * DAY)

    subject, description = await tokens.tokenise_many(["回电 13912345678", "邮箱 li@example.com"],
                                                      customer_id=customer.id)
    closed = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject=subject,
                                         description=description, category="投诉",
                                         custom_fields={"problem_type": "投诉", "address": "北京市某路 1 号"})
    await Ticket.filter(id=closed.id).update(
        status="closed", closed_at=now - 3 * 366 * DAY, phone_enc=encrypt_field("+8613912345678"),
        phone_hash=keyed_hash("+8613912345678"))
    recent = await ticket_service.create(actor=SYSTEM, customer_id=customer.id, subject="最近关闭")
    await Ticket.filter(id=recent.id).update(status="closed", closed_at=now - 10 * DAY)
    return {"old": old.id, "fresh": fresh.id, "closed": closed.id, "recent": recent.id, "outbox": sent.id}


async def test_a_dry_run_counts_and_changes_nothing(db: None, settings: Settings) -> None:
    ids = await _world(settings)
    tokens_before = await PiiToken.all().count()
    report = await retention.purge(dry_run=True)
    assert (report.raw_callbacks, report.messages, report.media_files, report.outbox_payloads, report.tickets,
            report.tokens) == (1, 1, 1, 1, 1, 3)
    assert await InboundEvent.all().count() == 2
    assert await PiiToken.all().count() == tokens_before == 4
    assert (await Message.get(id=ids["old"])).text != retention.PURGED_TEXT
    assert (settings.media_dir / "2025/01/a.png").exists()
    assert report.lines()[0] == "演练（未做任何修改）："


async def test_the_purge_forgets_personal_data_and_keeps_the_figures(db: None, settings: Settings) -> None:
    ids = await _world(settings)
    report = await retention.privacy_purge({})
    assert report == {"dry_run": False, "raw_callbacks": 1, "messages": 1, "media_files": 1, "outbox_payloads": 1,
                      "tickets": 1, "tokens": 3}
    assert [str(k) for k in await InboundEvent.all().values_list("dedupe_key", flat=True)] == ["new"]
    old = await Message.get(id=ids["old"])
    assert (old.text, old.media, old.data, old.direction) == (retention.PURGED_TEXT, [], {}, "in")
    assert not (settings.media_dir / "2025/01/a.png").exists()
    assert (await Message.get(id=ids["fresh"])).text.startswith("新消息 ⟦pii:")
    assert (await OutboxMessage.get(id=ids["outbox"])).payload == {"purged": True}
    closed = await Ticket.get(id=ids["closed"])
    assert (closed.subject, closed.description, closed.custom_fields) == (
        retention.PURGED_TEXT, retention.PURGED_TEXT, {"problem_type": "投诉"})
    assert closed.phone_enc is None and closed.phone_hash is None
    assert (closed.number, closed.status, closed.category) == (closed.number, "closed", "投诉")
    assert (await Ticket.get(id=ids["recent"])).subject == "最近关闭"
    # only the fresh message's token is left
    assert [str(k) for k in await PiiToken.all().values_list("kind", flat=True)] == ["email"]
    again = await retention.purge()
    assert (again.raw_callbacks, again.messages, again.outbox_payloads, again.tickets, again.tokens) == (0,) * 5


async def test_periods_come_from_the_settings(db: None, settings: Settings) -> None:
    ids = await _world(settings)
    report = await retention.purge(settings=settings.with_overrides(
        retention_raw_callback_days=60, retention_message_days=400, retention_closed_ticket_days=5))
    assert (report.raw_callbacks, report.messages, report.tickets) == (0, 0, 2)
    assert (await Ticket.get(id=ids["recent"])).subject == retention.PURGED_TEXT


def test_the_settings_are_read_from_the_environment() -> None:
    from app.settings import load_settings

    s = load_settings({"GONGDAN_ENV": "test", "RETENTION_RAW_CALLBACK_DAYS": "7", "RETENTION_MESSAGE_DAYS": "90",
                       "RETENTION_CLOSED_TICKET_DAYS": "730"}, env_file=None)
    assert (s.retention_raw_callback_days, s.retention_message_days, s.retention_closed_ticket_days) == (7, 90, 730)
    default = load_settings({"GONGDAN_ENV": "test"}, env_file=None)
    assert (default.retention_raw_callback_days, default.retention_message_days,
            default.retention_closed_ticket_days) == (30, 365, 1095)


def test_the_cli_dry_run_prints_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GONGDAN_ENV", "test")
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/cli.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    seen: dict[str, object] = {}

    async def fake_purge(*, dry_run: bool = False, settings: Settings | None = None) -> retention.PurgeReport:
        seen["dry_run"] = dry_run
        return retention.PurgeReport(dry_run=dry_run, raw_callbacks=3, messages=2)

    monkeypatch.setattr(retention, "purge", fake_purge)
    monkeypatch.setattr(cli, "_with_db", lambda settings, fn: __import__("asyncio").run(fn()))
    cli.main(["privacy", "purge", "--dry-run"])
    out = capsys.readouterr()
    assert seen == {"dry_run": True}
    assert "演练（未做任何修改）" in out.err and "原始回调：3 条" in out.err and "消息内容：2 条" in out.err
