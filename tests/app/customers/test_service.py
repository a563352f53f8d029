"""A channel's sender resolved by the narrow reads of issue 15: the identity row (created with its customer when
new), the customer loaded by id following merges, and a second holder of an identity merged into the first."""

from __future__ import annotations

from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity


async def test_a_new_identity_is_created_with_its_customer_and_found_again_without_one(db: None) -> None:
    ident, created = await customers.resolve_identity_ref(kind="mp_openid", scope="default", value="oNew0001")
    assert created is not None
    stored = await CustomerIdentity.get(kind="mp_openid", scope="default", value="oNew0001")
    assert (ident.id, ident.customer_id, ident.kind, ident.scope, ident.value, ident.data) == (
        stored.id, created.id, "mp_openid", "default", "oNew0001", {})
    assert stored.customer_id == created.id  # type: ignore[attr-defined]

    await CustomerIdentity.filter(id=stored.id).update(data={"unionid_checked": True})
    again, none = await customers.resolve_identity_ref(kind="mp_openid", scope="default", value="oNew0001")
    assert none is None
    assert (again.id, again.customer_id, again.data) == (stored.id, created.id, {"unionid_checked": True})
    assert await Customer.all().count() == 1


async def test_load_follows_merges_to_the_survivor_with_or_without_the_row_lock(db: None) -> None:
    survivor = await Customer.create(name="王先生", vip_level=2, tags=["vip"])
    merged = await Customer.create(name="")
    await Customer.filter(id=merged.id).update(merged_into_id=survivor.id)
    for for_update in (False, True):
        loaded = await customers.load(customer_id=merged.id, for_update=for_update)
        assert (loaded.id, loaded.name, loaded.vip_level, loaded.tags) == (survivor.id, "王先生", 2, ["vip"])
        assert loaded.created_at == survivor.created_at


async def test_an_identity_another_customer_holds_merges_the_two(db: None) -> None:
    older = await customers.resolve_identity(kind="unionid", value="oUnion0001")
    newer = await Customer.create(name="")
    result = await customers.add_identity(customer=newer, kind="unionid", value="oUnion0001")
    assert result.id == older.id
    assert (await Customer.get(id=newer.id)).merged_into_id == older.id  # type: ignore[attr-defined]
    fresh = await Customer.create(name="")
    assert (await customers.add_identity(customer=fresh, kind="unionid", value="oUnion0002")).id == fresh.id
    assert await CustomerIdentity.filter(kind="unionid", value="oUnion0002", customer_id=fresh.id).count() == 1


async def test_customers_read_by_id_at_once_outside_a_transaction_take_one_select_and_their_own_models(
        db: None) -> None:
    import asyncio
    import re

    from tests.sqlcount import count_statements

    first = await customers.create(name="甲")
    second = await customers.create(name="乙")
    merged = await customers.create(name="丙")
    await Customer.filter(id=merged.id).update(merged_into_id=second.id)
    with count_statements() as statements:
        got = await asyncio.gather(*(customers.load(customer_id=i)
                                     for i in (first.id, second.id, first.id, merged.id)))
    assert [c.name for c in got] == ["甲", "乙", "甲", "乙"]
    assert got[0] is not got[2] and got[1] is not got[3]  # one caller's changes never show in another's
    reads = [s for s in statements if re.search(r"FROM [`\"]customer[`\"]", s)]
    # one read for the four, one more to follow the merge
    assert len(reads) == 2, reads
