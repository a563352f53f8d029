"""The "my open tickets" list is served from the index that matches its filter and order (issue 15)."""

from __future__ import annotations

import pytest
from tortoise import connections

from app.security.scope import Actor
from app.tickets.models import Ticket


@pytest.mark.sqlite_only  # reads SQLite's query plan
async def test_my_open_tickets_read_one_ordered_index_range_per_status(db: None) -> None:
    actor = Actor(kind="staff", staff_id=7, role="agent", group_ids=frozenset({3}), name="lina")
    query = Ticket.filter(actor.ticket_filter()).filter(assignee_id=7, status__in=["new", "open", "pending"]).order_by(
        "-last_activity_at", "-id").limit(101).only("id", "number", "subject", "status", "last_activity_at")
    conn = connections.get("default")
    _, rows = await conn.execute_query(f"EXPLAIN QUERY PLAN {query.sql(params_inline=True)}")
    plan = " | ".join(str(dict(r)["detail"]) for r in rows)
    declared = [tuple(i) for i in Ticket._meta.indexes if isinstance(i, tuple)]
    assert ("assignee_id", "status", "last_activity_at", "id") in declared
    assert "USING INDEX" in plan and "(assignee_id=? AND status=?)" in plan, plan
    assert "SCAN ticket" not in plan, plan
