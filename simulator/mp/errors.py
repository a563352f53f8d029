"""MP (公众号) error codes the simulator returns.

全局返回码说明 https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html
Clients must branch on errcode only; the texts below are the usual English errmsg values.
"""

from __future__ import annotations

from simulator.responses import WeChatAPIError

__all__ = ["ERRMSG", "MPError"]

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40016: "invalid button size",
    40037: "invalid template_id",
    40097: "invalid args",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41006: "media_id missing",
    41009: "missing openid",
    42001: "access_token expired",
    43004: "require subscribe",
    44001: "empty media data",
    44002: "empty post data",
    44004: "empty content",
    45009: "api freq out of limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    46003: "menu no exist",
    47001: "data format error",
}


class MPError(WeChatAPIError):
    """An MP API error; the errmsg defaults to the table above."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errcode, errmsg or ERRMSG.get(errcode, "system error"))
