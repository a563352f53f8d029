"""The outbox JSON API under /api/v1/outbox: staff resend a message whose delivery outcome is unknown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http import FastJSONResponse, api, path_int
from app.outbox import service
from app.outbox.models import OutboxMessage
from app.security.scope import Actor

#: what the API shows for each outbox status
STATUS_LABELS = {"pending": "发送中", "sending": "发送中", "sent": "已送达", "failed": "发送失败", "dead": "发送失败",
                 "unknown": "结果未知"}


def outbox_row(row: OutboxMessage) -> dict[str, object]:
    """An outbox row as the API returns it (no payload: it may hold personal data)."""
    return {"id": row.id, "channel": row.channel, "kind": row.kind, "status": row.status,
            "status_label": STATUS_LABELS.get(row.status, row.status), "attempts": row.attempts,
            "ticket_id": row.ticket_id}  # type: ignore[attr-defined]


@api
async def resend_outbox(request: Request, actor: Actor) -> Response:
    """Send a message whose delivery outcome is unknown once more (404 outside your scope, 409 unless unknown)."""
    row = await service.resend(actor=actor, outbox_id=path_int(request, "outbox_id"))
    return FastJSONResponse(outbox_row(row), status_code=202)


routes = [
    Route("/outbox/{outbox_id}/resend", resend_outbox, methods=["POST"]),
]
