"""``GET /api/v1/tickets?updated_since=`` for platforms that poll: tickets in the caller's scope changed at or after
a moment, oldest change first, with a cursor over (updated_at, id) so equal timestamps are never skipped."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from app.errors import BadRequest, ValidationFailed
from app.security.scope import Actor
from app.tickets.models import Ticket


@dataclass
class Page:
    items: list[Ticket]
    next_cursor: str | None


def parse_since(value: str) -> datetime:
    """An ISO 8601 moment (a naive one is UTC); 400 otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest("updated_since 必须是 ISO 8601 时间，例如 2026-12-05T08:00:00+08:00",
                         code="invalid_parameter") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _encode(ticket: Ticket) -> str:
    raw = json.dumps({"u": ticket.updated_at.isoformat(), "id": ticket.id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(raw["u"]), int(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("cursor 无效", code="invalid_cursor") from exc


async def updated_since(*, actor: Actor, since: datetime, cursor: str | None = None, limit: int = 100) -> Page:
    """Tickets in the actor's scope updated at or after ``since``, oldest change first."""
    query = Ticket.filter(actor.ticket_filter(), updated_at__gte=since)
    if cursor:
        moment, last_id = _decode(cursor)
        query = query.filter(Q(updated_at__gt=moment) | Q(updated_at=moment, id__gt=last_id))
    limit = max(1, min(limit, 200))
    items = list(await query.order_by("updated_at", "id").limit(limit + 1))
    return Page(items=items[:limit], next_cursor=_encode(items[limit - 1]) if len(items) > limit else None)
