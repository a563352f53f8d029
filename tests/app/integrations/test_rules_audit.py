"""Each change to a business-event rule is an audit row."""

from __future__ import annotations

from app.integrations import events
from app.integrations.schemas import EventRuleIn, EventRulePatch
from app.security.models import AuditLog
from tests import factories


async def test_create_update_delete_are_audited(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    rule = await events.create_rule(actor=admin, body=EventRuleIn(
        name="支付失败", event_type="payment_failed", action="both", message="您的订单 {order} 支付失败"))
    await events.update_rule(actor=admin, rule_id=rule.id, body=EventRulePatch(active=False))
    await events.update_rule(actor=admin, rule_id=rule.id, body=EventRulePatch())  # nothing changes: no row
    await events.delete_rule(actor=admin, rule_id=rule.id)
    entries = await AuditLog.all().order_by("id")
    assert [(e.action, e.object_id, e.reason) for e in entries] == [
        ("event_rule_create", str(rule.id), "支付失败（payment_failed → both）"),
        ("event_rule_update", str(rule.id), "支付失败：active"),
        ("event_rule_delete", str(rule.id), "支付失败")]
