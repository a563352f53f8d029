"""Customers: identities across channels, merging, and the masked view staff see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery

from app.customers.models import Customer, CustomerIdentity
from app.errors import NotFound, ValidationFailed
from app.security.crypto import decrypt_field, encrypt_field, keyed_hash, mask_email, mask_phone, normalize_phone
from app.security.scope import Actor
from app.tickets.models import Ticket
from app.uow import atomic


async def get(*, customer_id: int, actor: Actor) -> Customer:
    """Return a customer the actor may see, following merges to the survivor."""
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None or not await _visible(customer.id, actor):
        raise NotFound("customer not found")
    while customer.merged_into_id is not None:  # type: ignore[attr-defined]
        customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
    return customer


#: more ways a customer falls in an actor's scope besides their tickets: each returns a queryset of customer ids
#: (``.values("customer_id")``) or None; wecom_sync registers "follows an external contact in your departments"
CUSTOMER_SCOPES: list[Callable[[Actor], Any]] = []


def register_customer_scope(scope: Callable[[Actor], Any]) -> None:
    """Add a way a customer becomes visible to a (non-admin) actor."""
    CUSTOMER_SCOPES.append(scope)


def scope_filter(actor: Actor) -> Q:
    """The filter every customer query of a non-admin carries: a ticket in scope, or a registered scope."""
    q = Q(id__in=Subquery(Ticket.filter(actor.ticket_filter()).values("customer_id")))
    for scope in CUSTOMER_SCOPES:
        ids = scope(actor)
        if ids is not None:
            q |= Q(id__in=Subquery(ids))
    return q


async def _visible(customer_id: int, actor: Actor) -> bool:
    if actor.is_admin:
        return True
    return await Customer.filter(scope_filter(actor), id=customer_id).exists()


async def search(*, actor: Actor, q: str, limit: int = 20) -> list[Customer]:
    """Find customers by name, exact phone, exact email or exact identity value, within the actor's scope."""
    q = q.strip()
    if not q:
        return []
    cond = Q(name__icontains=q) | Q(id__in=Subquery(CustomerIdentity.filter(value=q).values("customer_id")))
    phone = normalize_phone(q)
    if phone:
        cond |= Q(phone_hash=keyed_hash(phone))
    if "@" in q:
        cond |= Q(email_hash=keyed_hash(q))
    query = Customer.filter(cond, merged_into_id=None)
    if not actor.is_admin:
        query = query.filter(scope_filter(actor))
    return await query.order_by("-id").limit(limit)


async def create(*, name: str = "", phone: str | None = None, email: str | None = None, vip_level: int = 0) -> Customer:
    """Create a customer; phone and email are stored encrypted with a keyed hash for search."""
    fields: dict[str, Any] = {"name": name[:128], "vip_level": vip_level}
    fields.update(_contact_fields(phone=phone, email=email))
    return await Customer.create(**fields)


