"""The demo shop page (/_sim/shop): the company website `gongdan run` embeds the web chat widget on, with the
desk's snippet pasted verbatim; without a snippet it says so."""

from __future__ import annotations

import httpx
import pytest

from simulator import SimulatorState, create_simulator_app

pytestmark = pytest.mark.asyncio

SNIPPET = '<script src="http://127.0.0.1:8000/static/webchat/widget.js" data-site="demo-shop" async></script>'


async def _get(state: SimulatorState) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_simulator_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        return await client.get("/_sim/shop")


async def test_the_shop_page_embeds_the_desks_snippet() -> None:
    state = SimulatorState()
    state.shop_snippet = SNIPPET
    response = await _get(state)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert SNIPPET in response.text  # not escaped: pasted as a site owner pastes it
    assert "<title>演示商城</title>" in response.text and 'lang="zh-CN"' in response.text


async def test_without_a_snippet_the_page_says_so() -> None:
    response = await _get(SimulatorState())
    assert response.status_code == 404
    assert response.text == "演示商城未配置网页聊天（由 gongdan run 配置）"
