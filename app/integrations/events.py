"""Business events from other systems (the seed's 预测性服务介入): each event names its customer by any identity; the
active rules of its type whose conditions hold open a proactive ticket through the intake flow, send the customer
a message on their channel, or both. Everything one event causes commits together.
"""

from __future__ import annotations

import re
from typing import Any

from app import intake
from app.channels.base import IDENTITY_KIND
from app.channels.models import ChannelAccount
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.errors import NotFound, PermissionDenied
from app.integrations import customers as integration_customers
from app.integrations.models import BusinessEvent, EventRule
from app.integrations.schemas import EventIn, EventRuleIn, EventRulePatch
from app.logs import get_logger
from app.notifications.service import send_text_to_customer
from app.security.scope import Actor
from app.security.service import record_audit
from app.uow import atomic

log = get_logger(__name__)

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\}")
_MISSING = object()


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理业务事件规则", code="admin_only")


# ---- rules ------------------------------------------------------------------------------------------------------


async def list_rules(*, actor: Actor) -> list[EventRule]:
    """Every event rule, oldest first."""
    _require_admin(actor)
    return await EventRule.all().order_by("id")


async def get_rule(*, actor: Actor, rule_id: int) -> EventRule:
    """One event rule (404 when there is none)."""
    _require_admin(actor)
    rule = await EventRule.get_or_none(id=rule_id)
    if rule is None:
        raise NotFound("业务事件规则不存在")
    return rule


async def create_rule(*, actor: Actor, body: EventRuleIn) -> EventRule:
    """Add an event rule."""
    _require_admin(actor)
    async with atomic():
        rule = await EventRule.create(**body.model_dump(mode="json"))
        await record_audit(actor=actor, action="event_rule_create", object_type="event_rule", object_id=str(rule.id),
                           reason=f"{rule.name}（{rule.event_type} → {rule.action}）")
    return rule


