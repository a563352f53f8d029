"""Each change to a webhook subscription is an audit row naming the receiver's host (never its query or secret)."""

from __future__ import annotations

from app.security import chain
from app.security.models import AuditLog
from app.webhooks import service
from tests import factories


async def test_create_disable_enable_delete_are_audited(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    sub, secret = await service.create(actor=admin, url="https://erp.example.com/hook?key=abc",
                                       events=["ticket.created", "sla.breached"])
    await service.set_active(actor=admin, subscription_id=sub.id, active=False)
    await service.set_active(actor=admin, subscription_id=sub.id, active=True)
    await service.delete(actor=admin, subscription_id=sub.id)
    entries = await AuditLog.all().order_by("id")
    assert [(e.action, e.object_type, e.object_id) for e in entries] == [
        (action, "webhook", str(sub.id)) for action in
        ("webhook_create", "webhook_disable", "webhook_enable", "webhook_delete")]
    assert entries[0].reason == "erp.example.com：sla.breached, ticket.created"
    assert all("abc" not in e.reason and secret not in e.reason for e in entries)
    assert (await chain.verify()).ok
