"""API tokens (random, looked up by SHA-256: no per-request password hashing) and audited reveals."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import TYPE_CHECKING

from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.security import chain
from app.security.models import ApiToken, AuditLog
from app.security.reauth import require_recent_login
from app.security.scope import Actor, actor_for
from app.staff.models import Staff
from app.ttl import ExpiringMap
from app.uow import atomic

if TYPE_CHECKING:
    from app.tickets.models import Ticket

TOKEN_PREFIX = "gd_"
#: token hash -> actor; scope is recomputed at most every few seconds per token
CACHE_SECONDS = 10.0
_cache: ExpiringMap[str, Actor] = ExpiringMap(CACHE_SECONDS)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


#: what a token may be allowed: read (GET), write (changes), events (POST /events), admin (admin endpoints)
TOKEN_SCOPES = ("read", "write", "events", "admin")


def parse_scopes(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Scopes from "read,write" or a list, in canonical order; every scope when None (a ValueError names a bad one)."""
    if value is None:
        return TOKEN_SCOPES
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = {item.strip() for item in items if item.strip()}
    unknown = sorted(wanted - set(TOKEN_SCOPES))
    if unknown or not wanted:
        raise ValueError(f"unknown scopes: {', '.join(unknown) or '(none given)'}")
    return tuple(s for s in TOKEN_SCOPES if s in wanted)


