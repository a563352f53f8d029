"""Human-readable ticket numbers: GD-20261125-0042, a per-day sequence on the China date."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.db import counter_connection
from app.settings import get_settings
from app.tickets.models import TicketCounter
from app.timeutil import local, utcnow


async def next_number() -> str:
    """Allocate the next number of today's sequence."""
    day = local(utcnow()).strftime("%Y%m%d")
    if get_settings().is_mysql:
        # one autocommit statement on a connection of its own: no row lock held across round trips or across the
        # caller's transaction (the counter was the bottleneck of ticket creation). Not grouped across concurrent
        # callers (app.batching): that sped API creates up 5-25% but slowed bench.burst's workers in every run
        seq = await counter_connection().execute_insert(
            "INSERT INTO ticket_counter (day, seq) VALUES (%s, LAST_INSERT_ID(1)) "
            "ON DUPLICATE KEY UPDATE seq = LAST_INSERT_ID(seq + 1)", [day])
        return _format(day, int(seq))
    # SQLite serialises writers anyway; a nested transaction joins the caller's
    for _ in range(3):
        async with in_transaction("default"):
            bumped = await TicketCounter.filter(day=day).update(seq=F("seq") + 1)
            if bumped:
                seq = await TicketCounter.filter(day=day).select_for_update().values_list("seq", flat=True)
                return _format(day, int(seq[0]))  # type: ignore[call-overload]
        try:
            await TicketCounter.create(day=day, seq=0)
        except IntegrityError:
            pass  # a concurrent creator won; bump theirs
    raise RuntimeError("could not allocate a ticket number")


def _format(day: str, seq: int) -> str:
    return f"{get_settings().ticket_prefix}-{day}-{seq:04d}"
