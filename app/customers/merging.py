"""Merging customers: suggestions from a shared verified phone or e-mail, merge and unmerge by staff, audited.

"Verified" means the contact is proven, not merely typed: a staff member entered or confirmed it (the confirm
call below, the staff new-ticket form, WeCom remark mobiles) or a channel that authenticates it set it with
``verified=True``. A number the customer typed into a chat is never verified, so it never suggests a merge.

One routine, ``merge_records``, does every merge: the automatic one (``service.add_identity`` finds the same
unionid on two customers) and the one staff ask for. It moves identities, conversations, tickets and messages to the
survivor, records exactly which rows moved and which survivor fields changed in a ``CustomerMerge``, and writes an
audit row; ``unmerge`` moves those rows back and restores the fields nobody changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Subquery
from tortoise.functions import Count

from app.conversations.models import Conversation, Message
from app.customers.models import ContactVerification, Customer, CustomerIdentity, CustomerMerge
from app.customers.service import _verify, _visible, get, scope_filter, set_contact, verified_kinds
from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.logs import get_logger
from app.security.scope import Actor
from app.security.service import record_audit
from app.tickets.models import Ticket
from app.timeutil import utcnow
from app.uow import atomic

log = get_logger(__name__)

MERGE_ROLES = ("admin", "lead")
CONTACTS = ("phone", "email")
CONTACT_LABELS = {"phone": "手机号", "email": "邮箱"}
#: the survivor fields a merge may fill in from the merged customer
_FIELDS = ("name", "phone_enc", "phone_hash", "email_enc", "email_hash", "vip_level", "tags")
#: what moves, and the model holding it
_MOVED: dict[str, Any] = {"identities": CustomerIdentity, "conversations": Conversation, "tickets": Ticket,
                          "messages": Message, "verifications": ContactVerification}


def _require_right(actor: Actor) -> None:
    if actor.kind != "staff" or actor.role not in MERGE_ROLES:
        raise PermissionDenied("只有管理员和组长可以合并客户", code="merge_forbidden")


async def _audit(*, actor: Actor | None, action: str, customer_id: int, field: str, reason: str) -> None:
    await record_audit(actor=actor, action=action, object_type="customer", object_id=str(customer_id), field=field,
                       reason=reason)


async def _shared_contacts(a: Customer, b: Customer) -> list[str]:
    """The verified contacts two customers share."""
    both = await verified_kinds(a) & await verified_kinds(b)
    return [kind for kind in CONTACTS if kind in both and getattr(a, f"{kind}_hash") == getattr(b, f"{kind}_hash")]


def _survivor_changes(survivor: Customer, other: Customer) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if not survivor.name and other.name:
        changes["name"] = other.name
    for kind in CONTACTS:
        if not getattr(survivor, f"{kind}_enc") and getattr(other, f"{kind}_enc"):
            for suffix in ("enc", "hash"):
                changes[f"{kind}_{suffix}"] = getattr(other, f"{kind}_{suffix}")
    if other.vip_level > survivor.vip_level:
        changes["vip_level"] = other.vip_level
    tags = sorted(set(survivor.tags or []) | set(other.tags or []))
    if tags != list(survivor.tags or []):
        changes["tags"] = tags
    return changes


async def merge_records(*, survivor: Customer, other: Customer, reason: str, actor: Actor | None,
                        comment: str = "") -> CustomerMerge:
    """The one merge routine: move everything of `other` to `survivor`, record what moved, audit it."""
    async with atomic():
        moved: dict[str, list[int]] = {}
        held = set(await ContactVerification.filter(customer_id=survivor.id).values_list("kind", "value_hash"))
        for name, model in _MOVED.items():
            query = model.filter(customer_id=other.id).order_by("id")
            if model is ContactVerification:  # a verification the survivor already has stays with the stub
                rows = await query.values_list("id", "kind", "value_hash")
                ids = [int(i) for i, kind, value in rows if (kind, value) not in held]
            else:
                ids = [int(i) for i in await query.values_list("id", flat=True)]
            if ids:
                await model.filter(id__in=ids).update(customer_id=survivor.id)
            moved[name] = ids
        changes = _survivor_changes(survivor, other)
        if changes:
            await Customer.filter(id=survivor.id).update(**changes)
        await Customer.filter(id=other.id).update(merged_into_id=survivor.id)
        record = await CustomerMerge.create(
            survivor_id=survivor.id, merged_id=other.id, reason=reason, staff_id=actor.staff_id if actor else None,
            comment=comment[:500], moved=moved, created_at=utcnow(),
            survivor_changes={k: [getattr(survivor, k), v] for k, v in changes.items()})
        suffix = f"：{comment.strip()}" if comment.strip() else ""
        await _audit(actor=actor, action="merge", customer_id=survivor.id, field=reason,
                     reason=f"合并客户 #{other.id}{suffix}")
    log.info("customer.merged", survivor_id=survivor.id, merged_id=other.id, reason=reason, merge_id=record.id)
    return record


async def merge_customers(*, actor: Actor, survivor_id: int, merged_id: int, comment: str = "") -> CustomerMerge:
    """Staff merge two customers they can see into the one they chose to keep (admins and leads)."""
    _require_right(actor)
    survivor = await get(customer_id=survivor_id, actor=actor)
    other = await get(customer_id=merged_id, actor=actor)
    if survivor.id == other.id:
        raise ValidationFailed("这是同一位客户，无需合并", code="same_customer")
    shared = await _shared_contacts(survivor, other)
    return await merge_records(survivor=survivor, other=other, reason=shared[0] if shared else "manual",
                               actor=actor, comment=comment)


async def unmerge(*, actor: Actor, merge_id: int, comment: str = "") -> CustomerMerge:
    """Undo a merge: what moved goes back, the survivor's filled-in fields are restored (admins and leads)."""
    _require_right(actor)
    async with atomic():
        record = await CustomerMerge.filter(id=merge_id).select_for_update().first()
        if record is None or not await _visible(record.survivor_id, actor):  # type: ignore[attr-defined]
            raise NotFound("合并记录不存在")
        if record.undone_at is not None:
            raise InvalidTransition("该合并已撤销", code="merge_undone")
        survivor = await Customer.get(id=record.survivor_id)  # type: ignore[attr-defined]
        other_id: int = record.merged_id  # type: ignore[attr-defined]
        if survivor.merged_into_id is not None:  # type: ignore[attr-defined]
            raise InvalidTransition("该客户之后又被合并到其他客户，请先撤销那次合并", code="merged_again")
        for name, model in _MOVED.items():
            ids = (record.moved or {}).get(name) or []
            if ids:
                await model.filter(id__in=ids, customer_id=survivor.id).update(customer_id=other_id)
        # restore what the merge filled in, unless someone changed it since
        restore = {k: before for k, (before, after) in (record.survivor_changes or {}).items()
                   if k in _FIELDS and getattr(survivor, k) == after}
        if restore:
            await Customer.filter(id=survivor.id).update(**restore)
        await Customer.filter(id=other_id).update(merged_into_id=None)
        now = utcnow()
        await CustomerMerge.filter(id=record.id).update(undone_at=now, undone_by_id=actor.staff_id)
        record.undone_at, record.undone_by_id = now, actor.staff_id
        suffix = f"：{comment.strip()}" if comment.strip() else ""
        await _audit(actor=actor, action="unmerge", customer_id=survivor.id, field=record.reason,
                     reason=f"撤销合并客户 #{other_id}{suffix}")
    log.info("customer.unmerged", survivor_id=survivor.id, merged_id=other_id, merge_id=record.id)
    return record


