"""POST /api/v1/events and POST /api/v1/tickets from other systems: customers by any identity, Idempotency-Key,
business-event rules, token scopes, and polling with updated_since."""

from __future__ import annotations

from typing import Any

import httpx

from app.channels.testing import RecordingAdapter
from app.customers.models import Customer, CustomerIdentity
from app.integrations.events import holds, render
from app.integrations.models import BusinessEvent
from app.outbox.models import OutboxMessage
from app.security.service import create_token
from app.tickets.models import Ticket
from tests import factories


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _admin() -> dict[str, str]:
    data = await factories.org()
    return _bearer(await factories.token(data["people"]["admin"]))


PAYMENT_RULE = {"name": "大额支付失败", "event_type": "payment_failed", "action": "both",
                "conditions": [{"field": "amount", "op": "gte", "value": 100}],
                "subject": "支付失败：订单 {order_no}", "description": "金额 {amount} 元，原因：{reason}",
                "message": "您好，您的订单 {order_no} 支付未成功，我们的客服会主动联系您。", "priority": "high",
                "tags": ["主动服务"]}


async def test_the_same_event_posted_twice_with_one_key_makes_one_ticket(api: httpx.AsyncClient) -> None:
    admin = await _admin()
    assert (await api.post("/api/v1/event-rules", headers=admin, json=PAYMENT_RULE)).status_code == 201
    event: dict[str, Any] = {"type": "payment_failed",
                             "customer": {"external_ref": "u-1001", "phone": "13812345678", "name": "李先生"},
                             "data": {"order_no": "2026120512345678", "amount": 299, "reason": "余额不足"}}
    key = {**admin, "Idempotency-Key": "evt-7f3a"}
    first = await api.post("/api/v1/events", headers=key, json=event)
    assert first.status_code == 201, first.text
    [result] = first.json()["results"]
    assert result["ticket_number"].startswith("GD-") and result["message"] == "no_channel"
    # the same body with other key order and spacing is the same request
    again = await api.post("/api/v1/events", headers={**key, "content-type": "application/json"},
                           content=b'{"data": {"reason": "\\u4f59\\u989d\\u4e0d\\u8db3", "amount": 299, '
                                   b'"order_no": "2026120512345678"}, "type": "payment_failed", '
                                   b'"customer": {"name": "\\u674e\\u5148\\u751f", "phone": "13812345678", '
                                   b'"external_ref": "u-1001"}}')
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.post("/api/v1/events", headers=key, json={**event, "data": {**event["data"], "amount": 1}})
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert await Ticket.all().count() == 1 and await BusinessEvent.all().count() == 1
    ticket = await Ticket.get()
    assert (ticket.subject, ticket.priority, ticket.tags) == ("支付失败：订单 2026120512345678", "high", ["主动服务"])
    assert ticket.custom_fields["event_type"] == "payment_failed"
    # a new key is a new event, for the same customer (found by the caller's own external_ref)
    r = await api.post("/api/v1/events", headers={**admin, "Idempotency-Key": "evt-7f3b"}, json=event)
    assert r.status_code == 201 and r.json()["customer_id"] == first.json()["customer_id"]
    assert await Customer.all().count() == 1 and await Ticket.all().count() == 2


async def test_a_rule_messages_the_customer_on_their_channel_when_its_conditions_hold(
        api: httpx.AsyncClient, recording: RecordingAdapter) -> None:
    admin = await _admin()
    _account, customer = await factories.channel_customer(handle="u-88")
    await CustomerIdentity.create(customer=customer, kind="external_userid", scope="", value="wmEXT88")
    rule = {**PAYMENT_RULE, "action": "message"}
    assert (await api.post("/api/v1/event-rules", headers=admin, json=rule)).status_code == 201
    small = {"type": "payment_failed", "customer": {"external_userid": "wmEXT88"}, "data": {"amount": 20}}
    r = await api.post("/api/v1/events", headers=admin, json=small)
    assert (r.status_code, r.json()["results"]) == (201, [])
    big = {**small, "data": {"amount": "150", "order_no": "A-1"}}
    r = await api.post("/api/v1/events", headers=admin, json=big)
    assert r.status_code == 201 and r.json()["customer_id"] == customer.id
    assert [x["message"] for x in r.json()["results"]] == ["queued"]
    [row] = await OutboxMessage.filter(channel="test")
    assert (row.recipient, row.payload["text"]) == ("u-88", "您好，您的订单 A-1 支付未成功，我们的客服会主动联系您。")
    assert await Ticket.all().count() == 0


