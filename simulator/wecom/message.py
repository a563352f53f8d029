"""发送应用消息 https://developer.work.weixin.qq.com/document/path/90236 (``message/send``).

The app must send as itself (``agentid`` equal to the token's app, else 60020-like refusal: we answer 40058),
recipients are checked against the directory, the per-member limit (30 a minute) drops the excess silently, and
``enable_duplicate_check`` suppresses a repeat of the same JSON within ``duplicate_check_interval``. Sending does not
count against the basic per-API limits.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["routes"]

MSGTYPES = ("text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown", "miniprogram_notice",
            "template_card")


async def send(call: WeComCall) -> dict[str, Any]:
    """``POST message/send``."""
    app = call.require_app()
    data = call.json()
    if app.agent_id is None or str(data.get("agentid")) != str(app.agent_id):
        raise WeComError(40058, "invalid agentid")
    msgtype = str(data.get("msgtype") or "")
    if msgtype not in MSGTYPES or not isinstance(data.get(msgtype), dict):
        raise WeComError(40058, "invalid msgtype")
    if msgtype == "template_card" and "card_action" not in data["template_card"] and \
            data["template_card"].get("card_type") == "text_notice":
        raise WeComError(40058, "card_action is required for text_notice")
    if msgtype == "textcard":
        card = data["textcard"]
        if not card.get("title") or not card.get("url") or len(str(card.get("title")).encode()) > 128:
            raise WeComError(40058, "invalid textcard")
    answer: dict[str, Any] = call.wecom.record_message(app, data)
    return answer


routes: list[Route] = [wecom_route("message/send", send, methods=["POST"], rate_limited=False)]