async def list_merges(*, actor: Actor, customer_id: int) -> list[CustomerMerge]:
    """The merges that kept this customer, newest first (to find the one to undo)."""
    customer = await get(customer_id=customer_id, actor=actor)
    return await CustomerMerge.filter(survivor_id=customer.id).order_by("-id")


async def verify_contact(*, actor: Actor, customer_id: int, field: str) -> Customer:
    """A staff member confirms the customer's phone or e-mail with the customer (audited)."""
    if actor.kind != "staff" or actor.staff_id is None:
        raise PermissionDenied("只有员工可以确认联系方式", code="staff_only")
    if field not in CONTACTS:
        raise ValidationFailed("只能确认手机号或邮箱", code="invalid_field")
    customer = await get(customer_id=customer_id, actor=actor)
    if not getattr(customer, f"{field}_enc"):
        raise ValidationFailed(f"该客户没有{CONTACT_LABELS[field]}", code="no_contact")
    async with atomic():
        await _verify(customer, kinds=[field], staff_id=actor.staff_id)
        await _audit(actor=actor, action="verify", customer_id=customer.id, field=field,
                     reason=f"确认{CONTACT_LABELS[field]}")
    return customer


async def _holder(customer_id: int) -> Customer:
    customer = await Customer.get(id=customer_id)
    while customer.merged_into_id is not None:  # type: ignore[attr-defined]
        customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
    return customer


