"""Issue 10, observation 8: personal data is masked the same way everywhere, for every role; seeing it in clear is
an explicit reveal that always writes an audit row (leads and admins included), and the reveal returns the value."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.customers import service as customers
from app.security.models import AuditLog
from app.security.pii import mask_data, mask_email, mask_id_card, mask_phone, mask_text
from app.security.scope import SYSTEM
from app.tickets import service
from tests import factories


@pytest.mark.parametrize(("text", "masked"), [
    ("电话13812345678，备用 +86 139-8765-4321", "电话138****5678，备用 139****4321"),
    ("手机１３６１２３４５６７１谢谢", "手机136****5671谢谢"),
    ("号码 １３６-１２３４-５６７１", "号码 136****5671"),
    ("打 138 1234 5678 或 138-1234-5678", "打 138****5678 或 138****5678"),
    ("＋８６ １３８１２３４５６７８", "138****5678"),
    ("客户2 13812345678", "客户2 138****5678"),
    ("座机 0755-12345678", "座机 0755-****5678"),
    ("身份证11010119900307123X，另一个 110101200001011234", "身份证110***********123X，另一个 110***********1234"),
    ("身份证１１０１０１１９９００３０７１２３ｘ", "身份证110***********123X"),
    ("邮箱 zhang.san@example.com.cn 谢谢", "邮箱 z***@example.com.cn 谢谢"),
    ("联系ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", "联系l***@example.com"),
])
def test_mask_text_hides_phones_id_cards_and_emails(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "工单 GD-20241204-0001 已受理",
    "订单号 202412041234567890123，金额 1380.00 元，数量 12",
    "客服热线 400-820-8820，时间 2024-12-04 13:45",
    "",
    "没有任何个人信息的一句话",
])
def test_mask_text_leaves_other_numbers_alone(text: str) -> None:
    assert mask_text(text) == text


def test_single_value_maskers() -> None:
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone("１３６１２３４５６７１") == "136****5671"
    assert mask_email("zhang@example.com") == "z***@example.com"
    assert mask_id_card("11010119900307123x") == "110***********123X"
    assert mask_data({"a": ["13812345678", 3], "b": {"c": "x@y.cn"}}) == {"a": ["138****5678", 3],
                                                                          "b": {"c": "x***@y.cn"}}


async def _ticket(data: dict[str, Any], *, subject: str, description: str = "", phone: str | None = None,
                  customer_phone: str | None = None, email: str | None = None) -> Any:
    cust = await customers.create(name="王先生", phone=customer_phone, email=email)
    return await service.create(actor=SYSTEM, customer_id=cust.id, subject=subject, description=description,
                                phone=phone, group_id=data["groups"]["service"].id)


async def _headers(data: dict[str, Any], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await factories.token(data['people'][role])}"}


async def test_full_width_digits_and_emails_are_masked_for_an_agent(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    ticket = await _ticket(data, subject="回电１３６１２３４５６７１",
                           description="邮箱 li.si@example.com，电话 136-1234-5671")
    h = await _headers(data, "agent")
    r = await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h,
                       json={"text": "已记录身份证 11010119900307123X", "internal": True})
    assert r.status_code == 201
    body = (await api.get(f"/api/v1/tickets/{ticket.id}", headers=h)).json()
    assert body["subject"] == "回电136****5671"
    assert body["description"] == "邮箱 l***@example.com，电话 136****5671"
    messages = (await api.get(f"/api/v1/tickets/{ticket.id}/messages", headers=h)).json()["items"]
    assert [m["text"] for m in messages] == ["已记录身份证 110***********123X"]
    listed = (await api.get("/api/v1/tickets", headers=h)).json()["items"]
    assert [t["subject"] for t in listed] == ["回电136****5671"]


@pytest.mark.parametrize("role", ["lead", "admin"])
async def test_a_leads_and_an_admins_view_is_masked_too(api: httpx.AsyncClient, role: str) -> None:
    data = await factories.org()
    ticket = await _ticket(data, subject="回电 13812345678", description="电话 13812345678", phone="13812345678")
    h = await _headers(data, role)
    body = (await api.get(f"/api/v1/tickets/{ticket.id}", headers=h)).text
    listed = (await api.get("/api/v1/tickets", headers=h)).text
    for text in (body, listed):
        assert "13812345678" not in text and "138****5678" in text
    assert await AuditLog.all().count() == 0


async def test_a_leads_reveal_returns_the_value_and_is_audited(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    ticket = await _ticket(data, subject="回电", phone="13812345678")
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=await _headers(data, "lead"),
                       json={"field": "phone", "reason": "回电确认地址"})
    assert r.status_code == 200 and r.json() == {"field": "phone", "value": "+8613812345678"}
    rows = await AuditLog.all().values("staff_id", "action", "object_type", "object_id", "field", "reason")
    assert rows == [{"staff_id": data["people"]["lead"].id, "action": "reveal", "object_type": "ticket",
                     "object_id": str(ticket.id), "field": "phone", "reason": "回电确认地址"}]


async def test_reveal_of_a_ticket_whose_phone_is_on_its_customer_returns_the_value(api: httpx.AsyncClient) -> None:
    """The observed null: the ticket had no phone of its own (entered in H5, or taken from the chat), the
    customer had one; the reveal answered {"value": null} and still wrote an audit row."""
    data = await factories.org()
    ticket = await _ticket(data, subject="回电", customer_phone="13912345678", email="wang@example.com")
    h = await _headers(data, "admin")
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=h, json={"field": "phone", "reason": "回访"})
    assert r.status_code == 200 and r.json() == {"field": "phone", "value": "+8613912345678"}
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=h, json={"field": "email", "reason": "回访"})
    assert r.status_code == 200 and r.json() == {"field": "email", "value": "wang@example.com"}
    fields = await AuditLog.filter(object_type="ticket", object_id=str(ticket.id)).order_by("id").values("field")
    assert [f["field"] for f in fields] == ["phone", "email"]


async def test_reveal_with_nothing_to_show_is_a_404_and_writes_no_audit_row(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    ticket = await _ticket(data, subject="无电话")
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=await _headers(data, "lead"),
                       json={"field": "phone", "reason": "回访"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "nothing_to_reveal"
    assert await AuditLog.all().count() == 0


async def test_an_agent_without_the_right_cannot_reveal_and_nothing_is_written(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    ticket = await _ticket(data, subject="回电", phone="13812345678")
    r = await api.post(f"/api/v1/tickets/{ticket.id}/reveal", headers=await _headers(data, "agent"),
                       json={"field": "phone", "reason": "回访"})
    assert r.status_code == 403 and r.json()["error"]["message"] == "你没有查看完整信息的权限"
    assert await AuditLog.all().count() == 0
