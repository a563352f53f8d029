from __future__ import annotations

import io
import logging

import httpx

from app.customers.models import Customer
from app.logs import configure_logging, get_logger
from app.security.crypto import decrypt_field, find_phones, keyed_hash, mask_phone, mask_text, normalize_phone
from app.security.scope import SYSTEM
from app.tickets import service
from tests import factories


def test_masking_and_normalising() -> None:
    assert normalize_phone("138 1234 5678") == "+8613812345678"
    assert normalize_phone("12345") is None
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_text("电话13812345678，备用 +86 139-8765-4321") == "电话138****5678，备用 139****4321"
    assert find_phones("请打 13812345678") == ["+8613812345678"]


async def test_phone_is_encrypted_at_rest_and_searchable(db: None) -> None:
    cust = await factories.customer(phone="13812345678")
    row = await Customer.get(id=cust.id)
    assert row.phone_enc and "13812345678" not in row.phone_enc
    assert decrypt_field(row.phone_enc) == "+8613812345678"
    assert row.phone_hash == keyed_hash("+8613812345678")


async def test_a_masked_field_is_never_in_an_agents_response_or_a_log_line(api: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="DEBUG")
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    try:
        data = await factories.org()
        cust = await factories.customer(phone="13812345678")
        ticket = await service.create(actor=SYSTEM, customer_id=cust.id, subject="回电 13812345678",
                                      description="客户电话 13812345678", phone="13812345678",
                                      group_id=data["groups"]["service"].id)
        h = {"Authorization": f"Bearer {await factories.token(data['people']['agent'])}"}
        bodies = [
            (await api.get(f"/api/v1/tickets/{ticket.id}", headers=h)).text,
            (await api.get(f"/api/v1/customers/{cust.id}", headers=h)).text,
            (await api.get("/api/v1/customers?q=13812345678", headers=h)).text,
        ]
        r = await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h, json={"text": "已致电 13812345678"})
        bodies.append((await api.get(f"/api/v1/tickets/{ticket.id}/messages", headers=h)).text)
        get_logger("test").info("customer said", text="我的手机 13812345678", aes_key="secret-value")
    finally:
        configure_logging(fmt="console", level="WARNING")
    assert r.status_code == 201
    for body in bodies:
        assert "5678" in body or "items" in body
        assert "13812345678" not in body
    assert "138****5678" in bodies[1]
    logs = stream.getvalue()
    assert "13812345678" not in logs and "secret-value" not in logs
    assert "138****5678" in logs


async def test_key_rotation_reencrypts_every_field(db: None) -> None:
    from cryptography.fernet import Fernet

    from app.security.service import rotate_encrypted_fields
    from app.settings import get_settings, set_settings

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    base = get_settings()
    set_settings(base.with_overrides(field_keys=(old,)))
    cust = await factories.customer(phone="13812345678")
    before = (await Customer.get(id=cust.id)).phone_enc
    assert before and Fernet(old.encode()).decrypt(before.encode()) == b"+8613812345678"

    set_settings(base.with_overrides(field_keys=(new, old)))
    done = await rotate_encrypted_fields()
    assert done["customer"] == 1
    after = (await Customer.get(id=cust.id)).phone_enc
    assert after and Fernet(new.encode()).decrypt(after.encode()) == b"+8613812345678"
    set_settings(base.with_overrides(field_keys=(new,)))  # the old key can go now
    assert decrypt_field(after) == "+8613812345678"
