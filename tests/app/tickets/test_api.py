from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service
from app.tickets.models import Ticket, TicketEvent
from tests import factories


async def _setup() -> dict[str, Any]:
    data = await factories.org()
    people = data["people"]
    data["headers"] = {k: {"Authorization": f"Bearer {await factories.token(v)}"} for k, v in people.items()}
    return data


async def test_create_get_patch_and_conflict(api: httpx.AsyncClient) -> None:
    data = await _setup()
    cust = await factories.customer(phone="13812345678")
    group = data["groups"]["service"]
    h = data["headers"]["agent"]
    # a customer with no ticket in the agent's scope is unknown to the agent: an admin opens the first ticket
    r = await api.post("/api/v1/tickets", headers=data["headers"]["admin"], json={
        "customer_id": cust.id, "subject": "退款还没到账", "priority": "high", "order_no": "2025112512345678",
        "group_id": group.id, "phone": "13812345678"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["number"].startswith("GD-") and len(created["number"]) == len("GD-20261125-0001")
    assert {k: created[k] for k in ("subject", "status", "priority", "order_no", "group_id", "version", "phone")} == {
        "subject": "退款还没到账", "status": "new", "priority": "high", "order_no": "2025112512345678",
        "group_id": group.id, "version": 1, "phone": "138****5678"}

    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h, json={"version": 1, "status": "open"})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["status"] == "open"
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h, json={"version": 1, "priority": "low"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "version_conflict"
    assert r.json()["error"]["details"]["current"] == {"version": 2, "status": "open", "priority": "high",
                                                        "assignee_id": None}
    r = await api.get(f"/api/v1/tickets/{created['id']}", headers=h)
    assert [e["kind"] for e in r.json()["events"]] == ["created", "status_changed"]


async def test_malformed_bodies_change_nothing(api: httpx.AsyncClient) -> None:
    data = await _setup()
    h = data["headers"]["agent"]
    cust = await factories.customer()
    r = await api.post("/api/v1/tickets", headers=h, content=b"{not json")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")
    r = await api.post("/api/v1/tickets", headers=h, json={"customer_id": cust.id, "subject": "", "bogus": 1})
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["error"]["details"]["fields"]} == {"subject", "bogus"}
    r = await api.post("/api/v1/tickets", headers=h, json=["list"])
    assert r.status_code == 400
    assert await Ticket.all().count() == 0
    assert await TicketEvent.all().count() == 0


async def test_authentication_required(api: httpx.AsyncClient) -> None:
    await _setup()
    r = await api.get("/api/v1/tickets")
    assert r.status_code == 401 and r.json() == {"error": {"code": "unauthorized", "message": "需要有效的 API 令牌"}}
    r = await api.get("/api/v1/tickets", headers={"Authorization": "Bearer gd_wrong"})
    assert r.status_code == 401


async def test_list_filters_and_cursor_pagination(api: httpx.AsyncClient) -> None:
    data = await _setup()
    cust = await factories.customer()
    group = data["groups"]["service"]
    made = [await service.create(actor=SYSTEM, customer_id=cust.id, subject=f"问题 {i}", group_id=group.id)
            for i in range(5)]
    h = data["headers"]["agent"]
    r = await api.get("/api/v1/tickets?limit=2", headers=h)
    page1 = r.json()
    assert [t["id"] for t in page1["items"]] == [made[4].id, made[3].id]
    r = await api.get(f"/api/v1/tickets?limit=2&cursor={page1['next_cursor']}", headers=h)
    page2 = r.json()
    assert [t["id"] for t in page2["items"]] == [made[2].id, made[1].id]
    r = await api.get(f"/api/v1/tickets?limit=2&cursor={page2['next_cursor']}", headers=h)
    assert [t["id"] for t in r.json()["items"]] == [made[0].id] and r.json()["next_cursor"] is None
    r = await api.get(f"/api/v1/tickets?q={made[2].number}", headers=h)
    assert [t["id"] for t in r.json()["items"]] == [made[2].id]
    r = await api.get("/api/v1/tickets?status=bogus", headers=h)
    assert r.status_code == 400
    r = await api.get("/api/v1/tickets?cursor=%%%", headers=h)
    assert r.status_code == 422


async def test_reply_goes_to_outbox_and_note_does_not(api: httpx.AsyncClient) -> None:
    data = await _setup()
    cust = await factories.customer()
    ticket = await service.create(actor=SYSTEM, customer_id=cust.id, subject="咨询",
                                  group_id=data["groups"]["service"].id)
    h = data["headers"]["agent"]
    r = await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h, json={"text": "您好，已为您处理"})
    assert r.status_code == 201
    r = await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h, json={"text": "内部备注", "internal": True})
    assert r.status_code == 201
    rows = await OutboxMessage.all().values("channel", "kind", "payload")
    assert len(rows) == 1 and rows[0]["channel"] == "null" and rows[0]["payload"]["text"] == "您好，已为您处理"
    r = await api.get(f"/api/v1/tickets/{ticket.id}/messages", headers=h)
    assert [(m["direction"], m["text"]) for m in r.json()["items"]] == [
        ("out", "您好，已为您处理"), ("internal", "内部备注")]
    fresh = await Ticket.get(id=ticket.id)
    assert fresh.status == "open" and fresh.first_responded_at is not None


