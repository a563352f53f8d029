"""Error bodies shaped like the real platforms'.

WeChat answers API errors with HTTP 200 and ``{"errcode": N, "errmsg": "..."}``; the errmsg carries a random
``rid`` suffix (MP) so that clients branch on errcode, never on errmsg
(https://developers.weixin.qq.com/doc/service/guide/dev/api/ — 全局返回码说明).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.responses import JSONResponse, Response

__all__ = ["WeChatAPIError", "bad_gateway", "mp_error_body", "rid", "wechat_json"]


class WeChatAPIError(Exception):
    """Raised inside a simulated endpoint; rendered as HTTP 200 with errcode/errmsg."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


def rid() -> str:
    """A request id in the shape MP appends to errmsg, e.g. ``6299e87e-5ed9e599-0d046b47``."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def mp_error_body(errcode: int, errmsg: str) -> dict[str, Any]:
    """``{"errcode", "errmsg"}`` with the MP ``rid:`` suffix."""
    return {"errcode": errcode, "errmsg": f"{errmsg} rid: {rid()}"}


def wechat_json(data: dict[str, Any]) -> JSONResponse:
    """JSON the way the WeChat API serves it (UTF-8, non-ASCII kept)."""
    return JSONResponse(data, media_type="application/json; encoding=utf-8")


def bad_gateway(status: int) -> Response:
    """What a client sees when the platform's front gateway fails."""
    body = f"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center></body></html>"
    return Response(body, status_code=status, media_type="text/html")
