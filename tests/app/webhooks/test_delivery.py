"""Webhooks end to end: a real HTTP receiver (starlette on uvicorn in a thread) verifies every Standard Webhooks
signature with the standardwebhooks library and sees each event exactly once through a forced failure and retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.outbox.jobs import deliver_outbox
from app.outbox.models import OutboxMessage
from app.timeutil import set_clock, utcnow
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookSubscription
from simulator.server import UvicornThread
from tests import factories


@dataclass
class Receiver:
    """What a subscriber's endpoint saw: every attempt, and the events it accepted (deduplicated by webhook-id)."""

    secret: str = ""
    #: answer 500 to the first attempts of each message
    fail_first: int = 0
    #: answer 500 to everything
    always_fail: bool = False
    attempts: list[str] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                event = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                with self.lock:
                    self.bad_signatures += 1
                return PlainTextResponse("bad signature", status_code=401)
            msg_id = request.headers["webhook-id"]
            with self.lock:
                self.attempts.append(msg_id)
                if self.always_fail or self.attempts.count(msg_id) <= self.fail_first:
                    return PlainTextResponse("boom", status_code=500)
                if msg_id not in self.accepted:  # a receiver drops repeats by webhook-id
                    self.accepted[msg_id] = event
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with UvicornThread(rec.app()) as server:
        yield rec, f"{server.url}/hook"


@pytest.fixture
def clock() -> Iterator[list[Any]]:
    moment = [utcnow()]
    set_clock(lambda: moment[0])
    yield moment
    set_clock(None)


async def _subscribe(api: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str]) -> dict[str, Any]:
    r = await api.post("/api/v1/webhooks", headers=headers, json={"url": url, "events": events,
                                                                  "description": "订单系统"})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _deliver_all() -> list[str]:
    rows = await OutboxMessage.filter(channel="webhook", status="pending").order_by("id")
    return [await deliver_outbox({}, row.id) for row in rows]


async def test_each_event_arrives_signed_exactly_once_through_a_failure_and_a_retry(
        api: httpx.AsyncClient, receiver: tuple[Receiver, str], clock: list[Any]) -> None:
    rec, url = receiver
    data = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    sub = await _subscribe(api, admin, url, ["ticket.created", "ticket.status_changed", "message.created"])
    rec.secret = sub["secret"]
    assert sub["secret"].startswith("whsec_") and sub["active"] is True

    r = await api.post("/api/v1/tickets", headers=admin, json={
        "customer": {"phone": "13812345678", "name": "王女士"}, "subject": "退款还没到账，电话13812345678"})
    assert r.status_code == 201, r.text
    ticket = r.json()
    r = await api.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin,
                       json={"text": "您好，已为您加急处理", "status": "pending"})
    assert r.status_code == 201, r.text

    rec.fail_first = 1
    assert await _deliver_all() == ["retry", "retry", "retry"]  # created, message, status (new -> pending)
    assert rec.accepted == {}
    clock[0] += timedelta(hours=1)
    assert await _deliver_all() == ["sent", "sent", "sent"]
    assert await _deliver_all() == []

    assert rec.bad_signatures == 0
    # every attempt of one message carries the same webhook-id, so the receiver keeps each event once
    assert sorted(rec.attempts) == sorted([m for m in rec.accepted for _ in range(2)])
    events = [e["type"] for e in rec.accepted.values()]
    assert sorted(events) == ["message.created", "ticket.created", "ticket.status_changed"]
    by_type = {e["type"]: e["data"] for e in rec.accepted.values()}
    assert by_type["ticket.created"]["ticket"]["number"] == ticket["number"]
    # personal data goes out masked
    assert by_type["ticket.created"]["ticket"]["subject"] == "退款还没到账，电话138****5678"
    assert by_type["message.created"]["message"]["text"] == "您好，已为您加急处理"
    assert (by_type["ticket.status_changed"]["old"], by_type["ticket.status_changed"]["new"]) == ("new", "pending")

    r = await api.get(f"/api/v1/webhooks/{sub['id']}/deliveries", headers=admin)
    assert r.status_code == 200
    log = r.json()["items"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("sent", 2, 200)] * 3
    assert {d["msg_id"] for d in log} == set(rec.accepted)


