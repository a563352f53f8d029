"""The department permission matrix: role × (own, child, sibling department) × (list, read, reply, patch, reveal)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.security.scope import SYSTEM
from app.tickets import service
from tests import factories

#: (role, department of the ticket's group) -> expected HTTP status for read/reply/patch; list = visible or not
MATRIX: dict[tuple[str, str], int] = {
    ("admin", "service"): 200, ("admin", "aftersales"): 200, ("admin", "tech"): 200,
    ("lead", "service"): 200, ("lead", "aftersales"): 200, ("lead", "tech"): 404,
    ("agent", "service"): 200, ("agent", "aftersales"): 404, ("agent", "tech"): 404,
}
#: reveal needs the right on top of the scope: admins and leads have it, agents do not
REVEAL = {"admin": 200, "lead": 200, "agent": 403}


@pytest.mark.parametrize(("role", "where"), sorted(MATRIX))
async def test_permission_matrix(api: httpx.AsyncClient, role: str, where: str) -> None:
    data = await factories.org()
    cust = await factories.customer(phone="13812345678")
    ticket = await service.create(actor=SYSTEM, customer_id=cust.id, subject="矩阵", phone="13812345678",
                                  group_id=data["groups"][where].id)
    h = {"Authorization": f"Bearer {await factories.token(data['people'][role])}"}
    expected = MATRIX[(role, where)]

    listed = (await api.get("/api/v1/tickets", headers=h)).json()["items"]
    assert (ticket.id in [t["id"] for t in listed]) == (expected == 200)
    assert (await api.get(f"/api/v1/tickets/{ticket.id}", headers=h)).status_code == expected
    r = await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h, json={"text": "回复"})
    assert r.status_code == (201 if expected == 200 else 404)
    version = 2 if expected == 200 else 1  # the reply above moved it new -> open
    r = await api.patch(f"/api/v1/tickets/{ticket.id}", headers=h, json={"version": version, "priority": "high"})
    assert r.status_code == expected
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=h, json={"field": "phone", "reason": "回访"})
    assert r.status_code == (REVEAL[role] if expected == 200 else 404)
    if r.status_code == 200:
        assert r.json() == {"field": "phone", "value": "+8613812345678"}
    r = await api.get(f"/api/v1/customers/{cust.id}", headers=h)
    assert r.status_code == expected
    if expected == 200:
        assert r.json()["phone"] == "138****5678"


async def test_reveal_is_audited(api: httpx.AsyncClient) -> None:
    from app.security.models import AuditLog

    data = await factories.org()
    cust = await factories.customer(phone="13812345678")
    await service.create(actor=SYSTEM, customer_id=cust.id, subject="x", group_id=data["groups"]["service"].id)
    h = {"Authorization": f"Bearer {await factories.token(data['people']['lead'])}"}
    r = await api.post(f"/api/v1/customers/{cust.id}/reveal", headers=h, json={"field": "phone", "reason": "回访确认"})
    assert r.json() == {"field": "phone", "value": "+8613812345678"}
    rows: list[dict[str, Any]] = await AuditLog.all().values("staff_id", "action", "object_type", "field", "reason")
    assert rows == [{"staff_id": data["people"]["lead"].id, "action": "reveal", "object_type": "customer",
                     "field": "phone", "reason": "回访确认"}]
