"""People-facing names shared by several domains (kept here so the ticket domain needs no channel code)."""

from __future__ import annotations

#: people-facing channel names
CHANNEL_LABELS = {
    "wechat_mp": "公众号",
    "wecom_kf": "微信客服",
    "wecom_app": "企业微信",
    "email": "邮件",
    "webchat": "网页",
    "api": "后台录入",
    "null": "无渠道",
}
