"""Human-readable ticket numbers: GD-20261125-0042, a per-day sequence on the China date."""

from __future__ import annotations

import asyncio
from itertools import groupby
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.batching import GroupCommit
from app.db import counter_connection
from app.settings import get_settings
from app.tickets.models import TicketCounter
from app.timeutil import local, utcnow


async def next_number() -> str:
    """Allocate the next number of today's sequence."""
    day = local(utcnow()).strftime("%Y%m%d")
    if get_settings().is_mysql:
        return _format(day, await _group_for(counter_connection()).add(day))
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


#: one autocommit statement on a connection of its own takes `n` numbers of a day: no row lock held across round
#: trips or across the caller's transaction (the counter was the bottleneck of ticket creation)
_TAKE = ("INSERT INTO ticket_counter (day, seq) VALUES (%s, LAST_INSERT_ID(%s)) "
         "ON DUPLICATE KEY UPDATE seq = LAST_INSERT_ID(seq + %s)")


class _Numbers(GroupCommit[str, int]):
    """Group commit (`app.batching.GroupCommit`) of the numbers one process takes: the requests that ask while a
    counter statement is in flight take theirs in the next, one statement per day for all of them, and share the
    block it returns in the order they asked. A failed statement fails each of its requests (none got a number)."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn
        self.loop = asyncio.get_running_loop()

    async def _write(self, batch: list[tuple[str, asyncio.Future[int]]]) -> None:
        for day, same_day in groupby(batch, key=lambda item: item[0]):
            waiting = list(same_day)
            try:
                last = int(await self.conn.execute_insert(_TAKE, [day, len(waiting), len(waiting)]))
            except BaseException as exc:
                self._fail(waiting, exc)
                continue
            for seq, (_, fut) in enumerate(waiting, start=last - len(waiting) + 1):
                if not fut.done():  # a request gone away leaves a gap, as a rolled-back ticket does
                    fut.set_result(seq)


_groups: dict[int, _Numbers] = {}


def _group_for(conn: Any) -> _Numbers:
    group = _groups.get(id(conn))
    if group is None or group.conn is not conn or group.loop is not asyncio.get_running_loop():
        group = _groups[id(conn)] = _Numbers(conn)
    return group


def _format(day: str, seq: int) -> str:
    return f"{get_settings().ticket_prefix}-{day}-{seq:04d}"
