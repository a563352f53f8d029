from __future__ import annotations

import asyncio

import pytest

from app.errors import InvalidTransition, VersionConflict
from app.security.scope import SYSTEM
from app.tickets import service, states
from app.tickets.models import Ticket, TicketEvent
from tests import factories


def test_transition_table_is_closed_over_statuses() -> None:
    assert set(states.TRANSITIONS) == set(states.Status)
    assert states.TRANSITIONS[states.Status.MERGED] == frozenset()
    assert states.can_transition("pending", "open")
    assert states.can_transition("closed", "open")
    assert not states.can_transition("closed", "resolved")
    assert not states.can_transition("new", "bogus")


async def _ticket() -> Ticket:
    cust = await factories.customer()
    return await service.create(actor=SYSTEM, customer_id=cust.id, subject="退款没到账")


async def test_transition_writes_status_version_and_audit(db: None) -> None:
    ticket = await _ticket()
    assert (ticket.status, ticket.version) == ("new", 1)
    moved = await states.transition(ticket_id=ticket.id, to="open", expected_version=1, actor=SYSTEM, reason="受理")
    assert (moved.status, moved.version) == ("open", 2)
    resolved = await states.transition(ticket_id=ticket.id, to="resolved", expected_version=2, actor=SYSTEM)
    assert resolved.resolved_at is not None
    events = await TicketEvent.filter(ticket_id=ticket.id).order_by("id").values_list("kind", "old", "new", "reason")
    assert events == [
        ("created", None, "new", ""),
        ("status_changed", "new", "open", "受理"),
        ("status_changed", "open", "resolved", ""),
    ]
    reopened = await states.transition(ticket_id=ticket.id, to="open", expected_version=3, actor=SYSTEM)
    assert reopened.resolved_at is None and reopened.version == 4


async def test_stale_version_is_refused_with_current_state(db: None) -> None:
    ticket = await _ticket()
    await states.transition(ticket_id=ticket.id, to="open", expected_version=1, actor=SYSTEM)
    with pytest.raises(VersionConflict) as info:
        await states.transition(ticket_id=ticket.id, to="resolved", expected_version=1, actor=SYSTEM)
    assert info.value.details["current"]["version"] == 2
    assert info.value.details["current"]["status"] == "open"
    assert (await Ticket.get(id=ticket.id)).status == "open"


async def test_invalid_transition_changes_nothing(db: None) -> None:
    ticket = await _ticket()
    await states.transition(ticket_id=ticket.id, to="closed", expected_version=1, actor=SYSTEM)
    with pytest.raises(InvalidTransition) as info:
        await states.transition(ticket_id=ticket.id, to="resolved", expected_version=2, actor=SYSTEM)
    assert info.value.details == {"status": "closed", "allowed": ["open"]}
    fresh = await Ticket.get(id=ticket.id)
    assert (fresh.status, fresh.version) == ("closed", 2)
    assert await TicketEvent.filter(ticket_id=ticket.id).count() == 2


async def test_two_concurrent_changes_with_one_version_give_one_success(anydb: str) -> None:
    ticket = await _ticket()
    results = await asyncio.gather(
        service.update(actor=SYSTEM, ticket_id=ticket.id, expected_version=1, changes={"priority": "high"}),
        service.update(actor=SYSTEM, ticket_id=ticket.id, expected_version=1, changes={"priority": "urgent"}),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, Ticket)]
    conflicts = [r for r in results if isinstance(r, VersionConflict)]
    assert len(ok) == 1 and len(conflicts) == 1, results
    fresh = await Ticket.get(id=ticket.id)
    assert fresh.version == 2
    assert fresh.priority == ok[0].priority
    assert await TicketEvent.filter(ticket_id=ticket.id, kind="priority_changed").count() == 1


async def test_two_concurrent_status_changes_give_one_success(anydb: str) -> None:
    ticket = await _ticket()
    results = await asyncio.gather(
        states.transition(ticket_id=ticket.id, to="open", expected_version=1, actor=SYSTEM),
        states.transition(ticket_id=ticket.id, to="resolved", expected_version=1, actor=SYSTEM),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Ticket", "VersionConflict"], results
    assert await TicketEvent.filter(ticket_id=ticket.id, kind="status_changed").count() == 1
