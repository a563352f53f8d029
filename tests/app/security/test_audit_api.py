"""Issue 10, observation 8: the audit log has a reader, GET /api/v1/audit (admins only, filters, cursor pages)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.security.models import AuditLog
from tests import factories


async def _rows(data: dict[str, Any]) -> None:
    lead, admin = data["people"]["lead"], data["people"]["admin"]
    for staff, object_type, object_id, action, field in [
        (lead, "ticket", "1", "reveal", "phone"),
        (admin, "ticket", "2", "reveal", "phone"),
        (lead, "customer", "7", "reveal", "email"),
        (lead, "ticket", "1", "export", ""),
        (admin, "ticket", "1", "reveal", "email"),
    ]:
        await AuditLog.create(staff=staff, object_type=object_type, object_id=object_id, action=action, field=field,
                              reason="回访")


async def _get(api: httpx.AsyncClient, h: dict[str, str], query: str = "") -> Any:
    r = await api.get(f"/api/v1/audit{query}", headers=h)
    assert r.status_code == 200, r.text
    return r.json()


async def test_admins_read_the_audit_log_filtered_by_ticket_actor_and_action(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    await _rows(data)
    ids = [row.id for row in await AuditLog.all().order_by("id")]
    h = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    lead_id = data["people"]["lead"].id

    everything = await _get(api, h)
    assert [e["id"] for e in everything["items"]] == ids[::-1] and everything["next_cursor"] is None
    first = everything["items"][-1]
    assert {k: first[k] for k in ("action", "action_label", "actor_id", "actor_name", "object_type", "object_id",
                                  "field", "field_label", "reason")} == {
        "action": "reveal", "action_label": "查看完整信息", "actor_id": lead_id, "actor_name": "组长",
        "object_type": "ticket", "object_id": "1", "field": "phone", "field_label": "电话", "reason": "回访"}

    assert [e["id"] for e in (await _get(api, h, "?ticket_id=1"))["items"]] == [ids[4], ids[3], ids[0]]
    assert [e["id"] for e in (await _get(api, h, f"?actor_id={lead_id}"))["items"]] == [ids[3], ids[2], ids[0]]
    assert [e["id"] for e in (await _get(api, h, "?action=export"))["items"]] == [ids[3]]
    both = await _get(api, h, f"?ticket_id=1&actor_id={lead_id}&action=reveal")
    assert [e["id"] for e in both["items"]] == [ids[0]]


async def test_cursor_pages_cover_every_row_once(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    await _rows(data)
    h = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    seen: list[int] = []
    page = await _get(api, h, "?limit=2")
    seen += [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        page = await _get(api, h, f"?limit=2&cursor={page['next_cursor']}")
        seen += [e["id"] for e in page["items"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize("role", ["lead", "agent"])
async def test_non_admins_get_403(api: httpx.AsyncClient, role: str) -> None:
    data = await factories.org()
    await _rows(data)
    h = {"Authorization": f"Bearer {await factories.token(data['people'][role])}"}
    r = await api.get("/api/v1/audit", headers=h)
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "admin_only", "message": "只有管理员可以查看审计日志"}


async def test_bad_parameters_are_4xx(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    h = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    assert (await api.get("/api/v1/audit?ticket_id=x", headers=h)).status_code == 400
    r = await api.get("/api/v1/audit?cursor=%%%", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
    assert (await api.get("/api/v1/audit")).status_code == 401


async def test_the_audit_reader_is_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    op = doc["paths"]["/audit"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["ticket_id", "actor_id", "action", "object_type", "since",
                                                     "until", "cursor", "limit"]
    assert "403" in op["responses"]
