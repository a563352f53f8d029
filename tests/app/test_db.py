"""app.db: DATABASE_REPLICA_URL gives list and report queries a connection of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import Tortoise, connections
from tortoise.utils import get_schema_sql

from app.customers.models import Customer
from app.db import REPLICA, reader, tortoise_config
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import utcnow
from tests.conftest import make_settings


def test_the_replica_is_a_second_connection_only_when_configured(tmp_path: Path) -> None:
    plain = tortoise_config(make_settings(database_url="sqlite://:memory:"))
    assert list(plain["connections"]) == ["default"]  # SQLite: no replica, and no counter pool
    both = tortoise_config(make_settings(database_url="mysql://root:@db1:3306/gd",
                                         database_replica_url="mysql://ro:@db2:3306/gd", db_pool_size=7))
    assert both["connections"][REPLICA].startswith("mysql://ro:@db2:3306/gd?")
    assert "maxsize=7" in both["connections"][REPLICA]
    assert both["apps"]["gongdan"]["default_connection"] == "default"


@pytest.fixture
async def two_databases(tmp_path: Path) -> AsyncIterator[None]:
    settings = make_settings(database_url=f"sqlite://{tmp_path}/primary.db",
                             database_replica_url=f"sqlite://{tmp_path}/replica.db")
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    await Tortoise.generate_schemas()
    replica = connections.get(REPLICA)
    # the same schema in the "replica" (a replica gets it by replication)
    await replica.execute_script(get_schema_sql(connections.get("default"), safe=True))
    yield
    await Tortoise.close_connections()


async def test_the_ticket_list_reads_the_replica_when_asked_and_the_primary_otherwise(two_databases: None) -> None:
    replica = connections.get(REPLICA)
    assert reader() is replica
    customer = await Customer.create(name="只在副本", using_db=replica)
    await Ticket.create(number="GD-20261204-0001", subject="副本里的工单", customer_id=customer.id,
                        last_activity_at=utcnow(), using_db=replica)
    from_replica = await tickets.list_tickets(actor=SYSTEM, replica=True, light=True)
    from_primary = await tickets.list_tickets(actor=SYSTEM)
    assert [t.subject for t in from_replica.items] == ["副本里的工单"]
    assert from_primary.items == []


async def test_without_a_replica_the_reader_is_the_primary(db: None) -> None:
    assert reader() is connections.get("default")


async def test_reports_read_the_replica_and_write_the_primary(two_databases: None) -> None:
    from datetime import date

    from app.db import replica_reads
    from app.reports import export, service
    from app.reports.models import ReportTicketFact
    from app.reports.service import Drill, ReportFilter

    replica = connections.get(REPLICA)
    now = utcnow()
    await ReportTicketFact.create(ticket_id=7, number="GD-20261204-0007", channel="wechat_mp", status="new",
                                  created_at=now, created_day=date(2026, 12, 4), created_hour=10,
                                  created_weekday=5, computed_at=now, using_db=replica)
    drill = Drill(start=date(2026, 12, 1), end=date(2026, 12, 7))
    page = await service.drill_page(actor=SYSTEM, drill=drill)
    assert (page.total, [r.number for r in page.rows]) == (1, ["GD-20261204-0007"])
    assert await service.drill_ticket_ids(actor=SYSTEM, drill=drill) == [7]
    exported = [row async for row in export.rows(actor=SYSTEM, drill=drill)]
    assert [row[0] for row in exported] == ["GD-20261204-0007"]
    volume = await service.section(actor=SYSTEM, flt=ReportFilter(start=drill.start, end=drill.end),
                                   name="volume")
    assert {f.key: f.value for f in volume.figures}["backlog"] == 1  # the open ticket the replica's facts hold
    # outside a report every read is the primary's; inside one a write still goes to the primary
    assert await ReportTicketFact.all().count() == 0
    with replica_reads():
        assert await ReportTicketFact.all().count() == 1
        await Customer.create(name="写入主库")
    assert await Customer.filter(name="写入主库").count() == 1
    assert await Customer.filter(name="写入主库").using_db(replica).count() == 0


async def test_with_a_replica_writes_in_a_transaction_go_to_the_primary(two_databases: None) -> None:
    # tortoise's in_transaction() without a connection name refuses to choose once a second connection exists
    from app.uow import atomic

    customer = await Customer.create(name="事务")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="有副本时开单")
    async with atomic():
        await Ticket.filter(id=ticket.id).update(subject="事务里改")
    assert await Ticket.filter(subject="事务里改").count() == 1
    assert await Ticket.all().using_db(connections.get(REPLICA)).count() == 0


def test_on_mysql_the_ticket_counter_has_a_small_pool_of_its_own() -> None:
    from app.db import COUNTER

    config = tortoise_config(make_settings(database_url="mysql://root:@db1:3306/gd", db_pool_size=7))
    assert config["connections"][COUNTER].startswith("mysql://root:@db1:3306/gd?")
    assert "maxsize=2" in config["connections"][COUNTER]
    assert "maxsize=7" in config["connections"]["default"]
