"""Issue 10, observation 10 for messages: every outgoing message template, every card and every people-facing
label table reads in Chinese (the scanner in tests/untranslated.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from app.notifications import service as notify
from app.notifications import staff as cards
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service
from app.tickets.models import Ticket
from app.tickets.states import STATUS_LABELS, Status
from app.timeutil import CHINA
from tests import factories
from tests.untranslated import leaks

TEMPLATES = sorted(p.name for p in (Path(notify.__file__).parent / "templates").glob("*.txt"))


async def _ticket() -> tuple[Ticket, dict[str, Any]]:
    data = await factories.org()
    cust = await factories.customer(phone="13812345678")
    ticket = await service.create(actor=SYSTEM, customer_id=cust.id, subject="退款还没到账", priority="urgent",
                                  group_id=data["groups"]["service"].id)
    await Ticket.filter(id=ticket.id).update(assignee_id=data["people"]["agent"].id)
    return await Ticket.get(id=ticket.id), data


@pytest.mark.parametrize("name", TEMPLATES)
async def test_every_message_template_reads_in_chinese(db: None, name: str) -> None:
    ticket, _ = await _ticket()
    for status in [s.value for s in Status]:
        ticket.status = status
        text = notify.render(name, ticket=ticket, new=status, label=notify.CUSTOMER_VISIBLE.get(status, "处理中"),
                             reason="", tickets=[ticket], labels=STATUS_LABELS, Status=Status, tz=CHINA)
        assert text and leaks(text) == [], (name, status, text)


async def test_every_staff_card_reads_in_chinese(db: None) -> None:
    ticket, data = await _ticket()
    await cards.ticket_assigned(ticket=ticket)
    await cards.customer_message(ticket=ticket, text="还没到账")
    await cards.sla_warning(ticket=ticket, clock="首次响应", due_label="10:30")
    await cards.approval_waiting(ticket=ticket, approver=data["people"]["lead"], approval_id=1, summary="退款 20 元")
    rows = await OutboxMessage.filter(kind="staff_card").order_by("id")
    assert len(rows) == 4
    for row in rows:
        card = row.payload.get("template_card") or row.payload["textcard"]
        texts = [card.get("title", ""), card.get("description", ""), card.get("btntxt", ""),
                 *card.get("main_title", {}).values(), card.get("source", {}).get("desc", ""),
                 *(f"{r['keyname']} {r['value']}" for r in card.get("horizontal_content_list", [])),
                 *(str(v) for v in card.get("emphasis_content", {}).values())]
        visible = " ".join(str(t) for t in texts).replace('<div class="gray">', " ").replace(
            '<div class="normal">', " ").replace("</div>", " ")
        assert leaks(visible) == [], visible


def _label_tables() -> list[tuple[str, object]]:
    from app import labels
    from app.channels import base as channels
    from app.kb import bot
    from app.tickets import serializers
    from approvals import service as approvals

    modules: list[ModuleType] = [labels, channels, bot, serializers, approvals, notify, cards]
    found: list[tuple[str, object]] = []
    for module in modules:
        for name, value in vars(module).items():
            if name.isupper() and (name.endswith(("_LABELS", "_TEXT", "_TAIL", "_HEAD", "VISIBLE"))
                                   or name.startswith("SURVEY_")):
                found.append((f"{module.__name__}.{name}", value))
    return found


def test_every_label_table_reads_in_chinese() -> None:
    tables = _label_tables()
    assert {"app.tickets.serializers.EVENT_LABELS", "approvals.service.STATUS_LABELS",
            "approvals.service.KIND_LABELS", "app.notifications.service.CUSTOMER_VISIBLE"} <= {n for n, _ in tables}
    for name, value in tables:
        texts = list(value.values()) if isinstance(value, dict) else [value]
        for text in texts:
            assert leaks(str(text)) == [], (name, text)
