"""The SLA cron in bulk (issue 15: 500 simultaneous breaches took 5.3 s, about 14 statements a ticket): a chunk's
SLA events, ticket events and clock updates are one statement each; nothing due stays one statement."""

from __future__ import annotations

from app.outbox.models import OutboxMessage
from app.tickets import sla
from app.tickets.models import SlaEvent, Ticket, TicketEvent
from tests.app.tickets.sla_helpers import Clock, cn, policy, tech_org, ticket
from tests.sqlcount import count_statements


async def test_a_cron_run_with_nothing_due_is_one_statement(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    org = await tech_org()
    await policy(resolution_minutes=None)
    for _ in range(3):
        await ticket(group=org["group"])
    clock.to(cn(2025, 9, 30, 16, 30))
    with count_statements() as statements:
        assert await sla.run_due() == 0
    assert len(statements) == 1, statements


async def test_many_simultaneous_breaches_are_written_in_bulk_once_each(db: None) -> None:
    clock = Clock(cn(2025, 9, 30, 16, 0))
    org = await tech_org()
    await policy(resolution_minutes=None, warning_ratio=0)
    n = 30
    made = [await ticket(group=org["group"], assignee=org["people"]["xiaoli"]) for _ in range(n)]
    cards_before = await OutboxMessage.filter(kind="staff_card").count()
    clock.to(cn(2025, 10, 9, 11, 0))  # every first response breaches now; escalation step 1 is due at once
    with count_statements() as statements:
        assert await sla.run_due() == n
    breaches = await SlaEvent.filter(kind="breach").count()
    steps = await SlaEvent.filter(kind="escalation_1").count()
    assert (breaches, steps) == (n, n)
    assert await TicketEvent.filter(kind="sla_breached").count() == n
    assert await TicketEvent.filter(kind="sla_escalated").count() == n
    assert await OutboxMessage.filter(kind="staff_card").count() == cards_before + n
    fresh = await Ticket.filter(id__in=[t.id for t in made]).values_list("sla_breached", "sla_next_check_at",
                                                                         "first_response_due")
    assert {(bool(b), nxt) for b, nxt, _ in fresh} == {(True, cn(2025, 10, 9, 11, 30))}
    # per ticket the card (its outbox row) and the listeners' rows; the SLA's own writes are per chunk
    plain = [s.replace("`", '"') for s in statements]  # MariaDB quotes with backticks
    sla_writes = [s for s in plain if "sla_event" in s.split(" WHERE")[0] or "ticket_event" in
                  s.split(" WHERE")[0] or s.startswith('UPDATE "ticket"')]
    # one chunk: read its SLA events, insert the new ones, insert the ticket events, update the clocks
    assert n <= sla.CHUNK and len(sla_writes) == 4, sla_writes
    assert len(statements) < 4 * n, len(statements)
    # idempotent: nothing more is due, and a second run writes nothing
    with count_statements() as again:
        assert await sla.run_due() == 0
    assert len(again) == 1
    assert await SlaEvent.filter(kind="breach").count() == n
