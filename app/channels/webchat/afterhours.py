"""Outside working hours on a site with the bot on: the bot answers around the clock, and the 留言 form takes the
place of its hand-off.

The visitor's message goes through ``app.intake.receive`` as during working hours (the bot answers, asks, offers
choices). When the turn would open a ticket (the bot hands the visitor to a person: 人工, repeated misses, not
solved, the details of a refund collected...), nobody is there to take the chat: the turn is undone (its transaction
rolled back: no ticket, no "转接人工" promise, the bot session as it was) and the widget offers the offline form,
prefilled with what the visitor wrote. What they submit is the offline form's ticket (``webchat_offline``, with the
contact the form asks for), so the hand-off of the night is the same 网页留言 as without the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.config import load_rules
from app.conversations.models import Message
from app.customers.models import Customer
from app.logs import get_logger
from app.security.tokens import detokenise_data
from app.tickets.models import Ticket, TicketEvent
from app.uow import atomic

if TYPE_CHECKING:
    from app.intake import Outcome

log = get_logger(__name__)


@dataclass(frozen=True)
class LeaveMessage:
    """The bot would have handed off: offer the 留言 form instead."""

    #: why the bot would have handed off (human_request, bot_failed, ...; empty when it was not the bot)
    reason: str
    #: what the visitor wrote since their last ticket, one message a line, for the form's text
    text: str


class _Undo(Exception):
    """Leaves the turn's transaction, rolling it back."""

    def __init__(self, offer: LeaveMessage) -> None:
        super().__init__(offer.reason)
        self.offer = offer


async def bot_on(account: ChannelAccount) -> bool:
    """Whether the bot answers the site's visitors."""
    from app.kb import bot, calibration

    return bot.bot_enabled(account, await calibration.bot_config())


async def receive(*, inbound: InboundMessage, account: ChannelAccount, customer: Customer,
                  max_chars: int) -> Outcome | LeaveMessage:
    """The visitor's message through the intake flow, unless it would open a ticket: then nothing of it is kept and
    the 留言 form is offered (``max_chars``: the longest text the form takes)."""
    from app import intake

    try:
        async with atomic():
            outcome = await intake.receive(inbound=inbound, account=account, customer=customer)
            if outcome.created_ticket and outcome.ticket is not None:
                raise _Undo(await _offer(ticket=outcome.ticket, max_chars=max_chars))
    except _Undo as undo:
        log.info("webchat.after_hours_offer", site=account.key, reason=undo.offer.reason)
        return undo.offer
    return outcome


async def _offer(*, ticket: Ticket, max_chars: int) -> LeaveMessage:
    """What the undone ticket would have said: the bot's reason, and the visitor's messages it took."""
    from app.kb import bot

    event = await TicketEvent.filter(ticket_id=ticket.id, kind="bot_handoff").first()
    rows = await Message.filter(ticket_id=ticket.id, direction="in").order_by("id")
    texts = await detokenise_data([m.text or "" for m in rows])
    # "人工" alone is the request for a person, not part of the question
    asks = {*load_rules().human_request, *bot.HUMAN_WORDS}
    lines = [t.strip() for t in texts if t.strip() and t.strip() not in asks]
    return LeaveMessage(reason=event.reason if event is not None else "", text="\n".join(lines)[-max_chars:])
