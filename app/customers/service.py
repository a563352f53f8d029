"""Customers: identities across channels, merging, and the masked view staff see."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import DoesNotExist, IntegrityError
from tortoise.expressions import Q, Subquery

from app.batching import GroupCommit
from app.customers.models import ContactVerification, Customer, CustomerIdentity
from app.db import dialect_sql, rows_sql
from app.errors import NotFound, ValidationFailed
from app.rows import inserted
from app.security.crypto import decrypt_field, encrypt_field, keyed_hash, mask_email, mask_phone, normalize_phone
from app.security.scope import Actor
from app.tickets.models import Ticket
from app.timeutil import utcnow
from app.uow import atomic, inside_transaction


async def get(*, customer_id: int, actor: Actor) -> Customer:
    """Return a customer the actor may see, following merges to the survivor."""
    try:
        customer = await load(customer_id=customer_id)
    except DoesNotExist:
        raise NotFound("客户不存在") from None
    # the scope is the id asked for (an agent who sees a merged-away customer sees where it went)
    if not await _visible(int(customer_id), actor):
        raise NotFound("客户不存在")
    return customer


#: more ways a customer falls in an actor's scope besides their tickets: each returns a queryset of customer ids
#: (``.values("customer_id")``) or None; wecom_sync registers "follows an external contact in your departments"
CUSTOMER_SCOPES: list[Callable[[Actor], Any]] = []


def register_customer_scope(scope: Callable[[Actor], Any]) -> None:
    """Add a way a customer becomes visible to a (non-admin) actor (once per scope)."""
    if scope not in CUSTOMER_SCOPES:
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


async def create(*, name: str = "", phone: str | None = None, email: str | None = None, vip_level: int = 0,
                 verified: bool = False, staff_id: int | None = None) -> Customer:
    """Create a customer; phone and email are stored encrypted with a keyed hash for search.

    ``verified``: a staff member entered the contact (or a channel proved it), so it may suggest merges.
    """
    fields: dict[str, Any] = {"name": name[:128], "vip_level": vip_level}
    fields.update(_contact_fields(phone=phone, email=email))
    async with atomic():
        customer = await Customer.create(**fields)
        if verified:
            await _verify(customer, kinds=_kinds(fields), staff_id=staff_id)
    return customer


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


def _kinds(fields: dict[str, Any]) -> list[str]:
    return [kind for kind in ("phone", "email") if f"{kind}_hash" in fields]


async def _verify(customer: Customer, *, kinds: list[str], staff_id: int | None) -> None:
    for kind in kinds:
        await ContactVerification.get_or_create(
            customer_id=customer.id, kind=kind, value_hash=getattr(customer, f"{kind}_hash"),
            defaults={"source": "staff" if staff_id else "channel", "staff_id": staff_id, "created_at": utcnow()})


async def verified_kinds(customer: Customer) -> set[str]:
    """Which of the customer's current contacts (phone, email) are verified."""
    hashes = {kind: getattr(customer, f"{kind}_hash") for kind in ("phone", "email")
              if getattr(customer, f"{kind}_hash")}
    if not hashes:
        return set()
    rows = await ContactVerification.filter(customer_id=customer.id, kind__in=list(hashes)).values_list(
        "kind", "value_hash")
    return {kind for kind, value in rows if hashes.get(kind) == value}


async def set_contact(*, customer: Customer, phone: str | None = None, email: str | None = None,
                      verified: bool = False, staff_id: int | None = None) -> None:
    """Record a phone number or email learned for a customer (never overwrites with nothing).

    ``verified=True`` only where the contact is proven: staff entered or confirmed it (WeCom remark mobiles, the
    staff new-ticket form) or a channel that authenticates it. A number the customer typed in a chat is not, and
    never replaces a verified one.
    """
    fields = _contact_fields(phone=phone, email=email)
    if not verified:
        for kind in await verified_kinds(customer):
            if fields.get(f"{kind}_hash") not in (None, getattr(customer, f"{kind}_hash")):
                fields.pop(f"{kind}_enc")
                fields.pop(f"{kind}_hash")
    if fields:
        async with atomic():
            await Customer.filter(id=customer.id).update(**fields)
            for k, v in fields.items():
                setattr(customer, k, v)
            if verified:
                await _verify(customer, kinds=_kinds(fields), staff_id=staff_id)


async def find_by_identity(*, kind: str, value: str, scope: str = "") -> Customer | None:
    """The customer holding an identity, or None."""
    ident = await CustomerIdentity.get_or_none(kind=kind, scope=scope, value=value).select_related("customer")
    if ident is None:
        return None
    customer: Customer = ident.customer
    while customer.merged_into_id is not None:  # type: ignore[attr-defined]
        customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
    return customer


@dataclass
class IdentityRow:
    """What a channel's processor reads of an identity it resolved (``data`` as stored; update the row by ``id``)."""

    id: int
    customer_id: int
    kind: str
    scope: str
    value: str
    data: dict[str, Any]


#: every inbound message resolves its sender: SQL written once (`app.db.dialect_sql`), three columns, as tortoise's
#: query building and a joined customer row cost more CPU than the round trip; the customer is read apart (`load`),
#: inside the intake transaction under its row lock, as a model through `Model.raw` (which takes no parameters: the id
#: is formatted in as an int)
_IDENTITY = ("SELECT {q}id{q},{q}customer_id{q},{q}data{q} FROM {q}customer_identity{q} "
             "WHERE {q}kind{q}={m} AND {q}scope{q}={m} AND {q}value{q}={m}")
_CUSTOMER = "SELECT {{columns}} FROM {q}customer{q} WHERE {q}id{q}={{customer_id}}"


