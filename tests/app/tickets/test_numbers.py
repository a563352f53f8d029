"""Ticket numbers: a per-day sequence, allocated without holding the counter row across the caller's transaction."""

from __future__ import annotations

import aiomysql

from app.settings import Settings
from app.tickets import numbers
from app.timeutil import local, utcnow
from app.uow import atomic
from tests.conftest import MYSQL_DB


async def test_numbers_follow_each_other_within_a_day(anydb: str, settings: Settings) -> None:
    day = local(utcnow()).strftime("%Y%m%d")
    first = (await numbers.next_numbers(count=1))[0]
    async with atomic():
        second = (await numbers.next_numbers(count=1))[0]
    assert (first, second) == (f"GD-{day}-0001", f"GD-{day}-0002")


async def test_a_number_taken_inside_a_transaction_does_not_lock_the_counter_until_it_commits(
        mysql_db: None, settings: Settings) -> None:
    # the intake transaction lasts a whole message's work: every other worker's new ticket queued behind its counter
    # row lock (seen as the one lock wait of the burst)
    day = local(utcnow()).strftime("%Y%m%d")
    other = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", db=MYSQL_DB, autocommit=True)
    try:
        async with other.cursor() as cur:
            await cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            async with atomic():
                assert (await numbers.next_numbers(count=1))[0] == f"GD-{day}-0001"
                # another process takes the next number while this transaction is still open
                await cur.execute("UPDATE ticket_counter SET seq = seq + 1 WHERE day = %s", [day])
                assert cur.rowcount == 1
            assert (await numbers.next_numbers(count=1))[0] == f"GD-{day}-0003"
    finally:
        other.close()
