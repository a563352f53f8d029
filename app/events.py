"""Event names (Chatwoot-style strings) that flows and notifications speak about."""

from __future__ import annotations

TICKET_CREATED = "ticket.created"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_ASSIGNED = "ticket.assigned"
TICKET_UPDATED = "ticket.updated"
TICKET_REPLIED = "ticket.replied"
TICKET_NOTE_ADDED = "ticket.note_added"
TICKET_MERGED = "ticket.merged"
CUSTOMER_MESSAGE = "ticket.customer_message"
SLA_BREACHED = "sla.breached"