async def claim_proven_contact(*, customer: Customer, kind: str, value: str) -> Customer:
    """The customer proved a phone or e-mail (a code sent to it came back): it is verified on them, and whoever
    already holds it proven (a verified contact, or for e-mail the address they write from) is the same person:
    merged, the older record surviving. Returns the survivor.

    A contact someone merely typed is never matched: merging with it would show that person's history to another.
    """
    if kind not in CONTACTS:
        raise ValidationFailed("只能验证手机号或邮箱", code="invalid_field")
    value = value.strip().lower() if kind == "email" else value.strip()
    if kind == "email":
        await set_contact(customer=customer, email=value, verified=True)
    else:
        await set_contact(customer=customer, phone=value, verified=True)
    value_hash = getattr(customer, f"{kind}_hash")
    ids: set[int] = {int(row.customer_id) for row in  # type: ignore[attr-defined]
                     await ContactVerification.filter(kind=kind, value_hash=value_hash)}
    if kind == "email":
        ids |= {int(row.customer_id) for row in  # type: ignore[attr-defined]
                await CustomerIdentity.filter(kind="email", value=value)}
    holders = {h.id: h for h in [await _holder(i) for i in ids]}
    holders.setdefault(customer.id, customer)
    people = sorted(holders.values(), key=lambda c: c.id)
    survivor = people[0]
    for other in people[1:]:
        await merge_records(survivor=survivor, other=other, reason=kind, actor=None)
        survivor = await Customer.get(id=survivor.id)
    return survivor


@dataclass(frozen=True)
class MergeSuggestion:
    """Two live customers sharing a verified contact; the older one is listed first."""

    customers: tuple[Customer, Customer]
    matched: list[str]

    @property
    def label(self) -> str:
        return "、".join(CONTACT_LABELS[m] for m in self.matched) + "相同（已验证）"


async def merge_suggestions(*, actor: Actor, limit: int = 50) -> list[MergeSuggestion]:
    """Pairs of customers in the actor's scope that share a verified phone or e-mail (admins and leads)."""
    _require_right(actor)
    pairs: dict[tuple[int, int], tuple[Customer, Customer]] = {}
    for kind in CONTACTS:
        base = ContactVerification.filter(kind=kind, customer__merged_into_id=None)
        if not actor.is_admin:
            base = base.filter(customer_id__in=Subquery(Customer.filter(scope_filter(actor)).values("id")))
        hashes = await base.annotate(n=Count("customer_id", distinct=True)).group_by("value_hash").filter(
            n__gt=1).values_list("value_hash", flat=True)
        if not hashes:
            continue
        rows = await base.filter(value_hash__in=list(hashes)).values_list("customer_id", "value_hash")
        people = {c.id: c for c in await Customer.filter(id__in=[int(r[0]) for r in rows])}
        groups: dict[str, list[Customer]] = {}
        for customer_id, value in sorted(rows):
            customer = people[int(customer_id)]
            if getattr(customer, f"{kind}_hash") == value:  # still their contact
                groups.setdefault(value, []).append(customer)
        for group in groups.values():  # the oldest with each of the others
            for other in group[1:]:
                pairs[(group[0].id, other.id)] = (group[0], other)
    ids = {i for pair in pairs for i in pair}
    # pairs staff already separated are not suggested again
    undone = {frozenset((int(a), int(b))) for a, b in await CustomerMerge.filter(
        survivor_id__in=list(ids), merged_id__in=list(ids), undone_at__isnull=False,
    ).values_list("survivor_id", "merged_id")} if ids else set()
    out = [MergeSuggestion(customers=pair, matched=await _shared_contacts(*pair))
           for key, pair in sorted(pairs.items()) if frozenset(key) not in undone]
    return out[:limit]


async def serialize_merge(record: CustomerMerge) -> dict[str, Any]:
    """A merge record as the API returns it (ids and counts; no contact data)."""
    return {
        "id": record.id, "survivor_id": record.survivor_id, "merged_id": record.merged_id,  # type: ignore[attr-defined]
        "reason": record.reason, "staff_id": record.staff_id, "comment": record.comment,
        "moved": {k: len(v) for k, v in (record.moved or {}).items()},
        "created_at": record.created_at.isoformat(),
        "undone_at": record.undone_at.isoformat() if record.undone_at else None,
    }