async def identity_row(*, kind: str, value: str, scope: str = "") -> IdentityRow | None:
    """The identity's row, or None when nobody holds it (three columns, no customer read)."""
    conn: Any = CustomerIdentity._meta.db
    rows = await conn.execute_query_dict(dialect_sql(_IDENTITY, conn.capabilities.dialect), [kind, scope, value])
    if not rows:
        return None
    data = CustomerIdentity._meta.fields_map["data"].to_python_value(rows[0]["data"])
    return IdentityRow(id=int(rows[0]["id"]), customer_id=int(rows[0]["customer_id"]), kind=kind, scope=scope,
                       value=value, data=data)


#: a new follower's identities (openid, then unionid) on their first message's path, written the same way
_INSERT_IDENTITY = ("INSERT INTO {q}customer_identity{q} ({q}customer_id{q},{q}kind{q},{q}scope{q},{q}value{q},"
                    "{q}data{q},{q}created_at{q}) VALUES ({m},{m},{m},{m},{m},{m})")


async def _insert_identity(ident: IdentityRow) -> int:
    """Store a new identity (IntegrityError when someone holds it already): its id."""
    conn: Any = CustomerIdentity._meta.db
    fields_map = CustomerIdentity._meta.fields_map
    return int(await conn.execute_insert(dialect_sql(_INSERT_IDENTITY, conn.capabilities.dialect), [
        ident.customer_id, ident.kind, ident.scope, ident.value,
        fields_map["data"].to_db_value(ident.data, CustomerIdentity),
        fields_map["created_at"].to_db_value(utcnow(), CustomerIdentity)]))


async def create_with_identities(*, identities: list[IdentityRow]) -> Customer:
    """A new customer holding these identities (their ``customer_id`` and ``id`` filled in): call it inside the
    transaction that uses the customer, so nobody finds them before it commits; IntegrityError when someone holds
    one of the identities already."""
    created = await inserted(Customer, {"name": ""})
    for ident in identities:
        ident.customer_id = created.id
        ident.id = await _insert_identity(ident)
    return created


async def load(*, customer_id: int, for_update: bool = False) -> Customer:
    """A customer by id, following merges to the survivor; ``for_update``: each row read under its row lock
    (MySQL; held until the transaction ends)."""
    sql = rows_sql(_CUSTOMER, Customer)
    lock = " FOR UPDATE" if for_update and Customer._meta.db.capabilities.dialect == "mysql" else ""
    while True:
        if lock or inside_transaction():
            found: list[Customer] = await Customer.raw(sql.format(customer_id=int(customer_id)) + lock)
            customer = found[0] if found else None
        else:
            customer = await _READS.add(int(customer_id))
        if customer is None:
            raise DoesNotExist(Customer)
        merged_into: int | None = customer.merged_into_id  # type: ignore[attr-defined]
        if merged_into is None:
            return customer
        customer_id = merged_into


_CUSTOMERS = "SELECT {{columns}} FROM {q}customer{q} WHERE {q}id{q} IN ({{ids}})"


class _Reads(GroupCommit[int, Customer | None]):
    """Customers read by id outside a transaction (an API call naming one) while such a read is in flight go
    together in the next: one SELECT for all. Each caller gets a model of its own."""

    max_batch = 100

    async def _write(self, batch: list[tuple[int, asyncio.Future[Customer | None]]]) -> None:
        try:
            ids = ",".join(str(i) for i in sorted({i for i, _ in batch}))
            rows: list[Customer] = await Customer.raw(rows_sql(_CUSTOMERS, Customer).format(ids=ids))
        except BaseException as exc:
            self._fail(batch, exc)
            return
        by_id = {c.id: c for c in rows}
        handed: set[int] = set()
        for customer_id, fut in batch:
            customer = by_id.get(customer_id)
            if customer is not None and customer_id in handed:
                customer = copy.deepcopy(customer)
            handed.add(customer_id)
            if not fut.done():
                fut.set_result(customer)


_READS = _Reads()


async def resolve_identity_ref(*, kind: str, value: str, scope: str = "") -> tuple[IdentityRow, Customer | None]:
    """The identity row, created with its customer when new (that customer is returned too; else None: `load` it,
    where a row lock is wanted inside the transaction that uses it)."""
    ident = await identity_row(kind=kind, value=value, scope=scope)
    if ident is not None:
        return ident, None
    try:
        async with atomic():
            ident = IdentityRow(id=0, customer_id=0, kind=kind, scope=scope, value=value, data={})
            return ident, await create_with_identities(identities=[ident])
    except IntegrityError:
        # another job created it first: use theirs
        ident = await identity_row(kind=kind, value=value, scope=scope)
        if ident is None:
            raise
        return ident, None


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
    # a one-column read first: an identity nobody holds yet (a new follower's unionid) is the usual answer
    held = await identity_row(kind=kind, value=value, scope=scope)
    holder = await load(customer_id=held.customer_id) if held is not None else None
    if holder is None:
        try:
            await _insert_identity(IdentityRow(id=0, customer_id=customer.id, kind=kind, scope=scope, value=value,
                                               data=data or {}))
            return customer
        except IntegrityError:
            holder = await find_by_identity(kind=kind, value=value, scope=scope)
            if holder is None:
                raise
    if holder.id == customer.id:
        return customer
    return await merge(survivor=holder, other=customer)


async def merge(*, survivor: Customer, other: Customer) -> Customer:
    """The automatic merge (one unionid, one person): the older record survives; recorded, so staff can undo it."""
    if survivor.id == other.id:
        return survivor
    # the older record survives, so links people already hold keep working
    if other.id < survivor.id:
        survivor, other = other, survivor
    from app.customers import merging  # merging builds on this module

    await merging.merge_records(survivor=survivor, other=other, reason="unionid", actor=None)
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
        "verified": sorted(await verified_kinds(customer)),
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
