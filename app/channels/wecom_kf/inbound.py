"""A pulled kf item -> InboundMessage (pure). Item shapes: 接收消息和事件
https://developer.work.weixin.qq.com/document/path/94670 (origin 3 = the customer, 4 = system event, 5 = a servicer
in WeCom's own client)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.channels.base import InboundMessage, MediaRef

MEDIA_TYPES = ("image", "voice", "video", "file")


def to_inbound(item: dict[str, Any], *, account_id: int) -> InboundMessage:
    """The channel-neutral form of a customer's kf message."""
    msgtype = str(item.get("msgtype") or "")
    body = item.get(msgtype) if isinstance(item.get(msgtype), dict) else {}
    assert isinstance(body, dict)
    text = ""
    media: list[MediaRef] = []
    data: dict[str, Any] = {"open_kfid": item.get("open_kfid", ""), "origin": item.get("origin")}
    if msgtype == "text":
        text = str(body.get("content", ""))
        if body.get("menu_id"):
            data["menu_id"] = str(body["menu_id"])
    elif msgtype in MEDIA_TYPES:
        media.append(MediaRef(kind=msgtype, provider_media_id=str(body.get("media_id", ""))))
    elif msgtype == "location":
        text = f"[位置] {body.get('name', '')} {body.get('address', '')}".strip()
        data["location"] = {k: body.get(k) for k in ("latitude", "longitude", "name", "address")}
    elif msgtype == "link":
        text = f"[链接] {body.get('title', '')} {body.get('url', '')}".strip()
        data["link"] = {k: body.get(k) for k in ("title", "desc", "url", "pic_url")}
    else:
        text = f"[{msgtype}]"
    return InboundMessage(
        channel="wecom_kf",
        channel_account_id=account_id,
        sender_kind="kf_external_userid",
        sender_id=str(item.get("external_userid", "")),
        msg_type=msgtype if msgtype in ("text", "location", "link", *MEDIA_TYPES) else "text",
        provider_msg_id=str(item.get("msgid", "")) or None,
        created_at=datetime.fromtimestamp(int(item.get("send_time") or 0), UTC),
        text=text,
        media=media,
        data=data,
    )
