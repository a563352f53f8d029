"""The events beyond ticket changes reach subscribers from their one hook each: SLA warnings and breaches
(app.tickets.sla), ratings (app.tickets.ratings), approval decisions (approvals.flows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app import intake
from app.security.scope import SYSTEM
from app.setup import setup
from app.tickets import ratings, sla
from app.tickets.models import Ticket
from app.timeutil import utcnow
from app.uow import atomic
from app.webhooks import service
from app.webhooks.models import WebhookDelivery
from approvals import flows as approval_flows
from approvals.models import ApprovalRequest
from tests import factories


async def _ticket() -> tuple[Ticket, dict[str, Any]]:
    setup()
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    await service.create(actor=admin, url="https://example.com/hook",
                         events=["sla.warning", "sla.breached", "csat.submitted", "approval.decided"])
    customer = await factories.customer()
    ticket = await intake.staff_ticket(actor=admin, customer=customer, subject="空调不制冷", assign_to_self=False)
    return ticket, data


async def test_sla_rating_and_approval_events_are_delivered(db: None) -> None:
    ticket, data = await _ticket()
    due = utcnow() + timedelta(minutes=5)
    async with atomic():
        await sla._record(ticket, clock=sla.FIRST, due=due, kind="warning", now=utcnow())
        await sla._record(ticket, clock=sla.FIRST, due=due, kind="breach", now=utcnow() + timedelta(minutes=6))
        # recorded once per clock and due time: a second run sends nothing more
        assert not await sla._record(ticket, clock=sla.FIRST, due=due, kind="breach", now=utcnow())
    await ratings.record_rating(ticket_id=ticket.id, score=2, comment="太慢了，回电13812345678", channel="h5",
                                source="h5_page")
    requester = data["people"]["agent"]
    async with atomic():
        request = await ApprovalRequest.create(ticket_id=ticket.id, kind="urgent", requester=requester,
                                               reason="客户投诉", created_at=utcnow())
        await approval_flows.on_rejected(request=request, comment="不符合条件", actor=SYSTEM)
    sent = {d.event_type: d.payload["data"] for d in await WebhookDelivery.all().order_by("id")}
    assert list(sent) == ["sla.warning", "sla.breached", "csat.submitted", "approval.decided"]
    assert (sent["sla.breached"]["clock"], sent["sla.breached"]["due"]) == (sla.FIRST, due.isoformat())
    assert sent["csat.submitted"]["rating"] == {"score": 2, "comment": "太慢了，回电138****5678", "source": "h5_page",
                                                "replaced": None}
    assert sent["approval.decided"]["approval"] == {"id": request.id, "kind": "urgent", "decision": "rejected",
                                                    "comment": "不符合条件"}
    assert {d["ticket"]["id"] for d in sent.values()} == {ticket.id}
