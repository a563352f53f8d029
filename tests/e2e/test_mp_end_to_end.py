"""The Official Account channel end to end: WeChat (simulated) → a real desk process → WeChat."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import httpx

from tests.e2e.conftest import TEMPLATE_ID, Desk


def _openid() -> str:
    return "oE2e" + uuid.uuid4().hex[:20]


def _ticket_of(desk: Desk, subject: str) -> dict | None:  # type: ignore[type-arg]
    with desk.client() as c:
        items = c.get("/api/v1/tickets", params={"q": subject[:10], "limit": 50}).json()["items"]
    return next((t for t in items if t["subject"] == subject), None)


def test_refund_to_reply_to_template_to_status_query(desk: Desk) -> None:
    openid = _openid()
    text = f"订单号 20251125{uuid.uuid4().int % 10**8:08d} 退款还没到账"
    result = asyncio.run(desk.driver.send_text(openid, text))
    assert result.response is not None and result.response.text == "success"
    assert len(result.attempts) == 1  # answered in time: WeChat did not have to retry

    ticket = desk.wait_for(lambda: _ticket_of(desk, text))
    assert ticket["category"] == "退款"
    assert ticket["order_no"] == text.split()[1]
    with desk.client() as c:
        groups = {g: i for i, g in enumerate(["一线客服组", "售后组", "技术支持组", "财务组"], start=1)}
        assert ticket["group_id"] == groups["售后组"]
        ack = desk.wait_for(lambda: [m for m in desk.sim.sent_messages(touser=openid)])
        assert ticket["number"] in ack[0].body["text"]["content"]

        reply = "已为您重新发起退款，预计1-3个工作日到账。"
        r = c.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"text": reply})
        assert r.status_code == 201
        desk.wait_for(lambda: any(m.body.get("text", {}).get("content") == reply
                                  for m in desk.sim.sent_messages(touser=openid)))

        current = c.get(f"/api/v1/tickets/{ticket['id']}").json()
        r = c.patch(f"/api/v1/tickets/{ticket['id']}", json={"version": current["version"], "status": "resolved"})
        assert r.status_code == 200, r.text
        template = desk.wait_for(lambda: [m for m in desk.sim.sent_messages(touser=openid) if m.kind == "template"])
        assert template[0].body["template_id"] == TEMPLATE_ID
        assert template[0].body["data"]["keyword2"] == {"value": "已解决"}

    asyncio.run(desk.driver.send_text(openid, "查询"))
    answer = desk.wait_for(lambda: [m for m in desk.sim.sent_messages(touser=openid)
                                    if "您当前的工单" in m.body.get("text", {}).get("content", "")])
    assert ticket["number"] in answer[0].body["text"]["content"]


def test_same_callback_four_times_concurrently_gives_one_message_and_one_ticket(desk: Desk) -> None:
    openid = _openid()
    text = f"投诉 快递员态度差 {uuid.uuid4().hex[:6]}"

    async def run() -> list[float]:
        first = await desk.driver.send_text(openid, text)
        replays = await asyncio.gather(*(desk.driver.replay(first) for _ in range(3)))
        return [a[1] for r in [first, *replays] for a in r.attempts]

    elapsed = asyncio.run(run())
    assert len(elapsed) == 4  # four deliveries, none needed a retry
    ticket = desk.wait_for(lambda: _ticket_of(desk, text))

    def acks() -> list[object]:
        sent = desk.sim.sent_messages(touser=openid)
        return [m for m in sent if "已受理" in m.body.get("text", {}).get("content", "")]

    desk.wait_for(acks)
    time.sleep(1.5)  # give any duplicate work the time to show itself
    with desk.client() as c:
        matching = [t for t in c.get("/api/v1/tickets", params={"q": text[:10]}).json()["items"]
                    if t["subject"] == text]
        messages = c.get(f"/api/v1/tickets/{ticket['id']}/messages").json()["items"]
    assert len(matching) == 1
    assert [m["text"] for m in messages if m["direction"] == "in"] == [text]
    assert len(acks()) == 1, [m.body for m in desk.sim.sent_messages(touser=openid)]


def test_bad_signature_is_refused_by_the_real_server(desk: Desk) -> None:
    params, body = desk.driver.signed_params(
        "<xml><ToUserName>gh</ToUserName><FromUserName>oX</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>", token="forged")
    r = httpx.post(f"{desk.url}/callbacks/wechat", params=params, content=body)
    assert r.status_code == 403 and r.text == "bad_signature"
    r = httpx.post(f"{desk.url}/api/v1/tickets", json={"subject": 1},
                   headers={"Authorization": f"Bearer {desk.token}"})
    assert r.status_code == 422


def test_graceful_shutdown_finishes_in_flight_requests(desk: Desk) -> None:
    """SIGTERM to a second server process: a request already in flight still gets its answer."""
    from tests.e2e.conftest import free_port, spawn

    port = free_port()
    log = desk.logs[0].with_name(f"shutdown-{port}.log")
    proc = spawn(desk.env, "serve", "--port", str(port), log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)

    async def request_during_shutdown() -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            # the headers are out before the first chunk: the server holds the request while its body trickles in
            # (a request merely sent 10 ms before SIGTERM may not have reached a loaded server yet)
            yield b'{"subject": "'
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            yield '停机时的请求"}'.encode()

        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {desk.token}"}) as c:
            return await c.post("/api/v1/tickets", content=body(), headers={"Content-Type": "application/json"})

    answer = asyncio.run(request_during_shutdown())
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_fields")
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status is "terminated by SIGTERM"
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "app.stopped" in log.read_text()
