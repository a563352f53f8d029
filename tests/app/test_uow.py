"""app.uow.joined: a step that joins the caller's transaction, or opens its own when called alone."""

from __future__ import annotations

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
