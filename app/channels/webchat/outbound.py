"""Delivery to a visitor: an outbox row is published on the hub to the visitor's open sockets.

The staff reply itself is already a stored ``Message`` (tickets.reply), so a widget that was offline gets it on
re-sync; automatic messages (acknowledgements, notices) are stored here as outbound messages for the same reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.channels.base import DeliveryResult
from app.channels.webchat import accounts
from app.channels.webchat.hub import hub, topic
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.errors import PermanentChannelError

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage


def message_event(message: Message, *, text: str) -> dict[str, object]:
    """What the widget is sent for one stored message."""
    return {"type": "message", "id": message.id, "direction": message.direction, "author": message.author_kind,
            "text": text, "at": message.created_at.isoformat() if message.created_at else None}


class WebchatAdapter:
    kind = accounts.KIND
    #: publishing twice shows a message twice at most; the widget drops ids it has
    resend_safe = True

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        account_id = message.channel_account_id  # type: ignore[attr-defined]
        if account_id is None:
            raise PermanentChannelError("这条消息所属的网站已不存在", code="no_account")
        identity = await CustomerIdentity.get_or_none(kind="visitor", value=message.recipient)
        if identity is None:
            raise PermanentChannelError("访客不存在", code="no_recipient")
        text = str(message.payload.get("text") or "")
        stored_id = message.payload.get("message_id")
        stored = await Message.get_or_none(id=int(stored_id)) if stored_id else None
        if stored is None:
            stored = await Message.get_or_none(outbox_id=message.id)
        if stored is None:
            stored = await Message.create(
                ticket_id=message.ticket_id, customer_id=identity.customer_id,  # type: ignore[attr-defined]
                channel_account_id=account_id, direction="out", author_kind="system", msg_type="text",
                text=text, media=[], outbox_id=message.id, data={})
        await hub.publish(topic(account_id=account_id, visitor_id=message.recipient),
                          message_event(stored, text=text))
        return DeliveryResult(provider_msg_id=f"webchat:{message.id}", detail={"message_id": stored.id})