async def test_replay_sends_the_same_message_again(api: httpx.AsyncClient, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    data = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    sub = await _subscribe(api, admin, url, ["ticket.created"])
    rec.secret = sub["secret"]
    await api.post("/api/v1/tickets", headers=admin, json={"customer": {"external_ref": "c-1"}, "subject": "发票"})
    assert await _deliver_all() == ["sent"]
    delivery = await WebhookDelivery.get()
    r = await api.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{delivery.id}/replay", headers=admin)
    assert r.status_code == 202 and r.json()["status"] == "pending"
    again = await api.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{delivery.id}/replay", headers=admin)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "delivery_in_progress")
    assert await _deliver_all() == ["sent"]
    assert rec.attempts == [delivery.msg_id, delivery.msg_id] and len(rec.accepted) == 1
    assert (await WebhookDelivery.get(id=delivery.id)).attempts == 2


async def test_a_long_run_of_failures_disables_the_subscription_and_tells_its_owner(
        api: httpx.AsyncClient, receiver: tuple[Receiver, str], clock: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rec, url = receiver
    monkeypatch.setattr(service, "DISABLE_AFTER_FAILURES", 3)
    data = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    sub = await _subscribe(api, admin, url, ["ticket.created"])
    rec.secret, rec.always_fail = sub["secret"], True
    await api.post("/api/v1/tickets", headers=admin, json={"customer": {"external_ref": "c-1"}, "subject": "发票"})
    await api.post("/api/v1/tickets", headers=admin, json={"customer": {"external_ref": "c-2"}, "subject": "退货"})
    assert await _deliver_all() == ["retry", "retry"]
    clock[0] += timedelta(hours=1)
    # the 3rd failure in a row switches it off: the other delivery is not attempted any more
    assert await _deliver_all() == ["retry", "failed"]
    row = await WebhookSubscription.get(id=sub["id"])
    assert (row.active, row.consecutive_failures) == (False, 3)
    assert row.disabled_reason == "连续 3 次投递失败，已自动停用"
    cards = await OutboxMessage.filter(channel="wecom_app", kind="staff_card")
    assert [(c.recipient, c.payload["textcard"]["title"]) for c in cards] == [("admin", "事件推送订阅已停用")]
    # nothing more is sent to it, nor written for it
    clock[0] += timedelta(hours=1)
    assert await _deliver_all() == ["failed"]
    assert len(rec.attempts) == 3
    assert sorted(d.status for d in await WebhookDelivery.all()) == ["skipped", "skipped"]
    await api.post("/api/v1/tickets", headers=admin, json={"customer": {"external_ref": "c-3"}, "subject": "换货"})
    assert await WebhookDelivery.all().count() == 2
    # enabling starts the count afresh
    r = await api.post(f"/api/v1/webhooks/{sub['id']}/enable", headers=admin)
    assert (r.json()["active"], r.json()["consecutive_failures"]) == (True, 0)


async def test_failing_for_a_day_disables_too(db: None, clock: list[Any]) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    sub, _ = await service.create(actor=admin, url="http://127.0.0.1:9/hook", events=["ticket.created"])
    await WebhookSubscription.filter(id=sub.id).update(consecutive_failures=7,
                                                       failing_since=utcnow() - timedelta(hours=24))
    [delivery] = await service.publish(event="ticket.created", data={})
    await service.record_attempt(delivery=delivery, attempt=service.Attempt(False, 503, "HTTP 503"), final=False)
    row = await WebhookSubscription.get(id=sub.id)
    assert (row.active, row.disabled_reason) == (False, "连续 8 次投递失败，已自动停用")


async def test_subscriptions_are_for_admins_with_the_admin_scope(api: httpx.AsyncClient) -> None:
    from app.security.service import create_token

    data = await factories.org()
    people = data["people"]
    body = {"url": "https://example.com/hook", "events": ["ticket.created"]}
    lead = {"Authorization": f"Bearer {await factories.token(people['lead'])}"}
    r = await api.post("/api/v1/webhooks", headers=lead, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "admin_only")
    no_admin = await create_token(staff=people["admin"], name="t", scopes=("read", "write", "events"))
    r = await api.post("/api/v1/webhooks", headers={"Authorization": f"Bearer {no_admin}"}, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "scope_required")
    admin = {"Authorization": f"Bearer {await factories.token(people['admin'])}"}
    r = await api.post("/api/v1/webhooks", headers=admin, json={**body, "events": ["ticket.deleted"]})
    assert r.status_code == 422
    r = await api.post("/api/v1/webhooks", headers=admin, json={**body, "url": "ftp://example.com"})
    assert r.status_code == 422
    assert await WebhookSubscription.all().count() == 0
    created = (await api.post("/api/v1/webhooks", headers=admin, json=body)).json()
    listed = (await api.get("/api/v1/webhooks", headers=admin)).json()["items"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    assert (await api.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)).status_code == 204
    assert (await api.get(f"/api/v1/webhooks/{created['id']}", headers=admin)).status_code == 404
