"""The assignment card carries the ticket's summary (a bot hand-off's description) as one row, masked."""

from __future__ import annotations

from app.notifications import staff as cards
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.tickets import service
from app.tickets.models import Ticket
from tests import factories


async def test_the_assignment_card_shows_the_summary_row_masked(db: None) -> None:
    data = await factories.org()
    cust = await factories.customer()
    ticket = await service.create(actor=SYSTEM, customer_id=cust.id, group_id=data["groups"]["service"].id,
                                  subject="退款还没到账", description="退款一周没到账；手机 13812345678；很着急")
    await Ticket.filter(id=ticket.id).update(assignee_id=data["people"]["agent"].id)
    await cards.ticket_assigned(ticket=await Ticket.get(id=ticket.id))
    card = (await OutboxMessage.get(kind="staff_card", recipient="agent")).payload["template_card"]
    assert card["horizontal_content_list"][-1] == {"keyname": "摘要",
                                                   "value": "退款一周没到账；手机 138****5678；很着急"}
