"""Integers too large for the database, in a path, a query or a body, are a 4xx that names them, never a 500
(found by the contract run, tests/app/test_api_contract.py)."""

from __future__ import annotations

import httpx

from app.customers.models import CustomerMerge
from app.tickets.models import Ticket
from tests import factories

HUGE = 10**20


async def _headers() -> dict[str, str]:
    org = await factories.org()
    return {"Authorization": f"Bearer {await factories.token(org['people']['admin'])}"}


async def test_huge_path_and_query_integers_are_a_400(api: httpx.AsyncClient) -> None:
    h = await _headers()
    for url in [f"/api/v1/tickets/{HUGE}", f"/api/v1/customers/{HUGE}", f"/api/v1/kb/articles/{HUGE}",
                f"/api/v1/approvals/{HUGE}", f"/api/v1/tickets?group_id={HUGE}", f"/api/v1/audit?limit={HUGE}"]:
        r = await api.get(url, headers=h)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["code"] == "invalid_parameter"
        assert r.json()["error"]["message"].endswith("超出范围"), url


async def test_huge_ids_in_a_body_are_a_422(api: httpx.AsyncClient) -> None:
    h = await _headers()
    customer = await factories.customer()
    r = await api.post("/api/v1/customers/merges", headers=h, json={"survivor_id": HUGE, "merged_id": customer.id})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"] == [
        {"field": "survivor_id", "type": "less_than_equal", "message": "字段 survivor_id 必须小于或等于 2147483647"}]
    r = await api.post("/api/v1/tickets", headers=h, json={"customer_id": customer.id, "subject": "退款",
                                                            "group_id": HUGE})
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["error"]["details"]["fields"]] == ["group_id"]
    assert await CustomerMerge.all().count() == 0 and await Ticket.all().count() == 0


async def test_a_search_longer_than_a_ticket_number_searches_subjects(api: httpx.AsyncClient) -> None:
    h = await _headers()
    r = await api.get("/api/v1/tickets", headers=h, params={"q": "退" * 40})
    assert (r.status_code, r.json()) == (200, {"items": [], "next_cursor": None})
    r = await api.get("/api/v1/tickets", headers=h, params={"q": "退" * 201})
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "query_too_long", "message": "搜索内容最多 200 个字符"}