async def update_rule(*, actor: Actor, rule_id: int, body: EventRulePatch) -> EventRule:
    """Change the fields the body names."""
    rule = await get_rule(actor=actor, rule_id=rule_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    for name in ("name", "event_type", "action", "subject", "description", "message", "category", "tags",
                 "conditions", "active"):
        if name in changes and changes[name] is None:
            changes.pop(name)  # a column that cannot be empty keeps its value
    if changes:
        async with atomic():
            await EventRule.filter(id=rule.id).update(**changes)
            await record_audit(actor=actor, action="event_rule_update", object_type="event_rule",
                               object_id=str(rule.id), reason=f"{rule.name}：{', '.join(sorted(changes))}")
    return await EventRule.get(id=rule.id)


async def delete_rule(*, actor: Actor, rule_id: int) -> None:
    """Remove an event rule."""
    rule = await get_rule(actor=actor, rule_id=rule_id)
    async with atomic():
        await rule.delete()
        await record_audit(actor=actor, action="event_rule_delete", object_type="event_rule", object_id=str(rule.id),
                           reason=rule.name)


def serialize_rule(rule: EventRule) -> dict[str, Any]:
    """A rule as the API shows it."""
    return {"id": rule.id, "name": rule.name, "event_type": rule.event_type, "conditions": rule.conditions,
            "action": rule.action, "subject": rule.subject, "description": rule.description,
            "message": rule.message, "priority": rule.priority, "category": rule.category, "tags": rule.tags,
            "active": rule.active}


# ---- matching -----------------------------------------------------------------------------------------------------


def field_value(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of the event's data, or _MISSING."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def holds(condition: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether one condition ({field, op, value}) holds on the event's data."""
    got = field_value(data, str(condition.get("field", "")))
    op, want = condition.get("op", "eq"), condition.get("value")
    if op == "exists":
        return (got is not _MISSING) == (want is not False)
    if got is _MISSING:
        return False
    if op in ("eq", "ne"):
        a, b = _number(got), _number(want)
        same = a == b if a is not None and b is not None else got == want or str(got) == str(want)
        return same if op == "eq" else not same
    if op in ("gt", "gte", "lt", "lte"):
        a, b = _number(got), _number(want)
        if a is None or b is None:
            return False
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if op == "in":
        return isinstance(want, list) and any(holds({"field": "v", "op": "eq", "value": w}, {"v": got})
                                              for w in want)
    if op == "contains":
        return (str(want) in got) if isinstance(got, str) else isinstance(got, list) and want in got
    return False


def matches(rule: EventRule, data: dict[str, Any]) -> bool:
    """Whether every condition of the rule holds."""
    return all(holds(c, data) for c in rule.conditions or [])


def render(template: str, data: dict[str, Any]) -> str:
    """Replace each {field} with the event's value (unknown fields become empty; no format-string tricks)."""

    def value(m: re.Match[str]) -> str:
        got = field_value(data, m.group(1))
        return "" if got is _MISSING or got is None else str(got)

    return _PLACEHOLDER.sub(value, template)


# ---- receiving an event ------------------------------------------------------------------------------------------


async def customer_channel(customer: Customer, *, by_email: bool = False) -> ChannelAccount | None:
    """The active channel account the customer can be reached on (their newest identity that has one; with
    ``by_email``, else the desk's mailbox when the customer has an e-mail address)."""
    idents = await CustomerIdentity.filter(customer_id=customer.id).order_by("-id").values_list("kind", "scope")
    for kind, scope in idents:
        if not scope:
            continue
        account = await ChannelAccount.get_or_none(key=scope, active=True)
        if account is not None and IDENTITY_KIND.get(account.kind) == kind:
            return account
    return await _by_email(customer) if by_email else None


async def _by_email(customer: Customer) -> ChannelAccount | None:
    """A customer the caller named only by e-mail is written to from the desk's first mailbox: their address
    becomes their identity there, so their answer finds them (never when another customer already holds it)."""
    address = customers.email_of(customer)
    mailbox = await ChannelAccount.filter(kind="email", active=True).order_by("id").first() if address else None
    if address is None or mailbox is None:
        return None
    address = address.strip().lower()
    holder = await CustomerIdentity.get_or_none(kind="email", scope=mailbox.key, value=address)
    if holder is None:
        await customers.add_identity(customer=customer, kind="email", scope=mailbox.key, value=address)
    elif holder.customer_id != customer.id:  # type: ignore[attr-defined]
        return None
    return mailbox


async def receive(*, actor: Actor, body: EventIn) -> dict[str, Any]:
    """Take a business event: upsert its customer, apply the matching rules, log it; returns what was done."""
    customer = await integration_customers.upsert(actor=actor, ref=body.customer)
    rules = [r for r in await EventRule.filter(event_type=body.type, active=True).order_by("id")
             if matches(r, body.data)]
    writes = any(r.action in ("message", "both") for r in rules)
    account = await customer_channel(customer, by_email=writes) if rules else None
    results: list[dict[str, Any]] = []
    async with atomic():
        event = await BusinessEvent.create(event_type=body.type, customer_id=customer.id, staff_id=actor.staff_id,
                                           data=body.data)
        for rule in rules:
            results.append(await _apply(rule, event=event, customer=customer, account=account, actor=actor,
                                        data=body.data))
        await BusinessEvent.filter(id=event.id).update(results=results)
    log.info("integrations.event", event_id=event.id, type=body.type, rules=[r.id for r in rules])
    return {"id": event.id, "type": body.type, "customer_id": customer.id, "results": results}


async def _apply(rule: EventRule, *, event: BusinessEvent, customer: Customer, account: ChannelAccount | None,
                 actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"rule_id": rule.id, "ticket_id": None, "ticket_number": None, "message": None}
    if rule.action in ("ticket", "both"):
        subject = render(rule.subject, data).strip() or f"业务事件：{event.event_type}"
        ticket = await intake.open_ticket(intake.Context(customer=customer, account=account), intake.NewTicket(
            source="event", reason=f"event:{event.event_type}", subject=subject,
            description=render(rule.description, data), actor=actor, priority=rule.priority,
            category=rule.category, tags=list(rule.tags or []),
            custom_fields={"event_type": event.event_type, "event_id": event.id, "rule_id": rule.id}))
        result.update(ticket_id=ticket.id, ticket_number=ticket.number)
    if rule.action in ("message", "both"):
        text = render(rule.message, data).strip()
        if not text:
            result["message"] = "empty"
        elif account is None:
            result["message"] = "no_channel"
        else:
            await send_text_to_customer(account=account, customer=customer, text=text,
                                        dedupe_key=f"event:{event.id}:rule:{rule.id}")
            result["message"] = "queued"
    return result
