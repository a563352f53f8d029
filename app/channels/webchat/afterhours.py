"""Outside working hours on a site with the bot on: the bot answers around the clock, and the 留言 form takes the
place of its hand-off.

The visitor's message goes through ``app.intake.receive`` as during working hours (the bot answers, asks, offers
choices). Where the bot would hand the visitor to a person (人工, repeated misses, not solved, the details of a refund
collected...), nobody is there to take the chat: intake holds the hand-off (no ticket is opened), the turn is undone
(its transaction rolled back: no "转接人工" promise, the message not kept, the bot session as it was) and the widget
offers the offline form, prefilled with what the visitor wrote. What they submit is the offline form's ticket
(``webchat_offline``, with the contact the form asks for), so the hand-off of the night is the same 网页留言 as
without the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tortoise.queryset import QuerySet

from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.config import load_rules
from app.conversations.models import Message
from app.customers.models import Customer
from app.logs import get_logger
from app.security.tokens import detokenise_data
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
            # the bot's hand-off is held by intake itself: no ticket (and no ticket number) is made to be undone
            outcome = await intake.receive(inbound=inbound, account=account, customer=customer, hold_handoff=True)
            conv = outcome.message.conversation_id if outcome.message is not None else None  # type: ignore[attr-defined]
            if outcome.held_handoff is not None and conv is not None:
                rows = Message.filter(conversation_id=conv, ticket_id=None)
                raise _Undo(await _offer(reason=outcome.held_handoff, rows=rows, max_chars=max_chars))
            if outcome.created_ticket and outcome.ticket is not None:
                # not the bot's: the desk's conversion rules would open a ticket (every message, repeated contact)
                raise _Undo(await _offer(reason="", rows=Message.filter(ticket_id=outcome.ticket.id),
                                         max_chars=max_chars))
    except _Undo as undo:
        # leaving the transaction undid the turn: the stored message, the bot's "转接人工" and its session's change
        log.info("webchat.after_hours_offer", site=account.key, reason=undo.offer.reason)
        return undo.offer
    return outcome


async def _offer(*, reason: str, rows: QuerySet[Message], max_chars: int) -> LeaveMessage:
    """The form's offer: the bot's reason, and the visitor's messages the hand-off would have taken."""
    from app.kb import bot

    texts = await detokenise_data([m.text or "" for m in await rows.filter(direction="in").order_by("id")])
    # "人工" alone is the request for a person, not part of the question
    asks = {*load_rules().human_request, *bot.HUMAN_WORDS}
    lines = [t.strip() for t in texts if t.strip() and t.strip() not in asks]
    return LeaveMessage(reason=reason, text="\n".join(lines)[-max_chars:])