async def test_a_token_without_the_events_scope_gets_403_on_events(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    admin = data["people"]["admin"]
    reader = _bearer(await create_token(staff=admin, name="bi", scopes=("read",)))
    event = {"type": "delivery_delayed", "customer": {"external_ref": "x"}, "data": {}}
    r = await api.post("/api/v1/events", headers=reader, json=event)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "scope_required")
    assert r.json()["error"]["message"] == "该 API 令牌没有“业务事件”权限（events）"
    assert (await api.get("/api/v1/tickets", headers=reader)).status_code == 200
    r = await api.post("/api/v1/tickets", headers=reader, json={"customer": {"external_ref": "x"}, "subject": "催单"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "scope_required")
    events_only = _bearer(await create_token(staff=admin, name="erp", scopes=("events",)))
    assert (await api.get("/api/v1/tickets", headers=events_only)).status_code == 403
    assert (await api.post("/api/v1/events", headers=events_only, json=event)).status_code == 201
    assert await Customer.all().count() == 1 and await Ticket.all().count() == 0


async def test_tickets_by_identity_find_the_customer_and_honour_the_key(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    admin = _bearer(await factories.token(data["people"]["admin"]))
    known = await factories.customer(name="老客户", phone="13900001111")
    body: dict[str, Any] = {"customer": {"phone": "+86 139 0000 1111", "external_ref": "crm-9"}, "subject": "门锁坏了"}
    first = await api.post("/api/v1/tickets", headers={**admin, "Idempotency-Key": "t-1"}, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["customer_id"] == known.id
    again = await api.post("/api/v1/tickets", headers={**admin, "Idempotency-Key": "t-1"}, json=body)
    assert again.json() == first.json() and await Ticket.all().count() == 1
    # now the caller's own id names the customer
    r = await api.post("/api/v1/tickets", headers=admin,
                       json={"customer": {"external_ref": "crm-9"}, "subject": "又坏了"})
    assert r.json()["customer_id"] == known.id
    # both or neither way of naming the customer is refused, and so is a customer with no identity
    for bad in ({"customer_id": known.id, "customer": {"external_ref": "crm-9"}, "subject": "x"}, {"subject": "x"},
                {"customer": {"name": "无名"}, "subject": "x"}):
        r = await api.post("/api/v1/tickets", headers=admin, json=bad)
        assert r.status_code == 422, bad
    # an agent may not create customers, and a customer outside their scope is as unknown
    agent = _bearer(await factories.token(data["people"]["agent"]))
    r = await api.post("/api/v1/tickets", headers=agent, json={"customer": {"phone": "13700000000"}, "subject": "x"})
    assert r.status_code == 404
    r = await api.post("/api/v1/tickets", headers=agent, json={"customer": {"phone": "13900001111"}, "subject": "x"})
    assert r.status_code == 404
    assert await Ticket.all().count() == 2 and await Customer.all().count() == 1


async def test_polling_with_updated_since_pages_oldest_change_first(api: httpx.AsyncClient) -> None:
    admin = await _admin()
    ids = []
    for n in range(3):
        r = await api.post("/api/v1/tickets", headers=admin, json={"customer": {"external_ref": f"p-{n}"},
                                                                    "subject": f"问题{n}"})
        ids.append(r.json()["id"])
    r = await api.get("/api/v1/tickets", headers=admin, params={"updated_since": "2020-01-01T00:00:00Z", "limit": 2})
    assert r.status_code == 200
    assert [t["id"] for t in r.json()["items"]] == ids[:2] and r.json()["next_cursor"]
    r = await api.get("/api/v1/tickets", headers=admin, params={"updated_since": "2020-01-01T00:00:00Z", "limit": 2,
                                                                "cursor": r.json()["next_cursor"]})
    assert [t["id"] for t in r.json()["items"]] == ids[2:] and r.json()["next_cursor"] is None
    r = await api.get("/api/v1/tickets", headers=admin, params={"updated_since": "2099-01-01T00:00:00+08:00"})
    assert r.json()["items"] == []
    r = await api.get("/api/v1/tickets", headers=admin, params={"updated_since": "昨天"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameter")


def test_conditions_and_placeholders() -> None:
    data = {"amount": 150, "order": {"city": "上海"}, "tags": ["vip"], "note": "加急"}
    assert holds({"field": "amount", "op": "gt", "value": 100}, data)
    assert not holds({"field": "amount", "op": "lt", "value": "abc"}, data)
    assert holds({"field": "order.city", "op": "in", "value": ["北京", "上海"]}, data)
    assert holds({"field": "tags", "op": "contains", "value": "vip"}, data)
    assert holds({"field": "missing", "op": "exists", "value": False}, data)
    assert not holds({"field": "missing", "op": "eq", "value": None}, data)
    assert holds({"field": "amount", "op": "ne", "value": "151"}, data)
    assert render("{order.city} {amount} {nothing}{amount.__class__}", data) == "上海 150 "
    assert render("{0.__class__}", data) == ""


async def test_erasing_a_customer_erases_the_events_sent_about_them(api: httpx.AsyncClient) -> None:
    from app.customers import privacy

    data = await factories.org()
    admin = _bearer(await factories.token(data["people"]["admin"]))
    event = {"type": "delivery_delayed", "customer": {"external_ref": "u-7"}, "data": {"address": "上海市长宁区"}}
    r = await api.post("/api/v1/events", headers=admin, json=event)
    assert (await BusinessEvent.get()).data == {"address": "上海市长宁区"}
    actor = await factories.actor(data["people"]["admin"])
    await privacy.erase(actor=actor, customer_id=r.json()["customer_id"], confirm=True)
    assert (await BusinessEvent.get()).data == {}


async def test_a_customer_known_only_by_email_is_written_to_from_the_desk_mailbox(api: httpx.AsyncClient) -> None:
    from app.channels.email import accounts as mail_accounts

    admin = await _admin()
    rule = {**PAYMENT_RULE, "action": "message"}
    assert (await api.post("/api/v1/event-rules", headers=admin, json=rule)).status_code == 201
    event = {"type": "payment_failed", "customer": {"email": "Zhou@Example.cn"},
             "data": {"amount": 300, "order_no": "B-7"}}
    r = await api.post("/api/v1/events", headers=admin, json=event)
    assert [x["message"] for x in r.json()["results"]] == ["no_channel"]  # no mailbox yet

    mailbox = await mail_accounts.upsert_account(
        key="support", name="客服中心", address="support@example.com", imap_host="127.0.0.1", imap_port=993,
        smtp_host="127.0.0.1", smtp_port=465, username="support@example.com", password="x")
    r = await api.post("/api/v1/events", headers=admin, json=event)
    assert [x["message"] for x in r.json()["results"]] == ["queued"]
    [row] = await OutboxMessage.filter(channel="email")
    assert (row.recipient, row.channel_account_id) == ("zhou@example.cn", mailbox.id)  # type: ignore[attr-defined]
    # their answer from that address finds the same customer
    identity = await CustomerIdentity.get(kind="email", scope="support", value="zhou@example.cn")
    assert identity.customer_id == r.json()["customer_id"]  # type: ignore[attr-defined]

    # an address another customer already writes from is theirs: nobody is merged, nothing is sent
    other = await Customer.create(name="别人")
    await CustomerIdentity.filter(id=identity.id).update(customer_id=other.id)
    r = await api.post("/api/v1/events", headers=admin, json=event)
    assert [x["message"] for x in r.json()["results"]] == ["no_channel"]
    assert await OutboxMessage.filter(channel="email").count() == 1