async def create_token(*, staff: Staff, name: str = "", scopes: tuple[str, ...] | None = None) -> str:
    """Create an API token for a staff member; the raw token is returned once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await ApiToken.create(staff=staff, name=name[:64], token_hash=_hash(raw), prefix=raw[:10],
                          scopes=",".join(parse_scopes(scopes)))
    return raw


async def authenticate(*, raw: str) -> Actor | None:
    """Return the actor behind a bearer token, or None when it is unknown, revoked or its owner is disabled."""
    digest = _hash(raw)
    hit = _cache.get(digest)
    if hit is not None:
        return hit
    token = await ApiToken.get_or_none(token_hash=digest, revoked=False).select_related("staff")
    if token is None or token.staff.status != "active":
        _cache.pop(digest)
        return None
    actor = dataclasses.replace(await actor_for(token.staff), scopes=frozenset(parse_scopes(token.scopes)))
    return _cache.put(digest, actor)


async def revoke_token(*, prefix: str) -> int:
    """Revoke tokens by their shown prefix; returns how many."""
    _cache.clear()
    return await ApiToken.filter(prefix=prefix).update(revoked=True)


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以管理 API 令牌", code="admin_only")


async def list_tokens(*, actor: Actor) -> list[ApiToken]:
    """Every API token with its owner, newest first (admins only; the raw tokens are never stored)."""
    _require_admin(actor)
    return await ApiToken.all().order_by("-id").select_related("staff")


async def issue_token(*, actor: Actor, staff_id: int, name: str, scopes: tuple[str, ...]) -> tuple[ApiToken, str]:
    """Create a token for an active staff member (admins only, audited); the raw token is returned this once."""
    _require_admin(actor)
    staff = await Staff.get_or_none(id=staff_id, status="active")
    if staff is None:
        raise ValidationFailed.for_field("staff_id", "员工不存在或已停用", code="no_such_staff")
    try:
        wanted = parse_scopes(scopes)
    except ValueError as exc:
        message = "请选择令牌的权限（读取、写入、业务事件、管理）"
        raise ValidationFailed.for_field("scopes", message, code="invalid_scopes") from exc
    async with atomic():
        raw = await create_token(staff=staff, name=name, scopes=wanted)
        token = await ApiToken.get(token_hash=_hash(raw))
        await record_audit(actor=actor, action="token_create", object_type="api_token", object_id=str(token.id),
                           reason=f"{token.prefix}… 给 {staff.name}，权限 {token.scopes}")
    return token, raw


async def revoke_token_by_id(*, actor: Actor, token_id: int) -> ApiToken:
    """Revoke one token (admins only, audited); 409 when it is revoked already."""
    _require_admin(actor)
    token = await ApiToken.get_or_none(id=token_id)
    if token is None:
        raise NotFound("令牌不存在")
    async with atomic():
        if not await ApiToken.filter(id=token.id, revoked=False).update(revoked=True):
            raise InvalidTransition("该令牌已吊销", code="already_revoked")
        await record_audit(actor=actor, action="token_revoke", object_type="api_token", object_id=str(token.id),
                           reason=f"{token.prefix}…")
    _cache.clear()
    return await ApiToken.get(id=token.id)


REVEAL_FIELDS = ("phone", "email")


async def record_audit(*, actor: Actor | None, action: str, object_type: str, object_id: str, field: str = "",
                       reason: str = "") -> AuditLog:
    """Write one audit row (the only writer: it goes onto the tamper-evident chain)."""
    return await chain.append(staff_id=actor.staff_id if actor else None, action=action, object_type=object_type,
                              object_id=object_id, field=field, reason=reason.strip())


async def audit_reveal(*, actor: Actor, object_type: str, object_id: str, field: str, reason: str) -> None:
    """Check the reveal right and record who revealed what, when and why."""
    _check_reveal(actor=actor, field=field, reason=reason)
    await _record_reveal(actor=actor, object_type=object_type, object_id=object_id, field=field, reason=reason)


def _check_reveal(*, actor: Actor, field: str, reason: str) -> None:
    if not actor.can_reveal:
        raise PermissionDenied("你没有查看完整信息的权限", code="reveal_forbidden")
    if not reason.strip():
        raise ValidationFailed("请填写查看原因", code="reason_required")
    if field not in REVEAL_FIELDS:
        raise NotFound("没有这个字段", code="no_such_field")
    require_recent_login(actor=actor)


async def _record_reveal(*, actor: Actor, object_type: str, object_id: str, field: str, reason: str) -> None:
    await record_audit(actor=actor, action="reveal", object_type=object_type, object_id=object_id, field=field,
                       reason=reason)


async def reveal(*, actor: Actor, object_type: str, object_id: str, field: str, reason: str,
                 value: str | None) -> str:
    """Return a masked value in clear after checking the right and writing the audit row (every role, always)."""
    _check_reveal(actor=actor, field=field, reason=reason)
    if not value:
        raise NotFound("没有可显示的信息", code="nothing_to_reveal")
    await _record_reveal(actor=actor, object_type=object_type, object_id=object_id, field=field, reason=reason)
    return value


async def ticket_contact(*, ticket: Ticket, field: str) -> str | None:
    """A ticket's phone (its own, else its customer's) or its customer's e-mail, in clear (for audited reveals)."""
    from app.customers.models import Customer
    from app.security.crypto import decrypt_field

    if field == "phone" and ticket.phone_enc:
        return decrypt_field(ticket.phone_enc)
    customer = await Customer.get_or_none(id=ticket.customer_id)  # type: ignore[attr-defined]
    encrypted = None if customer is None else customer.phone_enc if field == "phone" else customer.email_enc
    return decrypt_field(encrypted) if encrypted else None


async def rotate_encrypted_fields(*, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every field stored encrypted at rest with the current (first) key; returns rows per table."""
    from tortoise import Tortoise
    from tortoise.fields import TextField

    from app.security.crypto import rotate_field

    done: dict[str, int] = {}
    for models in Tortoise.apps.values():
        for model in models.values():
            names = [n for n, f in model._meta.fields_map.items() if n.endswith("_enc") and isinstance(f, TextField)]
            if not names:
                continue
            count, last_id = 0, 0
            while True:
                rows = await model.filter(id__gt=last_id).order_by("id").limit(batch).values("id", *names)
                if not rows:
                    break
                for row in rows:
                    changes = {n: rotate_field(row[n]) for n in names if row[n]}
                    if changes:
                        await model.filter(id=row["id"]).update(**changes)
                        count += 1
                last_id = rows[-1]["id"]
            done[model._meta.db_table] = count
    return done