def _contact_fields(*, phone: str | None, email: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if phone:
        normalized = normalize_phone(phone)
        if normalized is None:
            raise ValidationFailed("手机号格式不正确", code="invalid_phone")
        out["phone_enc"] = encrypt_field(normalized)
        out["phone_hash"] = keyed_hash(normalized)
    if email:
        if "@" not in email or len(email) > 254:
            raise ValidationFailed("邮箱格式不正确", code="invalid_email")
        out["email_enc"] = encrypt_field(email.strip())
        out["email_hash"] = keyed_hash(email)
    return out


async def set_contact(*, customer: Customer, phone: str | None = None, email: str | None = None) -> None:
    """Record a phone number or email learned for a customer (never overwrites with nothing)."""
    fields = _contact_fields(phone=phone, email=email)
    if fields:
        await Customer.filter(id=customer.id).update(**fields)
        for k, v in fields.items():
            setattr(customer, k, v)


async def find_by_identity(*, kind: str, value: str, scope: str = "") -> Customer | None:
    """The customer holding an identity, or None."""
    ident = await CustomerIdentity.get_or_none(kind=kind, scope=scope, value=value).select_related("customer")
    if ident is None:
        return None
    customer: Customer = ident.customer
    while customer.merged_into_id is not None:  # type: ignore[attr-defined]
        customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
    return customer


async def resolve_identity(
    *, kind: str, value: str, scope: str = "", name: str = "", data: dict[str, Any] | None = None
) -> Customer:
    """Return the customer holding this identity, creating both when new (safe under concurrent callers)."""
    found = await find_by_identity(kind=kind, value=value, scope=scope)
    if found is not None:
        return found
    try:
        async with atomic():
            customer = await Customer.create(name=name[:128])
            await CustomerIdentity.create(customer=customer, kind=kind, scope=scope, value=value, data=data or {})
            return customer
    except IntegrityError:
        # another job created it first: use theirs
        found = await find_by_identity(kind=kind, value=value, scope=scope)
        if found is None:
            raise
        return found


async def add_identity(
    *, customer: Customer, kind: str, value: str, scope: str = "", data: dict[str, Any] | None = None
) -> Customer:
    """Attach an identity; when another customer already holds it they are one person and get merged."""
    holder = await find_by_identity(kind=kind, value=value, scope=scope)
    if holder is None:
        try:
            await CustomerIdentity.create(customer=customer, kind=kind, scope=scope, value=value, data=data or {})
            return customer
        except IntegrityError:
            holder = await find_by_identity(kind=kind, value=value, scope=scope)
            if holder is None:
                raise
    if holder.id == customer.id:
        return customer
    return await merge(survivor=holder, other=customer)


async def merge(*, survivor: Customer, other: Customer) -> Customer:
    """Merge `other` into `survivor`: identities, conversations, tickets and messages move; `other` stays as a stub."""
    from app.conversations.models import Conversation, Message

    if survivor.id == other.id:
        return survivor
    # the older record survives, so links people already hold keep working
    if other.id < survivor.id:
        survivor, other = other, survivor
    async with atomic():
        await CustomerIdentity.filter(customer_id=other.id).update(customer_id=survivor.id)
        await Conversation.filter(customer_id=other.id).update(customer_id=survivor.id)
        await Ticket.filter(customer_id=other.id).update(customer_id=survivor.id)
        await Message.filter(customer_id=other.id).update(customer_id=survivor.id)
        changes: dict[str, Any] = {}
        if not survivor.name and other.name:
            changes["name"] = other.name
        if not survivor.phone_enc and other.phone_enc:
            changes.update(phone_enc=other.phone_enc, phone_hash=other.phone_hash)
        if not survivor.email_enc and other.email_enc:
            changes.update(email_enc=other.email_enc, email_hash=other.email_hash)
        changes["vip_level"] = max(survivor.vip_level, other.vip_level)
        changes["tags"] = sorted(set(survivor.tags or []) | set(other.tags or []))
        await Customer.filter(id=survivor.id).update(**changes)
        await Customer.filter(id=other.id).update(merged_into_id=survivor.id)
    return await Customer.get(id=survivor.id)


def phone_of(customer: Customer) -> str | None:
    """The customer's phone number in clear (only for delivery and audited reveals)."""
    return decrypt_field(customer.phone_enc) if customer.phone_enc else None


def email_of(customer: Customer) -> str | None:
    """The customer's email in clear (only for delivery and audited reveals)."""
    return decrypt_field(customer.email_enc) if customer.email_enc else None


async def serialize(customer: Customer, *, actor: Actor, with_identities: bool = False) -> dict[str, Any]:
    """The JSON view of a customer: contact fields masked, whoever asks (reveal is a separate audited call)."""
    phone = phone_of(customer)
    email = email_of(customer)
    out: dict[str, Any] = {
        "id": customer.id,
        "name": customer.name,
        "vip_level": customer.vip_level,
        "tags": customer.tags,
        "phone": mask_phone(phone) if phone else None,
        "email": mask_email(email) if email else None,
        "can_reveal": actor.can_reveal,
        "created_at": customer.created_at.isoformat(),
    }
    if with_identities:
        idents = await CustomerIdentity.filter(customer_id=customer.id).order_by("id")
        out["identities"] = [
            {"kind": i.kind, "scope": i.scope, "value": i.value, "created_at": i.created_at.isoformat()}
            for i in idents
        ]
    return out
