"""Human-readable ticket numbers: GD-20261125-0042, a per-day sequence on the China date."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from app.db import counter_connection
from app.settings import get_settings
from app.tickets.models import TicketCounter
from app.timeutil import local, utcnow
from app.uow import transaction


async def next_numbers(*, count: int) -> list[str]:
    """Allocate the next `count` numbers of today's sequence, in order, with one statement (on MySQL)."""
    day = local(utcnow()).strftime("%Y%m%d")
    if get_settings().is_mysql:
        # one autocommit statement on a connection of its own: no row lock held across round trips or across the
        # caller's transaction (the counter was the bottleneck of ticket creation). A worker's single ticket never
        # waits to share a statement with others (app.batching): grouping its numbers sped API creates up 5-25%
        # but slowed bench.burst's workers in every run; a batch of creations (app.tickets.service) takes its
        # numbers together because they are already together
        last = int(await counter_connection().execute_insert(
            "INSERT INTO ticket_counter (day, seq) VALUES (%s, LAST_INSERT_ID(%s)) "
            "ON DUPLICATE KEY UPDATE seq = LAST_INSERT_ID(seq + %s)", [day, count, count]))
        return [_format(day, seq) for seq in range(last - count + 1, last + 1)]
    # SQLite serialises writers anyway; a nested transaction joins the caller's
    for _ in range(3):
        async with transaction():
            bumped = await TicketCounter.filter(day=day).update(seq=F("seq") + count)
            if bumped:
                seq = await TicketCounter.filter(day=day).select_for_update().values_list("seq", flat=True)
                last = int(seq[0])  # type: ignore[call-overload]
                return [_format(day, n) for n in range(last - count + 1, last + 1)]
        try:
            await TicketCounter.create(day=day, seq=0)
        except IntegrityError:
            pass  # a concurrent creator won; bump theirs
    raise RuntimeError("could not allocate a ticket number")


def _format(day: str, seq: int) -> str:
    return f"{get_settings().ticket_prefix}-{day}-{seq:04d}"
