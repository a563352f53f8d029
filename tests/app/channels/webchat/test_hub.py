"""Fan-out: in-process without Redis, and across processes (two hubs) through Redis pub/sub."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from app.channels.webchat import hub as hub_module
from app.channels.webchat.hub import Hub, topic
from tests.conftest import redis_url_or_skip


async def test_without_redis_only_this_process_subscribers_get_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "get_settings", lambda: SimpleNamespace(redis_url=None))
    hub = Hub()
    name = topic(account_id=1, visitor_id="v1")
    queue = hub.subscribe(name)
    other = hub.subscribe(topic(account_id=1, visitor_id="v2"))
    await hub.publish(name, {"type": "message", "id": 7})
    assert queue.get_nowait() == {"type": "message", "id": 7}
    assert other.empty()
    hub.unsubscribe(name, queue)
    assert hub.deliver(name, {"type": "typing"}) == 0


@pytest.mark.redis
async def test_with_redis_another_process_delivers_to_its_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    url = redis_url_or_skip()
    monkeypatch.setattr(hub_module, "get_settings", lambda: SimpleNamespace(redis_url=url))
    holding, replying = Hub(), Hub()  # the web process holding the socket, and the one the reply went through
    try:
        await holding.start()
        name = topic(account_id=3, visitor_id="visitor-redis")
        queue = holding.subscribe(name)
        await replying.publish(name, {"type": "message", "id": 42, "text": "您好"})
        assert await asyncio.wait_for(queue.get(), 10) == {"type": "message", "id": 42, "text": "您好"}
    finally:
        await holding.close()
        await replying.close()
