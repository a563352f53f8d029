"""Dispatch of stored WeCom app pushes by event type (Zulip's EVENT_FUNCTION_MAPPER shape).

接收消息与事件 https://developer.work.weixin.qq.com/document/path/96466. One map, ``WECOM_APP_HANDLERS``, from the
push's key to an async handler: the ``Event`` for events (``change_external_contact``, ``kf_msg_or_event``,
``sys_approval_change``, ``template_card_event``...), ``message:<MsgType>`` for member messages. Packages register
at import time::

    from app.channels.wecom_app.handlers import WeComPush, register_wecom_app_handler

    async def on_kf(push: WeComPush) -> str:
        ...  # pull kf/sync_msg with push.fields["Token"]; idempotent, it may run twice
        return "done"

    register_wecom_app_handler("kf_msg_or_event", on_kf)

A handler returns the stored event's final status (``done`` or ``ignored``) and raises to be retried. Unknown keys
are logged and marked ``ignored``, never an error. Handlers run in jobs, so they may call the WeCom API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.channels.models import ChannelAccount, InboundEvent
from app.logs import get_logger
from app.wecom.callback import parse_xml

__all__ = ["WECOM_APP_HANDLERS", "WeComPush", "process", "push_key", "register_wecom_app_handler"]

log = get_logger(__name__)


@dataclass(frozen=True)
class WeComPush:
    """A stored, authenticated WeCom push as handlers see it."""

    event_id: int
    key: str
    #: top-level fields of the decrypted XML, every value a string (nested elements keep their XML)
    fields: dict[str, str]
    #: the decrypted XML as received (for nested or repeated elements, e.g. ApprovalInfo)
    xml: str


Handler = Callable[[WeComPush], Awaitable[str]]
#: push key -> handler
WECOM_APP_HANDLERS: dict[str, Handler] = {}


def register_wecom_app_handler(key: str, handler: Handler) -> None:
    """Route pushes with this key (an Event name, or ``message:<MsgType>``) to ``handler``."""
    WECOM_APP_HANDLERS[key] = handler


def push_key(fields: dict[str, str]) -> str:
    """The dispatch key of a push."""
    msg_type = fields.get("MsgType", "")
    if msg_type == "event":
        return fields.get("Event", "")
    return f"message:{msg_type}"


async def process(event: InboundEvent, account: ChannelAccount | None) -> str:
    """The InboundEvent processor for kind ``wecom_app``: parse, then dispatch on the key."""
    fields = parse_xml(event.payload)
    key = push_key(fields)
    handler = WECOM_APP_HANDLERS.get(key)
    if handler is None:
        log.info("wecom_app.unhandled", event_id=event.id, key=key)
        return "ignored"
    return await handler(WeComPush(event_id=event.id, key=key, fields=fields, xml=event.payload))
