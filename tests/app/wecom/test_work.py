"""``WeComApi``'s JSON calls on the event loop (``SharedTokenClient.request_async`` over ``app.wecom.transport``):
the token, the single refresh and the errors of the threaded wechatpy path, without a thread per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import pytest

from app.errors import TemporaryChannelError
from app.wecom import transport
from app.wecom.errors import PermanentAPIError, PlatformTimedOut, PlatformUnavailable, RateLimited, TokenRejected
from app.wecom.tokens import MemoryTokenStore
from app.wecom.work import FOLLOW_USER_LIST, USER_GET, WeComApi, WeComClient
from tests.wecomenv import CUSTOMER_SECRET, WeComEnv


async def test_a_call_with_the_token_in_hand_runs_on_the_loop_without_a_thread(
        wecom: WeComEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    api = wecom.api("customer")
    first = await api.list_follow_users()

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a WeCom call went to a worker thread")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    assert await api.list_follow_users() == first
    assert first  # the demo org's follow users
    assert api.stats.calls == {FOLLOW_USER_LIST: 2}


async def test_a_json_body_and_the_query_reach_wecom_as_sent(wecom: WeComEnv) -> None:
    api = wecom.api("customer")
    users = await api.list_follow_users()
    page = await api.batch_get_by_user(users[:2], limit=1)
    assert len(page["external_contact_list"]) == 1 and page["next_cursor"]
    call = wecom.sim.api_calls_for("externalcontact/batch/get_by_user")[-1]
    assert call.method == "POST" and set(call.query) == {"access_token"}
    assert call.body == b'{"userid_list":' + f'["{users[0]}","{users[1]}"]'.encode() + b',"cursor":"","limit":1}'
    member = await wecom.api("contacts").get(USER_GET, {"userid": "zhangwei", "department_id": None})
    assert member["userid"] == "zhangwei"
    assert set(wecom.sim.api_calls_for(USER_GET)[-1].query) == {"userid", "access_token"}  # None is left out


async def test_a_token_rejected_once_is_fetched_again_and_the_call_repeated(wecom: WeComEnv) -> None:
    api = wecom.api("customer")
    await api.list_follow_users()
    calls, fetched = len(wecom.sim.api_calls_for(FOLLOW_USER_LIST)), wecom.sim.wecom.token_fetch_count()
    wecom.sim.inject_fault(FOLLOW_USER_LIST, {"errcode": 42001}, times=1)
    assert await api.list_follow_users()
    assert wecom.sim.wecom.token_fetch_count() == fetched + 1  # the store's copy and ours were dropped
    assert [c.errcode for c in wecom.sim.api_calls_for(FOLLOW_USER_LIST)[calls:]] == [42001, None]


async def test_a_token_rejected_twice_gives_up_after_one_refresh(wecom: WeComEnv) -> None:
    api = wecom.api("customer")
    await api.list_follow_users()
    calls, fetched = len(wecom.sim.api_calls_for(FOLLOW_USER_LIST)), wecom.sim.wecom.token_fetch_count()
    wecom.sim.inject_fault(FOLLOW_USER_LIST, {"errcode": 40014}, times=None)
    with pytest.raises(TokenRejected) as excinfo:
        await api.list_follow_users()
    assert isinstance(excinfo.value, TemporaryChannelError) and excinfo.value.errcode == 40014
    assert len(wecom.sim.api_calls_for(FOLLOW_USER_LIST)) == calls + 2
    assert wecom.sim.wecom.token_fetch_count() == fetched + 1


async def test_errcodes_and_http_failures_leave_as_our_errors(wecom: WeComEnv) -> None:
    api = wecom.api("contacts")
    wecom.sim.inject_fault(USER_GET, {"errcode": 45009}, times=1)
    with pytest.raises(RateLimited) as limited:
        await api.get_user("zhangwei")
    assert limited.value.retry_after == 60
    with pytest.raises(PermanentAPIError) as missing:
        await api.get_user("nobody-here")
    assert missing.value.code == "wecom_user_not_found"
    wecom.sim.inject_fault(USER_GET, {"http_status": 502}, times=1)
    with pytest.raises(PlatformUnavailable) as gateway:
        await api.get_user("zhangwei")
    assert gateway.value.status_code == 502
    assert (await api.get_user("zhangwei"))["userid"] == "zhangwei"


async def test_no_answer_in_time_is_an_unknown_outcome_and_no_connection_is_unavailable(wecom: WeComEnv) -> None:
    slow = WeComApi(WeComClient(wecom.sim.wecom.corp_id, CUSTOMER_SECRET, api_base=wecom.server.wecom_api_base_url,
                                store=MemoryTokenStore(), timeout=0.3, name="customer"))
    await slow.list_follow_users()
    wecom.sim.inject_fault(FOLLOW_USER_LIST, {"delay": 1.0}, times=1)
    with pytest.raises(PlatformTimedOut):
        await slow.list_follow_users()
    nowhere = WeComApi(WeComClient("wwnowhere", "secret-nowhere", api_base="http://127.0.0.1:9/cgi-bin/",
                                   store=MemoryTokenStore(), timeout=2))
    nowhere.client.token._keep("token-in-hand")  # the connection is refused to the call, not to a token fetch
    with pytest.raises(PlatformUnavailable) as excinfo:
        await nowhere.list_follow_users()
    assert "token-in-hand" not in str(excinfo.value) and "secret-nowhere" not in str(excinfo.value)


class _Platform:
    """A stand-in that answers every request with one body and remembers each request's first line."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.lines: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.lines.append(head.split("\r\n", 1)[0])
        length = next((int(h.split(":", 1)[1]) for h in head.split("\r\n") if h.lower().startswith("content-length")),
                      0)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     + f"Content-Length: {len(self.body)}\r\n\r\n".encode() + self.body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def platform() -> AsyncIterator[tuple[_Platform, int]]:
    stand_in = _Platform(b'{"errcode":0,"follow_user":["lisi"]}')
    server = await asyncio.start_server(stand_in.serve, "127.0.0.1", 0)
    async with server:
        yield stand_in, server.sockets[0].getsockname()[1]
    await transport.close()


