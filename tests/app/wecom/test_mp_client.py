"""MPClient / MPApi against the real simulator on a real port: exact requests, token refresh rules, error mapping."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.errors import PermanentChannelError, TemporaryChannelError
from app.settings import Settings
from app.wecom.clients import MPClient
from app.wecom.errors import PermanentAPIError, PlatformBusy, PlatformUnavailable, RateLimited, TokenRejected
from app.wecom.mp import MPApi, TokenBucket, mp_api_for, reset_mp_apis
from app.wecom.tokens import (
    MemoryTokenStore,
    RedisTokenStore,
    make_token_store,
    mp_token_key,
    reset_token_stores,
)
from simulator import SimulatorServer, SimulatorState

APPID = "wxgongdantest0001"
SECRET = "mp-secret-for-tests"
OPENID = "oCustomer0000000000000001"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    state = SimulatorState(template_job_finish=False)
    state.add_mp_account(APPID, SECRET)
    with SimulatorServer(state) as server:
        yield server


@pytest.fixture
def state(sim: SimulatorServer) -> SimulatorState:
    sim.state.reset()
    sim.state.set_mp_user(APPID, OPENID)
    return sim.state


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def client(sim: SimulatorServer, state: SimulatorState, store: MemoryTokenStore) -> MPClient:
    return MPClient(APPID, SECRET, api_base=sim.api_base_url, store=store, timeout=5.0)


@pytest.fixture
def api(client: MPClient) -> MPApi:
    return MPApi(client)


@pytest.fixture
def redis_store() -> Iterator[RedisTokenStore]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:wecom:{uuid.uuid4().hex}:"
    yield RedisTokenStore(client, prefix=prefix)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def open_window(state: SimulatorState) -> None:
    """The customer wrote to the account, opening the 48-hour customer-service window."""
    state.mp.record_interaction(APPID, OPENID, "message")


def last_body(state: SimulatorState, path: str) -> Any:
    return json.loads(state.api_calls_for(path)[-1].body)


# -- sending: the exact JSON on the wire --------------------------------------------------------------------------


async def test_send_text_posts_exact_json(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    result = await api.send_text(OPENID, "您好，工单 GD-1 已受理")
    assert result["errcode"] == 0
    expected = {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，工单 GD-1 已受理"}}
    [sent] = state.sent_messages(APPID, OPENID, kind="custom")
    assert sent.body == expected
    assert last_body(state, "message/custom/send") == expected
    assert state.token_fetch_count(APPID) == 1


async def test_send_template_returns_msgid_as_string(api: MPApi, state: SimulatorState) -> None:
    data = {"first": {"value": "工单已更新"}, "keyword1": {"value": "GD-1"}}
    msgid = await api.send_template(OPENID, "TPL-1", data, url="https://desk.example/t/1")
    [sent] = state.sent_messages(APPID, OPENID, kind="template")
    assert sent.body == {"touser": OPENID, "template_id": "TPL-1", "url": "https://desk.example/t/1", "data": data}
    assert msgid == str(sent.msgid) and int(msgid) > 2**62


async def test_send_template_without_url_omits_it(api: MPApi, state: SimulatorState) -> None:
    await api.send_template(OPENID, "TPL-1", {"k": {"value": "v"}})
    assert last_body(state, "message/template/send") == {
        "touser": OPENID,
        "template_id": "TPL-1",
        "data": {"k": {"value": "v"}},
    }


async def test_get_user(api: MPApi, state: SimulatorState) -> None:
    state.set_mp_user(APPID, OPENID, unionid="oUnion1")
    user = await api.get_user(OPENID)
    assert user["openid"] == OPENID and user["subscribe"] == 1 and user["unionid"] == "oUnion1"


async def test_media_download_round_trip(api: MPApi, state: SimulatorState) -> None:
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    media_id = state.add_media(APPID, content, "image/png", "photo.png")
    assert await api.download_media(media_id) == (content, "image/png", "photo.png")


async def test_upload_then_send_image(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    content = b"\xff\xd8\xff\xe0fake-jpeg"
    media_id = await api.upload_image(content, "shot.jpg")
    assert await api.download_media(media_id) == (content, "image/jpeg", "shot.jpg")
    await api.send_image(OPENID, media_id)
    assert last_body(state, "message/custom/send") == {
        "touser": OPENID,
        "msgtype": "image",
        "image": {"media_id": media_id},
    }


async def test_unknown_media_is_permanent(api: MPApi) -> None:
    with pytest.raises(PermanentAPIError) as excinfo:
        await api.download_media("no-such-media")
    assert excinfo.value.code == "mp_invalid_media"


# -- tokens: one refresh, never a storm ------------------------------------------------------------------------------


async def test_expired_token_once_means_one_refetch_then_success(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    state.inject_fault("message/custom/send", {"errcode": 42001}, times=1)
    await api.send_text(OPENID, "hi")
    assert state.token_fetch_count(APPID) == 2
    assert len(state.sent_messages(APPID, OPENID, kind="custom")) == 1
    tokens = [c.query["access_token"] for c in state.api_calls_for("message/custom/send")]
    assert len(tokens) == 2 and tokens[0] != tokens[1]


async def test_token_rejected_forever_retries_once_then_gives_up(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    state.inject_fault("message/custom/send", {"errcode": 40001}, times=None)
    with pytest.raises(TokenRejected) as excinfo:
        await api.send_text(OPENID, "hi")
    assert isinstance(excinfo.value, TemporaryChannelError)
    assert excinfo.value.errcode == 40001
    assert state.token_fetch_count(APPID) == 2
    assert len(state.api_calls_for("message/custom/send")) == 2


async def test_token_is_reused_between_calls(api: MPApi, state: SimulatorState) -> None:
    for _ in range(3):
        await api.get_user(OPENID)
    assert state.token_fetch_count(APPID) == 1


async def test_token_stored_with_five_minute_margin(client: MPClient, store: MemoryTokenStore) -> None:
    token = client.access_token
    assert store.get(mp_token_key(APPID)) == token
    _value, expires_at = store._values[mp_token_key(APPID)]
    import time

    assert 7200 - 300 - 5 <= expires_at - time.monotonic() <= 7200 - 300


class _CountingStore(MemoryTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str) -> str | None:
        self.reads += 1
        return super().get(key)


async def test_the_process_reuses_its_token_without_reading_the_store_and_drops_it_when_rejected(
        sim: SimulatorServer, state: SimulatorState, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.wecom.tokens as tokens

    store = _CountingStore()
    api = MPApi(MPClient(APPID, SECRET, api_base=sim.api_base_url, store=store))
    for _ in range(3):
        await api.get_user(OPENID)
    # one read finds nothing, one more under the lock, then the fetched token is this process's copy
    assert (store.reads, state.token_fetch_count(APPID)) == (2, 1)
    # another process refreshed the token: this one keeps its copy (still valid for 5 minutes on MP) ...
    store.set(mp_token_key(APPID), "someone-elses-token", 7000)
    await api.get_user(OPENID)
    assert store.reads == 2
    # ... until it is LOCAL_SECONDS old
    monkeypatch.setattr(tokens, "LOCAL_SECONDS", 0.0)
    api.client.token._local = None
    assert api.client.access_token == "someone-elses-token"
    assert store.reads == 3
    # a copy the platform rejects is dropped with the stored one: one refetch, and the call succeeds
    monkeypatch.setattr(tokens, "LOCAL_SECONDS", 30.0)
    api.client.token._local = None
    store.delete(mp_token_key(APPID))
    await api.get_user(OPENID)
    fetched = state.token_fetch_count(APPID)
    state.inject_fault("user/info", {"errcode": 40001}, times=1)
    await api.get_user(OPENID)
    assert state.token_fetch_count(APPID) == fetched + 1
    tokens_used = [c.query["access_token"] for c in state.api_calls_for("user/info")][-3:]
    assert tokens_used[0] == tokens_used[1] != tokens_used[2]
    assert api.client.access_token == tokens_used[2]


def test_wrong_secret_is_permanent(sim: SimulatorServer, state: SimulatorState) -> None:
    client = MPClient(APPID, "wrong-secret", api_base=sim.api_base_url, store=MemoryTokenStore())
    with pytest.raises(PermanentAPIError) as excinfo:
        client.user.get(OPENID)
    assert excinfo.value.code == "mp_bad_credentials"
    assert "wrong-secret" not in str(excinfo.value)


def test_token_endpoint_rate_limited(client: MPClient, state: SimulatorState) -> None:
    state.inject_fault("token", {"errcode": 45009}, times=1)
    with pytest.raises(RateLimited):
        client.user.get(OPENID)


# -- error mapping ---------------------------------------------------------------------------------------------------


async def test_45009_is_rate_limited(api: MPApi, state: SimulatorState) -> None:
    state.inject_fault("message/custom/send", {"errcode": 45009}, times=1)
    with pytest.raises(RateLimited) as excinfo:
        await api.send_text(OPENID, "hi")
    assert isinstance(excinfo.value, TemporaryChannelError)
    assert excinfo.value.retry_after == 60


async def test_45033_and_minus_one_are_temporary(api: MPApi, state: SimulatorState) -> None:
    state.inject_fault("user/info", {"errcode": 45033}, times=1)
    with pytest.raises(RateLimited):
        await api.get_user(OPENID)
    state.inject_fault("user/info", {"errcode": -1}, times=1)
    with pytest.raises(PlatformBusy) as excinfo:
        await api.get_user(OPENID)
    assert excinfo.value.retry_after is not None


async def test_http_502_is_temporary(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    state.inject_fault("message/custom/send", {"http_status": 502}, times=1)
    with pytest.raises(PlatformUnavailable) as excinfo:
        await api.send_text(OPENID, "hi")
    assert isinstance(excinfo.value, TemporaryChannelError)
    assert excinfo.value.status_code == 502


async def test_connection_refused_is_temporary() -> None:
    client = MPClient(APPID, SECRET, api_base="http://127.0.0.1:9/cgi-bin/", store=MemoryTokenStore(), timeout=2)
    with pytest.raises(PlatformUnavailable) as excinfo:
        await MPApi(client).send_text(OPENID, "hi")
    assert "access_token" not in str(excinfo.value) and SECRET not in str(excinfo.value)


async def test_window_closed_after_49_hours_is_permanent(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    await api.send_text(OPENID, "within the window")
    state.advance(49 * 3600)
    with pytest.raises(PermanentChannelError) as excinfo:
        await api.send_text(OPENID, "too late")
    assert excinfo.value.code == "mp_window_closed"
    assert isinstance(excinfo.value, PermanentAPIError) and excinfo.value.errcode == 45015


async def test_template_to_unfollowed_user_is_permanent(api: MPApi, state: SimulatorState) -> None:
    state.set_mp_user(APPID, OPENID, subscribe=False)
    with pytest.raises(PermanentChannelError) as excinfo:
        await api.send_template(OPENID, "TPL-1", {})
    assert excinfo.value.code == "mp_not_subscribed"
    with pytest.raises(PermanentChannelError) as excinfo:
        await api.send_template("oUnknown", "TPL-1", {})
    assert excinfo.value.code == "mp_invalid_openid"


async def test_quota_exceeded_is_permanent(api: MPApi, state: SimulatorState) -> None:
    open_window(state)
    for _ in range(5):
        await api.send_text(OPENID, "x")
    with pytest.raises(PermanentChannelError) as excinfo:
        await api.send_text(OPENID, "sixth")
    assert excinfo.value.code == "mp_quota_exceeded"


# -- sharing one token across processes --------------------------------------------------------------------------------


def _race(clients: list[MPClient]) -> list[str]:
    barrier = threading.Barrier(len(clients))
    tokens: list[str] = []
    errors: list[BaseException] = []

    def work(client: MPClient) -> None:
        try:
            barrier.wait()
            tokens.append(client.access_token)
            client.user.get(OPENID)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return tokens


def test_two_clients_sharing_redis_fetch_one_token(
    sim: SimulatorServer, state: SimulatorState, redis_store: RedisTokenStore
) -> None:
    clients = [MPClient(APPID, SECRET, api_base=sim.api_base_url, store=redis_store) for _ in range(2)]
    tokens = _race(clients)
    assert state.token_fetch_count(APPID) == 1
    assert len(set(tokens)) == 1


def test_many_threads_sharing_redis_fetch_one_token(
    sim: SimulatorServer, state: SimulatorState, redis_store: RedisTokenStore
) -> None:
    # separate stores over separate connections behave like separate processes
    stores = [RedisTokenStore(redis.Redis.from_url(REDIS_URL), prefix=redis_store.prefix) for _ in range(8)]
    clients = [MPClient(APPID, SECRET, api_base=sim.api_base_url, store=s) for s in stores]
    _race(clients)
    assert state.token_fetch_count(APPID) == 1
    for s in stores:
        s.client.close()


def test_many_threads_sharing_memory_store_fetch_one_token(sim: SimulatorServer, state: SimulatorState) -> None:
    store = MemoryTokenStore()
    _race([MPClient(APPID, SECRET, api_base=sim.api_base_url, store=store) for _ in range(8)])
    assert state.token_fetch_count(APPID) == 1


def test_rejected_token_is_only_deleted_if_still_current(
    sim: SimulatorServer, state: SimulatorState, redis_store: RedisTokenStore
) -> None:
    client = MPClient(APPID, SECRET, api_base=sim.api_base_url, store=redis_store)
    fresh = client.access_token
    assert client.token.invalidate("some-older-token") is False
    assert redis_store.get(mp_token_key(APPID)) == fresh
    assert client.token.invalidate(fresh) is True
    assert redis_store.get(mp_token_key(APPID)) is None


def test_redis_store_basics(redis_store: RedisTokenStore) -> None:
    redis_store.set("k", "v", 0.05)
    assert redis_store.get("k") == "v"
    import time

    time.sleep(0.1)
    assert redis_store.get("k") is None
    redis_store.set("k", "v", 10)
    redis_store.delete("k")
    assert redis_store.get("k") is None
    with redis_store.lock("k", timeout=2):
        other = RedisTokenStore(redis_store.client, prefix=redis_store.prefix)
        with pytest.raises(TemporaryChannelError), other.lock("k", timeout=0.2):
            pass


def test_memory_store_ttl_and_lock() -> None:
    now = [100.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    store.set("k", "v", 10)
    assert store.get("k") == "v"
    now[0] += 10
    assert store.get("k") is None
    with store.lock("k", timeout=1):
        blocked: list[BaseException] = []

        def try_lock() -> None:
            try:
                with store.lock("k", timeout=0.05):
                    pass
            except TemporaryChannelError as exc:
                blocked.append(exc)

        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
        assert len(blocked) == 1


# -- factory ---------------------------------------------------------------------------------------------------------


def test_mp_api_for_caches_one_client_per_appid(sim: SimulatorServer) -> None:
    reset_mp_apis()
    settings = Settings(wechat_api_base=sim.api_base_url)
    first = mp_api_for(APPID, SECRET, settings)
    assert mp_api_for(APPID, SECRET, settings) is first
    assert mp_api_for("wxother", "s", settings) is not first
    assert first.client.API_BASE_URL == sim.api_base_url
    assert SECRET not in repr(first.client)
    reset_mp_apis()


async def test_token_bucket_spaces_calls() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert bucket._take() == 0.0 and bucket._take() == 0.0
    assert bucket._take() == pytest.approx(0.1)
    now[0] += 0.1
    await bucket.acquire()


def test_make_token_store_picks_redis_or_memory_and_caches() -> None:
    reset_token_stores()
    redis_backed = make_token_store(Settings(redis_url=REDIS_URL))
    assert isinstance(redis_backed, RedisTokenStore)
    assert make_token_store(Settings(redis_url=REDIS_URL)) is redis_backed
    memory = make_token_store(Settings())
    assert isinstance(memory, MemoryTokenStore)
    assert make_token_store(Settings()) is memory
    redis_backed.client.close()
    reset_token_stores()


def test_the_session_takes_the_environments_proxy_once_and_honours_no_proxy(
        sim: SimulatorServer, store: MemoryTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = MPClient(APPID, SECRET, api_base="https://api.weixin.qq.com/cgi-bin/", store=store)
    assert proxied._http.proxies["https"] == "http://proxy.corp.example:3128"
    assert proxied._http.trust_env is False  # no proxy or ~/.netrc lookups per call
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = MPClient(APPID, SECRET, api_base=sim.api_base_url, store=store)
    assert direct._http.proxies == {}


def test_answers_decode_with_orjson_and_leniently_where_it_refuses(client: MPClient) -> None:
    import requests

    def answer(content: bytes) -> Any:
        response = requests.Response()
        response._content = content
        return client._decode_result(response)

    assert answer('{"errcode":0,"nickname":"王先生"}'.encode()) == {"errcode": 0, "nickname": "王先生"}
    # a raw control character inside a string and broken UTF-8: wechatpy's decoding still reads them
    assert answer(b'{"errcode":0,"remark":"a\tb\xff"}') == {"errcode": 0, "remark": "a\tb"}
    media = b"\x89PNG\r\n\x1a\n"
    assert isinstance(answer(media), requests.Response)
