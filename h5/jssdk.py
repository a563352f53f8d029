"""JS-SDK signatures for ``wx.config`` (corp jsapi_ticket) and ``wx.agentConfig`` (the app's agent_config ticket).

Follows JS-SDK使用权限签名算法 https://developer.work.weixin.qq.com/document/path/96909 (and the MP JS-SDK
appendix 1, same algorithm): sha1 over ``jsapi_ticket=…&noncestr=…&timestamp=…&url=…`` with the keys in that fixed
order, nothing URL-encoded, and the page URL cut at ``#``. The two configs must use different tickets: the corp
ticket (``get_jsapi_ticket``) for wx.config, the app ticket (``ticket/get?type=agent_config``) for wx.agentConfig.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

__all__ = ["AGENT_APIS", "CONFIG_APIS", "agent_config", "sign", "wx_config"]

#: what the pages call: the chat sidebar's current contact, picking a contact, image preview
CONFIG_APIS = ["previewImage", "chooseImage"]
AGENT_APIS = ["getCurExternalContact", "selectExternalContact", "getContext"]


def sign(*, ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """The JS-SDK signature of a page URL (the part after ``#`` is dropped)."""
    page = url.split("#", 1)[0]
    raw = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def _signed(ticket: str, url: str, now: int | None) -> tuple[str, int, str]:
    noncestr = secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
    timestamp = int(time.time()) if now is None else now
    return noncestr, timestamp, sign(ticket=ticket, noncestr=noncestr, timestamp=timestamp, url=url)


def wx_config(*, corp_id: str, ticket: str, url: str, now: int | None = None) -> dict[str, Any]:
    """The argument of ``wx.config`` (corp ticket)."""
    noncestr, timestamp, signature = _signed(ticket, url, now)
    return {"beta": True, "debug": False, "appId": corp_id, "timestamp": timestamp, "nonceStr": noncestr,
            "signature": signature, "jsApiList": CONFIG_APIS}


def agent_config(*, corp_id: str, agent_id: str, ticket: str, url: str, now: int | None = None) -> dict[str, Any]:
    """The argument of ``wx.agentConfig`` (the app's agent_config ticket)."""
    noncestr, timestamp, signature = _signed(ticket, url, now)
    return {"corpid": corp_id, "agentid": agent_id, "timestamp": timestamp, "nonceStr": noncestr,
            "signature": signature, "jsApiList": AGENT_APIS}
