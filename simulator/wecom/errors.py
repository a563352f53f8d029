"""WeCom (企业微信) error codes the simulator returns, with the real platform's errmsg suffix.

全局错误码 https://developer.work.weixin.qq.com/document/path/90455: errors are HTTP 200 with errcode/errmsg, and the
errmsg carries ``, hint: [...], from ip: ..., more info at https://open.work.weixin.qq.com/devtool/query?e=N`` so
that clients branch on errcode, never on the text.
"""

from __future__ import annotations

import secrets
from typing import Any

from simulator.responses import WeChatAPIError

__all__ = ["ERRMSG", "WeComError", "wecom_error_body"]

ERRMSG: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40029: "invalid code",
    40058: "invalid parameter",
    40068: "invalid tagid",
    40096: "invalid external userid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    42001: "access_token expired",
    44002: "empty post data",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60003: "department not found",
    60011: "no privilege to access/modify contact/party/agent",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    84061: "not exist external contact",
    701008: "no valid license",
}


def _suffix(errcode: int) -> str:
    hint = secrets.token_hex(10)
    return f", hint: [{hint}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"


def wecom_error_body(errcode: int, errmsg: str) -> dict[str, Any]:
    """``{"errcode", "errmsg"}`` with WeCom's hint suffix."""
    return {"errcode": errcode, "errmsg": errmsg + _suffix(errcode)}


class WeComError(WeChatAPIError):
    """A WeCom API error; the errmsg defaults to the table above. ``extra`` keys are merged into the body."""

    def __init__(self, errcode: int, errmsg: str | None = None, **extra: Any) -> None:
        super().__init__(errcode, errmsg or ERRMSG.get(errcode, "system error"))
        self.extra = extra
