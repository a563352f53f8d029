"""Tickets asked for outside a transaction at the same moment (API calls, H5 新建) are written together: one counter
statement, one transaction, one INSERT per table; a ticket that fails at its write fails alone."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from app import events
from app.reports.models import ReportDirty
from app.security.scope import SYSTEM
from app.settings import Settings
from app.tickets import service
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import local, utcnow
from app.uow import atomic
from tests import factories
from tests.sqlcount import count_statements


def _writes(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if re.match(rf"INSERT INTO [`\"]?{table}[`\"]? ", s)]


async def _create(customer_id: int, subject: str) -> Ticket:
    return await service.create(actor=SYSTEM, customer_id=customer_id, subject=subject, customer_checked=True)


async def test_tickets_asked_for_at_once_share_a_counter_statement_a_transaction_and_each_tables_insert(
        anydb: str, settings: Settings) -> None:
    # each API create took its own counter statement, BEGIN, INSERT of the ticket, of its audit row, of its report
    # mark and COMMIT: at 16 concurrent calls the round trips, not the work, used the cores
    customer = await factories.customer()
    await _create(customer.id, "预热")
    subjects = [f"并发工单 {i}" for i in range(8)]
    with count_statements() as statements:
        made = await asyncio.gather(*(_create(customer.id, s) for s in subjects))
    assert [t.subject for t in made] == subjects
    day = local(utcnow()).strftime("%Y%m%d")
    assert [t.number for t in made] == [f"GD-{day}-{n:04d}" for n in range(2, 10)]
    stored = {t.id: t for t in await Ticket.filter(id__in=[t.id for t in made])}
    assert [(stored[t.id].number, stored[t.id].subject) for t in made] == [(t.number, t.subject) for t in made]
    created = await TicketEvent.filter(ticket_id__in=[t.id for t in made], kind="created").values_list(
        "ticket_id", flat=True)
    assert sorted(created) == sorted(t.id for t in made)
    assert sorted(await ReportDirty.filter(ticket_id__in=[t.id for t in made]).values_list(
        "ticket_id", flat=True)) == sorted(t.id for t in made)
    assert len(_writes(statements, "ticket_event")) == 1, statements
    assert len(_writes(statements, "report_dirty")) == 1, statements
    assert len([s for s in statements if "ticket_counter" in s and "SELECT" not in s]) == 1, statements
    # MariaDB hands a multi-row INSERT's rows consecutive ids: the tickets go in one statement (SQLite's driver
    # gives no ids for a batch, so there each is its own INSERT, without a round trip)
    assert len(_writes(statements, "ticket")) == (1 if anydb == "mysql" else 8), statements
    # and hands their ids back with the INSERT (RETURNING): no read of the server's auto-increment settings first;
    # on MariaDB the batch is the counter, the three INSERTs, and BEGIN and COMMIT (not counted here)
    assert [s for s in statements if "@@" in s] == [], statements
    assert len(statements) == (4 if anydb == "mysql" else 12), statements


async def test_a_ticket_that_fails_at_its_write_fails_alone_and_leaves_nothing(
        anydb: str, settings: Settings) -> None:
    customer = await factories.customer()

    async def refuse(*, ticket: Ticket, **_: Any) -> None:
        if ticket.subject == "写不进去":
            raise RuntimeError("listener refused")

    events.listen(events.TICKET_CREATED, refuse)
    try:
        results = await asyncio.gather(_create(customer.id, "第一张"), _create(customer.id, "写不进去"),
                                       _create(customer.id, "第三张"), return_exceptions=True)
    finally:
        events._listeners[events.TICKET_CREATED].remove(refuse)
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "listener refused"
    good = [r for r in results if isinstance(r, Ticket)]
    assert [t.subject for t in good] == ["第一张", "第三张"]
    assert sorted(await Ticket.filter(customer_id=customer.id).values_list("subject", flat=True)) == [
        "第一张", "第三张"]
    assert await TicketEvent.filter(ticket_id__in=[t.id for t in good]).count() == 2
    assert await TicketEvent.filter(kind="created").count() == 2
    assert sorted(await ReportDirty.all().values_list("ticket_id", flat=True)) == sorted(t.id for t in good)


async def test_inside_the_callers_transaction_a_ticket_is_written_there_and_rolls_back_with_it(
        anydb: str, settings: Settings) -> None:
    customer = await factories.customer()

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with atomic():
            ticket = await _create(customer.id, "随事务回滚")
            assert await Ticket.filter(id=ticket.id).exists()
            raise Undo
    assert not await Ticket.filter(customer_id=customer.id).exists()
    assert await ReportDirty.all().count() == 0


async def test_an_after_commit_hook_that_fails_leaves_the_batch_written_once(
        anydb: str, settings: Settings) -> None:
    # the commit happened: writing the batch again a ticket at a time would make every ticket twice
    from app.uow import on_commit

    customer = await factories.customer()

    async def broken() -> None:
        raise RuntimeError("queue down")

    async def hook(*, ticket: Ticket, **_: Any) -> None:
        if ticket.subject == "钩子失败":
            await on_commit(broken)

    events.listen(events.TICKET_CREATED, hook)
    try:
        made = await asyncio.gather(_create(customer.id, "钩子失败"), _create(customer.id, "同批"))
    finally:
        events._listeners[events.TICKET_CREATED].remove(hook)
    assert [t.subject for t in made] == ["钩子失败", "同批"]
    assert sorted(await Ticket.filter(customer_id=customer.id).values_list("subject", flat=True)) == [
        "同批", "钩子失败"]
    assert await TicketEvent.filter(kind="created").count() == 2
