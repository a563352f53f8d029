"""The staff side's live events cross web processes: through Redis, the staff page in one process and the visitor's
widget in another see each other's typing and read state."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from app.channels.webchat import hub as hub_module
from app.channels.webchat import live
from app.channels.webchat.hub import Hub, hub, topic
from app.channels.webchat.live import Chat, staff_topic
from tests.conftest import redis_url_or_skip


@pytest.mark.redis
async def test_staff_and_visitor_events_cross_web_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    url = redis_url_or_skip()
    monkeypatch.setattr(hub_module, "get_settings", lambda: SimpleNamespace(redis_url=url))
    widget_process = Hub()  # holds the visitor's socket; this process (the global hub) holds the staff page
    chat = Chat(account_id=9, customer_id=1, visitor_ids=("visitor-x",))
    try:
        await widget_process.start()
        await hub.start()
        widget = widget_process.subscribe(topic(account_id=9, visitor_id="visitor-x"))
        page = hub.subscribe(staff_topic(account_id=9, visitor_id="visitor-x"))

        await live.staff_typing(chat=chat)
        assert await asyncio.wait_for(widget.get(), 10) == {"type": "typing", "who": "staff"}
        await widget_process.publish(staff_topic(account_id=9, visitor_id="visitor-x"),
                                     {"type": "typing", "who": "visitor"})
        assert await asyncio.wait_for(page.get(), 10) == {"type": "typing", "who": "visitor"}
    finally:
        await widget_process.close()
        await hub.close()

