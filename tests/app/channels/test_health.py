"""app.channels.health: the last callback outcome per URL, written only when it changes or once a minute, the
rejections of the last 24 h, and never a change to what the platform is answered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.channels import health
from app.channels.models import CallbackHealth, CallbackRejectionCount
from app.timeutil import set_clock

T0 = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)


class Clocks:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clocks]:
    c = Clocks()
    health.reset()
    monkeypatch.setattr(health, "_mono", lambda: c.mono)
    set_clock(lambda: c.wall)
    yield c
    set_clock(None)
    health.reset()


async def _note(scope: str, outcome: str) -> bool:
    """Note one outcome; run the write when one is due (as the answer's tail would); whether one ran."""
    write = health.note(scope, outcome)
    if write is None:
        return False
    await write()
    return True


async def test_a_flood_of_forged_callbacks_writes_once_a_minute(db: None, clocks: Clocks) -> None:
    assert await _note("wechat_mp:default", "bad_signature")
    row = await CallbackHealth.get(scope="wechat_mp:default")
    assert (row.outcome, row.seen_at, row.rejected_reason, row.verified_at) == ("bad_signature", T0,
                                                                               "bad_signature", None)
    writes = 0
    for _ in range(500):
        clocks.advance(0.1)
        writes += await _note("wechat_mp:default", "bad_signature")
    assert writes == 0  # 50 s of forgeries: nothing written
    assert (await CallbackRejectionCount.get(scope="wechat_mp:default")).count == 1
    clocks.advance(10.5)
    assert await _note("wechat_mp:default", "bad_signature")
    assert (await CallbackRejectionCount.get(scope="wechat_mp:default")).count == 502
    assert (await CallbackHealth.get(scope="wechat_mp:default")).seen_at == T0 + timedelta(seconds=60.5)


async def test_a_change_of_outcome_is_written_at_once(db: None, clocks: Clocks) -> None:
    assert await _note("wecom_app", "verified")
    clocks.advance(1)
    assert await _note("wecom_app", "decrypt_failed")
    clocks.advance(1)
    assert await _note("wecom_app", "verified")
    row = await CallbackHealth.get(scope="wecom_app")
    assert (row.outcome, row.verified_at, row.rejected_at, row.rejected_reason) == (
        "verified", T0 + timedelta(seconds=2), T0 + timedelta(seconds=1), "decrypt_failed")
    status = (await health.list_status(scopes=["wecom_app", "wecom_contacts"]))
    assert list(status) == ["wecom_app"]
    assert status["wecom_app"].verified and status["wecom_app"].rejections_24h == 1


async def test_outcomes_seen_while_a_write_runs_are_taken_along(db: None, clocks: Clocks) -> None:
    write = health.note("wechat_mp:shop", "verified")
    assert write is not None
    assert health.note("wechat_mp:shop", "replayed") is None  # one writer per URL: it takes this one along
    await write()
    row = await CallbackHealth.get(scope="wechat_mp:shop")
    assert (row.outcome, row.rejected_reason) == ("replayed", "replayed")
    assert (await health.list_status(scopes=["wechat_mp:shop"]))["wechat_mp:shop"].reason_label == (
        "重复提交的请求（疑似重放）")


async def test_the_24_hour_count_covers_this_hour_and_the_23_before(db: None, clocks: Clocks) -> None:
    hour = T0.replace(minute=0)
    assert await _note("wechat_mp:default", "stale_timestamp")
    await CallbackRejectionCount.create(scope="wechat_mp:default", hour=hour - timedelta(hours=23), count=5)
    await CallbackRejectionCount.create(scope="wechat_mp:default", hour=hour - timedelta(hours=24), count=7)
    await CallbackRejectionCount.create(scope="wechat_mp:other", hour=hour, count=9)
    status = (await health.list_status(scopes=["wechat_mp:default"]))["wechat_mp:default"]
    assert (status.verified, status.reason, status.reason_label, status.rejections_24h) == (
        False, "stale_timestamp", "时间戳已过期", 6)


async def test_old_hourly_counts_are_pruned_when_counts_are_written(db: None, clocks: Clocks) -> None:
    await CallbackRejectionCount.create(scope="wecom_app", hour=T0 - timedelta(hours=49), count=3)
    await CallbackRejectionCount.create(scope="wecom_app", hour=T0 - timedelta(hours=47), count=4)
    assert await _note("wecom_app", "bad_signature")
    rows = await CallbackRejectionCount.filter(scope="wecom_app").order_by("hour")
    assert [r.count for r in rows] == [4, 1]


async def _endpoint(request: Request) -> Response:
    return {"ok": PlainTextResponse("success"), "bad": PlainTextResponse("bad_signature", status_code=403),
            "odd": PlainTextResponse("<html>?</html>", status_code=400),
            "gone": PlainTextResponse("unknown account", status_code=404)}[request.path_params["what"]]


async def _call(endpoint: health.Endpoint, what: str) -> tuple[int, bytes]:
    """Run ``endpoint`` as Starlette would; the status and body the platform got."""
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": [], "query_string": b"",
             "path_params": {"what": what}}
    response = await endpoint(Request(scope, receive))
    await response(scope, receive, send)
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])


async def test_observe_keeps_the_answer_and_notes_it(db: None, clocks: Clocks) -> None:
    observed = health.observe(_endpoint, lambda request: "wechat_mp:t")
    assert await _call(observed, "bad") == (403, b"bad_signature")
    assert (await CallbackHealth.get(scope="wechat_mp:t")).outcome == "bad_signature"
    assert await _call(observed, "odd") == (400, b"<html>?</html>")
    clocks.advance(1)
    assert await _call(observed, "ok") == (200, b"success")
    assert (await CallbackHealth.get(scope="wechat_mp:t")).outcome == "verified"
    assert await _call(observed, "gone") == (404, b"unknown account")
    assert health._states["wechat_mp:t"].outcome == "verified"  # a 404 is no callback of a known account
    clocks.advance(60)
    assert await _call(observed, "odd") == (400, b"<html>?</html>")
    assert (await CallbackHealth.get(scope="wechat_mp:t")).outcome == "rejected"
    assert (await CallbackRejectionCount.get(scope="wechat_mp:t")).count == 3


def test_the_callback_routes_are_observed_per_account_and_url() -> None:
    from app.channels import endpoints

    observed = {r.path: r.endpoint.__qualname__ for r in endpoints.routes if isinstance(r, Route)}
    for path in ("/callbacks/wechat", "/callbacks/wechat/{account}", "/callbacks/wecom/app",
                 "/callbacks/wecom/contacts"):
        assert observed[path] == "observe.<locals>.observed", path
    assert health.scope_of_account(kind="wecom_kf", key="wkX") == "wecom_app"
    assert health.scope_of_account(kind="wechat_mp", key="shop") == "wechat_mp:shop"
    assert health.scope_of_account(kind="email", key="box") is None
