"""app.rows: bulk reads and writes over plain rows write what the ORM writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import rows


async def test_bulk_rows_are_written_as_the_orm_writes_them_with_shared_values_escaped_once(db: None) -> None:
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer
    from app.timeutil import utcnow

    now = utcnow().replace(microsecond=123456)
    tricky = "100%s 'quoted' \\back\\slash \"双引号\" 客户 %(x)s"
    values = [{"name": tricky, "tags": ["VIP", tricky], "vip_level": 2, "created_at": now, "updated_at": now},
              {"name": f"{tricky} 2", "tags": ["VIP", tricky], "vip_level": 0, "created_at": now, "updated_at": now,
               "phone_hash": "ab" * 32}]
    async with in_transaction("default"):
        last = await rows.max_id(Customer)
        await rows.insert_rows(Customer, values)
        ids = await rows.ids_after(Customer, last, "name")
    assert sorted(ids) == [tricky, f"{tricky} 2"]
    stored = {c.name: c for c in await Customer.filter(id__in=list(ids.values()))}
    for row in values:
        got = stored[row["name"]]
        assert (got.tags, got.vip_level, got.phone_hash, got.email_hash, got.merged_into_id,  # type: ignore[attr-defined]
                got.created_at, got.updated_at) == (row["tags"], row["vip_level"], row.get("phone_hash"), None, None,
                                                    now, now)


async def test_rows_alike_are_each_written_with_defaults_and_the_insert_time_for_what_they_leave_out(
        db: None) -> None:
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer
    from app.timeutil import set_clock

    then = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    same = {"name": "同名客户", "tags": ["A"]}
    set_clock(lambda: then)
    try:
        async with in_transaction("default"):
            last = await rows.max_id(Customer)
            # every column alike in the first three rows; the fourth gives its own vip_level
            await rows.insert_rows(Customer, [dict(same), dict(same), dict(same), {**same, "vip_level": 3}])
    finally:
        set_clock(None)
    stored = await Customer.filter(id__gt=last).order_by("id")
    assert [(c.name, c.tags, c.vip_level, c.phone_hash, c.created_at, c.updated_at) for c in stored] == \
        [("同名客户", ["A"], 0, None, then, then)] * 3 + [("同名客户", ["A"], 3, None, then, then)]


async def test_a_bulk_insert_gives_its_rows_ids_where_the_server_hands_them_out_in_order(db: None) -> None:
    from tortoise import connections
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer

    mysql = connections.get("default").capabilities.dialect == "mysql"
    async with in_transaction("default") as conn:
        assert (await rows.id_step(Customer) == 1) is mysql  # SQLite's executemany gives no ids
        if not mysql:
            with pytest.raises(RuntimeError):
                await rows.insert_rows(Customer, [{"name": "甲"}], id_step=1)
            return
        # a server whose ids step by 2 (auto_increment_increment, as a multi-primary setup has, set while we run):
        # the step is read again, and every other id lands on the right row
        await conn.execute_script("SET SESSION auto_increment_increment=2")
        try:
            step = await rows.id_step(Customer)
            assert step == 2
            # "%s" in a value: the statement goes without parameters, so nothing is formatted into it
            ids = await rows.insert_rows(Customer, [{"name": f"客户{i} 100%s"} for i in range(5)], id_step=step)
            assert [i - ids[0] for i in ids] == [0, 2, 4, 6, 8]
            assert [(c.id, c.name) for c in await Customer.filter(id__in=ids).order_by("id")] == \
                [(i, f"客户{k} 100%s") for k, i in enumerate(ids)]
        finally:
            await conn.execute_script("SET SESSION auto_increment_increment=1")
    # outside a transaction there is no connection of one's own to read the insert's id from
    assert await rows.id_step(Customer) == 0
    with pytest.raises(RuntimeError):
        await rows.insert_rows(Customer, [{"name": "乙"}], id_step=1)


@pytest.mark.parametrize("status", [0, 512], ids=["backslash_escapes", "no_backslash_escapes"])
def test_the_escaper_writes_what_the_connections_escape_writes(status: int) -> None:
    from datetime import UTC, datetime

    from aiomysql.connection import Connection

    connection = Connection.__new__(Connection)  # escaping needs only the server status and the charset
    connection.server_status = status
    connection._charset = "utf8mb4"
    connection._writer = None  # never connected: nothing to close
    literal = rows._escaper(connection)
    specials = ["'", '"', "\\", "\x00", "\n", "\r", "\x1a"]
    for value in ["plain", "it's \\ 100% \"x\" \x00\n\r\x1a 客户", "", *specials, *(f"a{c}" for c in specials),
                  *(f"{c}客户" for c in specials), "%s", "\t\x7f\u2028", 0, -7, 2**40, None, True, 1.5,
                  datetime(2026, 12, 5, 8, 30, 1, 123456, tzinfo=UTC)]:
        assert literal(value) == connection.escape(value), value
