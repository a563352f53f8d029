"""app.rows: bulk reads and writes over plain rows write what the ORM writes."""

from __future__ import annotations

import random
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


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "step"])
async def test_a_bulk_insert_gives_its_rows_ids_where_the_server_hands_them_out_in_order(
        db: None, returning: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from tortoise import connections
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer
    from tests.sqlcount import count_statements

    mysql = connections.get("default").capabilities.dialect == "mysql"
    if not returning:  # a server without INSERT … RETURNING (MySQL, MariaDB before 10.5)
        monkeypatch.setattr(rows, "_returns_ids", lambda version: False)
    async with in_transaction("default") as conn:
        with count_statements() as statements:
            answer = await rows.id_step(Customer, rows=rows.RETURNED_ROWS)
        assert answer == ((rows.RETURNED if returning else 1) if mysql else 0)  # SQLite's executemany gives no ids
        # MariaDB sends the ids of a few rows back with the INSERT: nothing is read first
        assert len(statements) == (0 if returning or not mysql else 1)
        # more rows than that (a sync's page): each returned id costs more to parse than the step costs to read
        with count_statements() as statements:
            assert await rows.id_step(Customer, rows=rows.RETURNED_ROWS + 1) == (1 if mysql else 0)
        assert len(statements) == (1 if mysql else 0)
        if mysql:
            many = await rows.insert_rows(Customer, [{"name": f"客户{i}"} for i in range(30)], id_step=1)
            assert [(c.id, c.name) for c in await Customer.filter(id__in=many).order_by("id")] == \
                [(i, f"客户{k}") for k, i in enumerate(many)]
        if not mysql:
            with pytest.raises(RuntimeError):
                await rows.insert_rows(Customer, [{"name": "甲"}], id_step=1)
            return
        # a server whose ids step by 2 (auto_increment_increment, as a multi-primary setup has, set while we run):
        # the step is read again, and every other id lands on the right row
        await conn.execute_script("SET SESSION auto_increment_increment=2")
        try:
            step = await rows.id_step(Customer, rows=5)
            assert step == (rows.RETURNED if returning else 2)
            # "%s" in a value: the statement goes without parameters, so nothing is formatted into it
            ids = await rows.insert_rows(Customer, [{"name": f"客户{i} 100%s"} for i in range(5)], id_step=step)
            assert [i - ids[0] for i in ids] == [0, 2, 4, 6, 8]
            assert [(c.id, c.name) for c in await Customer.filter(id__in=ids).order_by("id")] == \
                [(i, f"客户{k} 100%s") for k, i in enumerate(ids)]
        finally:
            await conn.execute_script("SET SESSION auto_increment_increment=1")
    # outside a transaction there is no connection of one's own to read the insert's id from
    assert await rows.id_step(Customer, rows=5) == 0
    with pytest.raises(RuntimeError):
        await rows.insert_rows(Customer, [{"name": "乙"}], id_step=1)


async def test_a_bulk_insert_longer_than_a_statement_may_be_goes_in_statements_that_fit(
        db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from tortoise import connections
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer
    from tests.sqlcount import count_statements

    mysql = connections.get("default").capabilities.dialect == "mysql"
    monkeypatch.setattr(rows, "MAX_STATEMENT_CHARS", 2_000)
    values = [{"name": f"客户{i:03d}", "tags": ["长" * (i % 7) * 40]} for i in range(60)]
    values[17]["tags"] = ["超长" * 1_200]  # a row longer than a statement may be goes in one of its own
    async with in_transaction("default"):
        last = await rows.max_id(Customer)
        with count_statements() as statements:
            await rows.insert_rows(Customer, values)
    stored = await Customer.filter(id__gt=last).order_by("id").values("name", "tags")
    assert stored == values
    if mysql:  # SQLite takes the rows as executemany parameters, in one call
        inserts = [s for s in statements if s.startswith("INSERT")]
        values = [s[s.index(" VALUES ") + 8:] for s in inserts]
        assert [v for v in values if len(v) > 2_000] == [v for v in values if "超长" in v]
        assert len(values) == sum(1 for v in values if len(v) <= 2_000) + 1
        assert sum(v.count('),(') + 1 for v in values) == 60 and len(values) > 5

def test_insert_returning_is_known_by_the_servers_version() -> None:
    assert [rows._returns_ids(v) for v in ("10.11.19-MariaDB-0+deb12u1", "5.5.5-10.11.6-MariaDB-log",
                                           "11.4.2-MariaDB", "10.4.32-MariaDB", "8.0.36", "8.0.11-TiDB-v7.5.0")] \
        == [True, True, True, False, False, False]


@pytest.mark.parametrize("status", [0, 512], ids=["backslash_escapes", "no_backslash_escapes"])
def test_the_escaper_writes_what_the_connections_escape_writes(status: int) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from aiomysql.connection import Connection

    connection = Connection.__new__(Connection)  # escaping needs only the server status and the charset
    connection.server_status = status
    connection._charset = "utf8mb4"
    connection._writer = None  # never connected: nothing to close
    literal = rows._escaper(connection)
    specials = ["'", '"', "\\", "\x00", "\n", "\r", "\x1a"]
    for value in ["plain", "it's \\ 100% \"x\" \x00\n\r\x1a 客户", "", *specials, *(f"a{c}" for c in specials),
                  *(f"{c}客户" for c in specials), "%s", "\t\x7f\u2028", 0, -7, 2**40, None, True, False, 1.5,
                  datetime(2026, 12, 5, 8, 30, 1, 123456, tzinfo=UTC), datetime(2026, 12, 5, 8, 30, 1, 123456),
                  datetime(2026, 12, 5, 8, 30), datetime(999, 1, 2, 3, 4, 5, 6),
                  datetime(2026, 12, 5, 8, 30, tzinfo=timezone(timedelta(hours=8)))]:
        assert literal(value) == connection.escape(value), value
    # every mix of the characters the escaping changes, with the ones it leaves, in every order
    pick = random.Random(7)
    for _ in range(2000):
        value = "".join(pick.choice([*specials, "a", "客", "%", "0", "\\0", "Z"]) for _ in range(pick.randint(1, 12)))
        assert literal(value) == connection.escape(value), value
    # a column at a time: plain texts (None among them), ints, and columns where one value needs its own escaping
    plain = ["plain", "客户", "", "100%s", "a\tb", "\x01", None]
    for _ in range(500):
        pool = pick.choice([plain, [0, -7, 2**40], [*plain, "it's"], [*plain, 3], [True, 1, None], specials,
                            ['["et1","et2"]', "[]", None, 'a\\"b', "x\n'y", "客户"], [*specials, "\x01", "a\x01'"]])
        column = [pick.choice(pool) for _ in range(pick.randint(0, 9))]
        assert rows._literals(column, literal, backslashes=rows._backslashes(connection)) == [
            connection.escape(v) for v in column], column


async def test_an_instance_built_from_python_values_is_what_the_models_init_makes(db: None) -> None:
    from app.tickets.models import Ticket, TicketEvent
    from app.timeutil import utcnow
    from tests import factories

    groups = (await factories.org())["groups"]
    customer = await factories.customer()
    now = utcnow()
    values = {"number": "GD-20261206-0001", "subject": "发票抬头错了 100%s", "description": "", "priority": "high",
              "category": "发票", "order_no": None, "custom_fields": {"门店": "徐汇"}, "tags": ["VIP"],
              "customer_id": customer.id, "group_id": groups["service"].id, "assignee_id": None,
              "channel_account_id": None, "conversation_id": None, "after_hours_until": None,
              "last_activity_at": now, "created_at": now, "updated_at": now}
    for model, given in ((Ticket, values), (TicketEvent, {"ticket_id": 3, "kind": "created", "data": {}})):
        built, made = rows.instance(model, given), model(**given)
        assert type(built) is model
        assert vars(built) == vars(made)
        # a mutable default is the instance's own, as __init__ makes it
        assert all(vars(built)[k] is not vars(rows.instance(model, given))[k]
                   for k, v in vars(made).items() if isinstance(v, dict | list) and k not in given)
    first = rows.instance(Ticket, values)
    await first.save(force_create=True)
    stored = await Ticket.get(id=first.id)
    assert (stored.subject, stored.status, stored.custom_fields) == ("发票抬头错了 100%s", "new", {"门店": "徐汇"})


async def test_an_instance_given_related_objects_holds_their_ids_and_unusual_values_go_to_init(db: None) -> None:
    from tortoise.exceptions import OperationalError

    from app.conversations.models import Conversation, Message
    from app.customers.models import Customer
    from app.timeutil import utcnow
    from tests import factories

    customer = await factories.customer()
    conv = await rows.inserted(Conversation, {"customer": customer, "message_count": 1, "last_message_at": utcnow()})
    assert (conv.customer_id, conv.id is not None) == (customer.id, True)  # type: ignore[attr-defined]
    given = {"conversation": conv, "customer": customer, "direction": "in", "author_kind": "customer",
             "provider_msg_id": "m-1", "msg_type": "text", "text": "你好", "media": []}
    built, made = rows.instance(Message, given), Message(**given)
    assert vars(built) == vars(made)
    assert (built.conversation_id, built.customer_id) == (conv.id, customer.id)  # type: ignore[attr-defined]
    await built.save(force_create=True)
    assert await Message.filter(id=built.id, conversation_id=conv.id, customer_id=customer.id).exists()
    # what __init__ checks or converts, it still does: an unsaved related object, a value for no column (with a
    # value to convert beside it)
    with pytest.raises(OperationalError):
        rows.instance(Message, {**given, "customer": Customer(name="未保存")})
    odd = {"name": "甲", "vip_level": "2", "no_such_column": 1}
    assert vars(rows.instance(Customer, odd)) == vars(Customer(**odd))
    from datetime import timedelta, timezone

    # an e-mail's date in its sender's zone is kept in UTC, as __init__ keeps it
    sent = datetime(2026, 12, 6, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    assert rows.instance(Message, {**given, "created_at": sent}).created_at.isoformat() == "2026-12-06T10:30:00+00:00"


async def test_rows_are_read_by_keys_with_quotes_backslashes_and_percent_signs_inside_and_outside_a_transaction(
        db: None) -> None:
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer, CustomerIdentity
    from tests.sqlcount import count_statements

    tricky = ["100%s 'quoted'", "\\back\\slash", '"双引号" %(x)s', "plain", "\\'; --"]
    customer = await Customer.create(name="客户")
    for i, value in enumerate(tricky):
        await CustomerIdentity.create(customer=customer, kind="wechat_openid" if i % 2 else "email", scope="s%",
                                      value=value)
    wanted = [*tricky, "absent"]
    expected = sorted((v, customer.id) for i, v in enumerate(tricky) if i % 2)
    outside = await rows.select_rows(CustomerIdentity, ("value", "customer_id"), "value", wanted,
                                     kind="wechat_openid", scope="s%")
    async with in_transaction("default"):
        with count_statements() as statements:
            inside = await rows.select_rows(CustomerIdentity, ("value", "customer_id"), "value", wanted,
                                            kind="wechat_openid", scope="s%")
    assert sorted((r["value"], r["customer_id"]) for r in outside) == expected
    assert sorted((r["value"], r["customer_id"]) for r in inside) == expected
    assert len(statements) == 1
