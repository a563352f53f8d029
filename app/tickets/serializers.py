"""JSON views of tickets, messages and events; phone numbers are masked for everyone (reveal is audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.channels.base import CHANNEL_LABELS
from app.conversations.models import Message
from app.security.crypto import decrypt_field, mask_phone, mask_text
from app.security.scope import Actor
from app.tickets.models import Ticket, TicketEvent
from app.tickets.states import STATUS_LABELS, Status


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def ticket(t: Ticket, *, actor: Actor, detail: bool = False) -> dict[str, Any]:
    """A ticket as the API returns it."""
    out: dict[str, Any] = {
        "id": t.id,
        "number": t.number,
        "subject": t.subject if actor.can_reveal else mask_text(t.subject),
        "status": t.status,
        "status_label": STATUS_LABELS[Status(t.status)],
        "priority": t.priority,
        "category": t.category,
        "order_no": t.order_no,
        "customer_id": t.customer_id,  # type: ignore[attr-defined]
        "group_id": t.group_id,  # type: ignore[attr-defined]
        "assignee_id": t.assignee_id,  # type: ignore[attr-defined]
        "channel_account_id": t.channel_account_id,  # type: ignore[attr-defined]
        "tags": t.tags,
        "version": t.version,
        "created_at": _iso(t.created_at),
        "updated_at": _iso(t.updated_at),
        "last_activity_at": _iso(t.last_activity_at),
        "first_response_due": _iso(t.first_response_due),
        "next_response_due": _iso(t.next_response_due),
        "resolution_due": _iso(t.resolution_due),
    }
    if detail:
        out.update(
            description=mask_text(t.description) if not actor.can_reveal else t.description,
            custom_fields=t.custom_fields,
            phone=mask_phone(decrypt_field(t.phone_enc)) if t.phone_enc else None,
            first_responded_at=_iso(t.first_responded_at),
            resolved_at=_iso(t.resolved_at),
            closed_at=_iso(t.closed_at),
            merged_into_id=t.merged_into_id,  # type: ignore[attr-defined]
        )
    return out


def message(m: Message, *, actor: Actor, channel_kind: str | None = None) -> dict[str, Any]:
    """A message on a ticket's timeline; phone numbers inside the text are masked without the reveal right."""
    return {
        "id": m.id,
        "direction": m.direction,
        "author_kind": m.author_kind,
        "staff_id": m.staff_id,  # type: ignore[attr-defined]
        "msg_type": m.msg_type,
        "text": m.text if actor.can_reveal else mask_text(m.text),
        "media": [{"kind": x.get("kind"), "url": f"/media/{x.get('path')}"} for x in (m.media or []) if x.get("path")],
        "channel": CHANNEL_LABELS.get(channel_kind or "", None),
        "outbox_id": m.outbox_id,
        "created_at": _iso(m.created_at),
    }


def event(e: TicketEvent, *, actor: Actor) -> dict[str, Any]:
    """An audit-trail entry."""

    def shown(value: str | None) -> str | None:
        return value if actor.can_reveal or not value else mask_text(value)

    return {
        "id": e.id,
        "kind": e.kind,
        "actor_kind": e.actor_kind,
        "actor_id": e.actor_id,  # type: ignore[attr-defined]
        "old": shown(e.old),
        "new": shown(e.new),
        "reason": shown(e.reason),
        "created_at": _iso(e.created_at),
    }
