"""app.uow.joined: a step that joins the caller's transaction, or opens its own when called alone."""

from __future__ import annotations

import asyncio

import pytest
from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient

from app.customers.models import Customer
from app.uow import atomic, joined


class Boom(Exception):
    pass


async def test_alone_it_is_a_transaction_of_its_own(anydb: str) -> None:
    with pytest.raises(Boom):
        async with joined():
            assert isinstance(connections.get("default"), TransactionalDBClient)
            await Customer.create(name="独自")
            raise Boom
    assert await Customer.filter(name="独自").count() == 0
    async with joined():
        await Customer.create(name="独自")
    assert await Customer.filter(name="独自").count() == 1


async def test_inside_a_transaction_it_joins_it_without_a_savepoint(anydb: str) -> None:
    with pytest.raises(Boom):
        async with atomic():
            outer = connections.get("default")
            await Customer.create(name="外层")
            async with joined():
                assert connections.get("default") is outer  # the caller's own connection, no nested one
                await Customer.create(name="内层")
            raise Boom
    assert await Customer.filter(name__in=["外层", "内层"]).count() == 0


async def test_rows_held_for_the_commit_go_in_one_insert_and_not_at_all_when_their_block_rolls_back(
        anydb: str) -> None:
    from app.reports.models import ReportDirty
    from app.uow import insert_later
    from tests.sqlcount import count_statements

    with count_statements() as statements:
        async with atomic():
            await insert_later(ReportDirty, {"ticket_id": 1})
            with pytest.raises(Boom):
                async with atomic():  # a savepoint: what it held goes with it
                    await insert_later(ReportDirty, {"ticket_id": 2})
                    raise Boom
            await insert_later(ReportDirty, {"ticket_id": 3, "conversation_id": 7})
            assert await ReportDirty.all().count() == 0  # held until the commit
    assert [s for s in statements if "report_dirty" in s and s.startswith("INSERT")] != []
    assert len([s for s in statements if "report_dirty" in s and s.startswith("INSERT")]) == 1
    assert sorted(await ReportDirty.all().values_list("ticket_id", "conversation_id")) == [(1, None), (3, 7)]
    with pytest.raises(Boom):
        async with atomic():
            await insert_later(ReportDirty, {"ticket_id": 4})
            raise Boom
    await insert_later(ReportDirty, {"ticket_id": 5})  # no transaction: written at once
    assert sorted(await ReportDirty.all().values_list("ticket_id", flat=True)) == [1, 3, 5]


async def test_a_transaction_cancelled_with_a_statement_in_flight_ends_cancelled_and_writes_nothing(
        anydb: str) -> None:
    # a job cancelled on shutdown or by its timeout: on MariaDB aiomysql closes the connection under the statement,
    # so tortoise's rollback cannot be sent and raised InterfaceError in place of the cancellation (the task's end
    # then read as a database failure, and at a worker's shutdown as "Task exception was never retrieved")
    started = asyncio.Event()
    slow = "SELECT SLEEP(5)" if anydb == "mysql" else (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n")

    async def job() -> None:
        async with atomic() as conn:
            await Customer.create(name="取消了")
            started.set()
            await conn.execute_query(slow)

    task = asyncio.create_task(job())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await Customer.filter(name="取消了").count() == 0
