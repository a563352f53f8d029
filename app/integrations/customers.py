"""Find or create the customer another system names by any identity (app.customers.schemas.CustomerRef).

Lookup order: the caller's own ``external_ref`` (an identity kept per API caller), an Official Account ``openid``
(any account), a WeCom ``external_userid``, then the keyed hash of the phone number or e-mail address. The first
hit is the customer; the ``external_ref`` and missing contact details are added to them. Nobody found: admins
create the customer; anyone else gets the same 404 as for a customer outside their scope (no probing).
"""

from __future__ import annotations

from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.customers.schemas import CustomerRef
from app.errors import NotFound, ValidationFailed
from app.security.crypto import keyed_hash, normalize_phone
from app.security.scope import Actor
from app.uow import atomic

#: the identity kind of a caller's own customer id, kept per caller (scope "api:<staff id>")
EXTERNAL_REF = "external_ref"


def ref_scope(actor: Actor) -> str:
    """The identity scope of the caller's external_ref values."""
    return f"api:{actor.staff_id or 0}"


async def _survivor(customer: Customer) -> Customer:
    while customer.merged_into_id is not None:  # type: ignore[attr-defined]
        customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
    return customer


async def find(*, actor: Actor, ref: CustomerRef) -> Customer | None:
    """The customer the reference names (the first identity that is known), or None."""
    if ref.external_ref:
        found = await customers.find_by_identity(kind=EXTERNAL_REF, scope=ref_scope(actor), value=ref.external_ref)
        if found is not None:
            return found
    for kind, value in (("mp_openid", ref.openid), ("external_userid", ref.external_userid)):
        if value:
            ident = await CustomerIdentity.filter(kind=kind, value=value).order_by("id").first()
            if ident is not None:
                return await _survivor(await Customer.get(id=ident.customer_id))  # type: ignore[attr-defined]
    if ref.phone:
        phone = normalize_phone(ref.phone)
        if phone is None:
            raise ValidationFailed("手机号格式不正确", code="invalid_phone")
        hit = await Customer.filter(phone_hash=keyed_hash(phone), merged_into_id=None).order_by("id").first()
        if hit is not None:
            return hit
    if ref.email:
        hit = await Customer.filter(email_hash=keyed_hash(ref.email), merged_into_id=None).order_by("id").first()
        if hit is not None:
            return hit
    return None


async def upsert(*, actor: Actor, ref: CustomerRef) -> Customer:
    """The customer the reference names, created when new (admins only); 404 outside the caller's scope."""
    if ref.phone and normalize_phone(ref.phone) is None:
        raise ValidationFailed("手机号格式不正确", code="invalid_phone")
    if ref.email and "@" not in ref.email:
        raise ValidationFailed("邮箱格式不正确", code="invalid_email")
    found = await find(actor=actor, ref=ref)
    if found is None:
        if not actor.is_admin:
            raise NotFound("客户不存在")
        async with atomic():
            customer = await customers.create(name=ref.name, phone=ref.phone, email=ref.email)
            if ref.external_ref:
                customer = await customers.add_identity(customer=customer, kind=EXTERNAL_REF, scope=ref_scope(actor),
                                                        value=ref.external_ref)
        return customer
    # out of scope answers as unknown does (customers.get raises the same 404)
    customer = await customers.get(customer_id=found.id, actor=actor)
    async with atomic():
        if ref.external_ref:
            customer = await customers.add_identity(customer=customer, kind=EXTERNAL_REF, scope=ref_scope(actor),
                                                    value=ref.external_ref)
        # learned, not proven: never replaces a verified contact
        await customers.set_contact(customer=customer, phone=ref.phone if not customer.phone_hash else None,
                                    email=ref.email if not customer.email_hash else None)
    return customer