async def test_calls_go_through_the_environments_proxy_as_resolved_when_the_client_was_made(
        platform: tuple[_Platform, int], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, port = platform
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    api = WeComApi(WeComClient("wwcorp", "secret", api_base="http://qyapi.example/cgi-bin/", store=MemoryTokenStore()))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # read once: a later change does not apply
    api.client.token._keep("t0k")
    assert await api.list_follow_users() == ["lisi"]
    assert proxy.lines == [
        "GET http://qyapi.example/cgi-bin/externalcontact/get_follow_user_list?access_token=t0k HTTP/1.1"]
    monkeypatch.setenv("NO_PROXY", "qyapi.example")
    direct = WeComClient("wwcorp", "secret", api_base="http://qyapi.example/cgi-bin/", store=MemoryTokenStore())
    assert direct._proxy is None


@pytest.mark.parametrize(("body", "expected"), [
    ('{"errcode":0,"follow_user":["王五"]}'.encode(), ["王五"]),
    # a raw control character inside a string and broken UTF-8: wechatpy's lenient decoding still reads them
    (b'{"errcode":0,"follow_user":["a\tb\xff"]}', ["a\tb"]),
])
async def test_answers_decode_as_wechatpy_reads_them(
        platform: tuple[_Platform, int], body: bytes, expected: list[str]) -> None:
    stand_in, port = platform
    stand_in.body = body
    api = WeComApi(WeComClient("wwcorp", "secret", api_base=f"http://127.0.0.1:{port}/", store=MemoryTokenStore()))
    api.client.token._keep("t0k")
    assert await api.list_follow_users() == expected


async def test_an_answer_that_is_not_a_json_object_is_unavailable(platform: tuple[_Platform, int]) -> None:
    stand_in, port = platform
    stand_in.body = b"<html>502 Bad Gateway</html>"
    api = WeComApi(WeComClient("wwcorp", "secret", api_base=f"http://127.0.0.1:{port}/", store=MemoryTokenStore()))
    api.client.token._keep("t0k")
    with pytest.raises(PlatformUnavailable, match="something other than a JSON object"):
        await api.list_follow_users()


async def test_the_loops_session_is_closed_at_shutdown_and_made_again_on_next_use(
        platform: tuple[_Platform, int]) -> None:
    from app.setup import shutdown

    first = transport.session()
    assert transport.session() is first
    await shutdown()
    assert first.closed
    again = transport.session()
    assert again is not first and not again.closed
