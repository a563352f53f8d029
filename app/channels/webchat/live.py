"""The staff side of a live web chat: typing and read state both ways, and the visitor's new messages.

A ticket of a web chat site has one or more visitors (one per browser; a merge by a verified contact brings more).
The staff page listens on each visitor's staff topic (``webchat:{account}:{visitor}#staff``: the visitor's typing,
read state and new messages) and publishes on the visitor topic (``webchat:{account}:{visitor}``: staff typing,
staff read state), both through the hub, so the staff page and the widget may sit in different web processes.

Read state is kept on the visitor's identity row (``data["read"] = {"staff": id, "visitor": id}``, ids only grow),
so a widget that reconnects and a staff page that loads show it without waiting for the next live event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.channels.models import ChannelAccount
from app.channels.webchat import accounts
from app.channels.webchat.hub import hub, topic
from app.conversations.models import Message
from app.customers.models import CustomerIdentity
from app.security.pii import mask_text
from app.tickets.models import Ticket
from app.uow import atomic


def staff_topic(*, account_id: int, visitor_id: str) -> str:
    """Where the visitor's typing, read state and new messages go (the staff side listens here)."""
    return topic(account_id=account_id, visitor_id=visitor_id) + "#staff"


@dataclass(frozen=True)
class Chat:
    """The live side of one web chat ticket: its site and the visitor ids of its customer there."""

    account_id: int
    customer_id: int
    visitor_ids: tuple[str, ...]

    @property
    def staff_topics(self) -> list[str]:
        return [staff_topic(account_id=self.account_id, visitor_id=v) for v in self.visitor_ids]

    @property
    def visitor_topics(self) -> list[str]:
        return [topic(account_id=self.account_id, visitor_id=v) for v in self.visitor_ids]


async def chat_of(*, ticket: Ticket) -> Chat | None:
    """The live chat behind a ticket, or None when the ticket is not a web chat's."""
    account_id = ticket.channel_account_id  # type: ignore[attr-defined]
    if account_id is None:
        return None
    account = await ChannelAccount.get_or_none(id=account_id, kind=accounts.KIND)
    if account is None:
        return None
    customer_id = int(ticket.customer_id)  # type: ignore[attr-defined]
    ids = await CustomerIdentity.filter(customer_id=customer_id, kind="visitor", scope=account.key).order_by(
        "id").values_list("value", flat=True)
    if not ids:
        return None
    return Chat(account_id=account.id, customer_id=customer_id, visitor_ids=tuple(str(v) for v in ids))


def _read(identity: CustomerIdentity) -> dict[str, int]:
    found = (identity.data or {}).get("read")
    return {k: int(v) for k, v in found.items() if isinstance(v, int)} if isinstance(found, dict) else {}


async def _remember(*, customer_id: int | None, scope: str | None, visitor_id: str, who: str, message_id: int) -> bool:
    """Move one visitor's read mark forward; False when it was already there (nothing to publish)."""
    query = CustomerIdentity.filter(kind="visitor", value=visitor_id)
    if scope is not None:
        query = query.filter(scope=scope)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    async with atomic():
        identity = await query.select_for_update().first()
        if identity is None:
            return False
        read = _read(identity)
        if read.get(who, 0) >= message_id:
            return False
        identity.data = {**(identity.data or {}), "read": {**read, who: message_id}}
        await identity.save(update_fields=["data"])
    return True


async def read_state(*, account: ChannelAccount, visitor_id: str) -> dict[str, int]:
    """The visitor's read marks: ``staff`` (staff read the visitor's messages up to it) and ``visitor``."""
    identity = await CustomerIdentity.get_or_none(kind="visitor", scope=account.key, value=visitor_id)
    return _read(identity) if identity is not None else {}


async def chat_read_state(*, chat: Chat) -> dict[str, int]:
    """The furthest read marks over the chat's visitors (what the staff page shows on load)."""
    out: dict[str, int] = {}
    for identity in await CustomerIdentity.filter(customer_id=chat.customer_id, kind="visitor",
                                                  value__in=list(chat.visitor_ids)):
        for who, mark in _read(identity).items():
            out[who] = max(out.get(who, 0), mark)
    return out


async def staff_typing(*, chat: Chat) -> None:
    """Show the visitor's widget 「客服正在输入…」."""
    for name in chat.visitor_topics:
        await hub.publish(name, {"type": "typing", "who": "staff"})


async def staff_read(*, chat: Chat, message_id: int) -> int:
    """Staff have read the visitor's messages up to ``message_id`` (one of the chat's own, else the latest of
    theirs before it): remembered and shown as 已读 in the widget. Returns the mark (0: nothing to mark)."""
    latest = await Message.filter(customer_id=chat.customer_id, channel_account_id=chat.account_id, direction="in",
                                  id__lte=message_id).order_by("-id").first()
    if latest is None:
        return 0
    for visitor_id in chat.visitor_ids:
        if await _remember(customer_id=chat.customer_id, scope=None, visitor_id=visitor_id, who="staff",
                           message_id=int(latest.id)):
            await hub.publish(topic(account_id=chat.account_id, visitor_id=visitor_id),
                              {"type": "read", "who": "staff", "id": int(latest.id)})
    return int(latest.id)


async def visitor_read(*, account: ChannelAccount, visitor_id: str, customer_id: int, message_id: int) -> None:
    """The visitor's widget showed our messages up to ``message_id`` (clamped to the latest of theirs): remembered
    and told to the staff side."""
    latest = await Message.filter(customer_id=customer_id, channel_account_id=account.id, direction="out",
                                  id__lte=message_id).order_by("-id").first()
    if latest is None:
        return
    if await _remember(customer_id=customer_id, scope=account.key, visitor_id=visitor_id, who="visitor",
                       message_id=int(latest.id)):
        await hub.publish(staff_topic(account_id=account.id, visitor_id=visitor_id),
                          {"type": "read", "who": "visitor", "id": int(latest.id)})


async def visitor_typing(*, account: ChannelAccount, visitor_id: str) -> None:
    """Show the staff page 「客户正在输入…」."""
    await hub.publish(staff_topic(account_id=account.id, visitor_id=visitor_id), {"type": "typing", "who": "visitor"})


async def visitor_message(*, account: ChannelAccount, visitor_id: str, message: Message) -> None:
    """A visitor's new message, for the staff page (masked as the timeline shows it)."""
    event: dict[str, Any] = {"type": "message", "who": "visitor", "id": int(message.id),
                             "text": mask_text(message.text), "ticket_id": message.ticket_id}  # type: ignore[attr-defined]
    await hub.publish(staff_topic(account_id=account.id, visitor_id=visitor_id), event)
