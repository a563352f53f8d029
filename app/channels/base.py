"""The channel abstraction: what an inbound message looks like, and the adapter contract for delivery.

Each channel package (wechat_mp, wecom_app, wecom_kf, email, webchat) registers one adapter. The outbox picks the
adapter by the row's `channel` (Chatwoot's CHANNEL_SERVICES map); the NullAdapter delivers nowhere, for tickets
that have no channel (created through the API for a walk-in or phone customer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from app.labels import CHANNEL_LABELS

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage

__all__ = ["CHANNEL_LABELS", "IDENTITY_KIND", "ChannelAdapter", "DeliveryResult", "InboundMessage", "MediaRef"]

#: the customer identity kind that addresses a customer on each channel
IDENTITY_KIND = {
    "wechat_mp": "mp_openid",
    "wecom_kf": "kf_external_userid",
    "wecom_app": "external_userid",
    "email": "email",
    "webchat": "visitor",
}



@dataclass
class MediaRef:
    kind: str
    provider_media_id: str = ""
    url: str = ""
    content_type: str = ""
    filename: str = ""


@dataclass
class InboundMessage:
    """A message or event from a customer, channel-neutral (what conversations consume)."""

    channel: str
    channel_account_id: int
    #: the identity kind/value of the sender on this channel (mp_openid/o6_...)
    sender_kind: str
    sender_id: str
    msg_type: str
    provider_msg_id: str | None
    created_at: datetime
    text: str = ""
    media: list[MediaRef] = field(default_factory=list)
    #: for events: subscribe | unsubscribe | menu_click | menu_view | ...
    event: str | None = None
    event_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: the message's own subject (email): the subject of a ticket it opens
    subject: str = ""
    #: a channel that threads by reference (email) names the ticket the message continues ("" for a new thread,
    #: which then never joins another live ticket); None lets intake choose among the customer's tickets
    thread_number: str | None = None


@dataclass
class DeliveryResult:
    provider_msg_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class ChannelAdapter(Protocol):
    """Delivers outbox rows of one channel. An adapter whose platform has no idempotency key sets
    ``resend_safe = False``: a send with an unknown outcome is then left for staff instead of retried."""

    kind: str

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        """Deliver one outbox row or raise Temporary/PermanentChannelError."""


class NullAdapter:
    """Delivers nowhere: the message stays in the desk (a ticket entered by staff for a phone caller)."""

    kind = "null"

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        return DeliveryResult(detail={"delivered": "nowhere"})


_registry: dict[str, ChannelAdapter] = {"null": NullAdapter()}


def register_adapter(adapter: ChannelAdapter) -> None:
    """Make `adapter` the deliverer for its channel kind."""
    _registry[adapter.kind] = adapter


def get_adapter(kind: str) -> ChannelAdapter | None:
    """The adapter for a channel kind, or None when no such channel is installed."""
    return _registry.get(kind)
