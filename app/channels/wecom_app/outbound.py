"""The ``wecom_app`` outbox adapter: app messages to staff through ``message/send``.

Follows 发送应用消息 https://developer.work.weixin.qq.com/document/path/90236 and 模板卡片消息
https://developer.work.weixin.qq.com/document/path/101032. A ``staff_card`` row carries ``msgtype``
(``template_card`` or ``textcard``) and the card body; the recipient is the staff member's userid.

Sending once: the outbox claims a row for one sender at a time, and every send asks WeCom's duplicate check
(``enable_duplicate_check``, 1800 s) so that a job retried after a crash between the send and ``mark_sent`` does not
reach the phone twice (the JSON is the same, so WeCom suppresses it). A recipient WeCom reports in ``invaliduser``
(left, or outside the app's visibility) fails the row permanently; so does 81013.
"""

from __future__ import annotations

from typing import Any

from app.channels.base import DeliveryResult
from app.errors import PermanentChannelError
from app.outbox.models import OutboxMessage
from app.wecom.work import wecom_api

__all__ = ["WeComAppAdapter"]


#: how long WeCom suppresses the same card (its default and maximum is 4 hours; we keep the default)
DUPLICATE_CHECK_SECONDS = 1800


class WeComAppAdapter:
    """Delivers cards and texts to staff in WeCom."""

    kind = "wecom_app"
    #: WeCom's duplicate check drops a repeat of the same card, so a timed-out send is simply retried
    resend_safe = True

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        """Send one row with message/send."""
        if message.kind != "staff_card":
            # the self-built app cannot write to external contacts; their replies go through kf or the sidebar
            raise PermanentChannelError("the WeCom app only messages staff", code="wecom_external_unsupported")
        payload: dict[str, Any] = message.payload
        msgtype = str(payload.get("msgtype") or "")
        content = payload.get(msgtype)
        if not isinstance(content, dict) or not message.recipient:
            raise PermanentChannelError("the card has no content or recipient", code="bad_payload")
        result = await wecom_api("app").send_message(touser=[message.recipient], msgtype=msgtype, content=content,
                                                     duplicate_check_interval=DUPLICATE_CHECK_SECONDS)
        invalid = {u for u in str(result.get("invaliduser") or "").split("|") if u}
        if message.recipient.lower() in invalid:
            raise PermanentChannelError("WeCom does not know this member or the app cannot see them",
                                        code="wecom_invalid_recipient")
        return DeliveryResult(provider_msg_id=str(result.get("msgid") or "") or None,
                              detail={"msgtype": msgtype})