async def test_openapi_document(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/openapi.json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) >= {"/tickets", "/tickets/{ticket_id}", "/tickets/{ticket_id}/messages", "/customers"}
    assert doc["components"]["schemas"]["TicketPatch"]["required"] == ["version"]


async def test_health_endpoints(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).text == "ok"
    r = await api.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert r.headers["x-request-id"]


async def test_an_agent_cannot_pull_a_customer_into_scope_and_cannot_tell_unknown_from_hidden(
        api: httpx.AsyncClient) -> None:
    data = await _setup()
    hidden = await factories.customer(phone="13812345678")
    h = data["headers"]["agent"]
    body = {"subject": "帮我看看", "group_id": data["groups"]["service"].id}
    out_of_scope = await api.post("/api/v1/tickets", headers=h, json={"customer_id": hidden.id, **body})
    unknown = await api.post("/api/v1/tickets", headers=h, json={"customer_id": hidden.id + 1000, **body})
    assert (out_of_scope.status_code, unknown.status_code) == (404, 404)
    assert out_of_scope.json() == unknown.json()
    assert await Ticket.all().count() == 0
    assert (await api.get(f"/api/v1/customers/{hidden.id}", headers=h)).status_code == 404


# -- issue 11: bad input is a clear 422 in Chinese, never a 500 ------------------------------------------------------


async def _ticket_for_patch(api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    data = await _setup()
    h = data["headers"]["admin"]
    cust = await factories.customer()
    r = await api.post("/api/v1/tickets", headers=h, json={"customer_id": cust.id, "subject": "门锁坏了",
                                                           "group_id": data["groups"]["service"].id})
    assert r.status_code == 201, r.text
    return r.json(), h


async def test_patch_with_null_for_a_required_column_is_422(api: httpx.AsyncClient) -> None:
    created, h = await _ticket_for_patch(api)
    before = await Ticket.get(id=created["id"])
    cases = {"subject": "字段 subject 必须是字符串", "category": "字段 category 必须是字符串",
             "tags": "字段 tags 必须是数组", "custom_fields": "字段 custom_fields 必须是对象"}
    for name, message in cases.items():
        r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h, json={"version": 1, name: None})
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["details"]["fields"] == [{"field": name, "type": r.json()["error"]["details"][
            "fields"][0]["type"], "message": message}]
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h, json={"version": 1, "priority": None})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "priority"
    assert "只能是以下值之一" in r.json()["error"]["details"]["fields"][0]["message"]
    # nullable columns still clear with null
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h, json={"version": 1, "order_no": None})
    assert r.status_code == 200, r.text
    fresh = await Ticket.get(id=created["id"])
    assert (fresh.subject, fresh.category, fresh.tags, fresh.custom_fields, fresh.version) == (
        "门锁坏了", before.category, before.tags, before.custom_fields, 1)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, {"deep": [[[[[[1]]]]]]}, [10**30]])
async def test_custom_fields_beyond_what_a_json_column_holds_is_422(api: httpx.AsyncClient, value: Any) -> None:
    created, h = await _ticket_for_patch(api)
    before = (await Ticket.get(id=created["id"])).custom_fields
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h,
                        json={"version": 1, "custom_fields": {"n": value}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["fields"][0] == {
        "field": "custom_fields", "type": r.json()["error"]["details"]["fields"][0]["type"],
        "message": "字段 custom_fields 的值不合法"}
    assert (await Ticket.get(id=created["id"])).custom_fields == before
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers=h,
                        json={"version": 1, "custom_fields": {"n": 2**63 - 1, "x": 1.5}})
    assert r.status_code == 200, r.text


async def test_custom_fields_nan_is_422(api: httpx.AsyncClient) -> None:
    created, h = await _ticket_for_patch(api)
    r = await api.patch(f"/api/v1/tickets/{created['id']}", headers={**h, "content-type": "application/json"},
                        content=b'{"version": 1, "custom_fields": {"n": NaN}}')
    assert r.status_code == 422, r.text


async def test_a_ticket_for_a_group_is_checked_against_the_cached_groups_and_an_unknown_one_is_422(
        api: httpx.AsyncClient) -> None:
    from app.staff.models import SkillGroup
    from tests.sqlcount import count_statements

    data = await _setup()
    cust = await factories.customer()
    h = data["headers"]["admin"]
    group = data["groups"]["service"]
    body = {"customer_id": cust.id, "subject": "物流停滞"}
    r = await api.post("/api/v1/tickets", headers=h, json={**body, "group_id": 9999})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_group"
    assert await Ticket.all().count() == 0
    # the first create fills routing's group cache; the next one reads no skill_group row
    assert (await api.post("/api/v1/tickets", headers=h, json={**body, "group_id": group.id})).status_code == 201
    with count_statements() as statements:
        r = await api.post("/api/v1/tickets", headers=h, json={**body, "group_id": group.id})
    assert r.status_code == 201 and r.json()["group_id"] == group.id
    assert not [s for s in statements if "skill_group" in s], statements
    # a group created after the cache was filled is read, not refused
    new = await SkillGroup.create(name="新建组", department_id=2)
    r = await api.post("/api/v1/tickets", headers=h, json={**body, "group_id": new.id})
    assert r.status_code == 201 and r.json()["group_id"] == new.id
