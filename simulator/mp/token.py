"""MP access_token and JS-SDK ticket endpoints."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.mp.api import MPCall, mp_route
from simulator.mp.errors import MPError

__all__ = ["routes"]

# 获取 Access token https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
TOKEN_PATH = "token"
# JS-SDK 附录1 jsapi_ticket https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/JS-SDK.html
TICKET_PATH = "ticket/getticket"


async def get_token(call: MPCall) -> dict[str, Any]:
    """``GET cgi-bin/token?grant_type=client_credential&appid=&secret=``."""
    if call.query("grant_type") != "client_credential":
        raise MPError(40002)
    appid = call.query("appid", missing=41002)
    secret = call.query("secret", missing=41004)
    issued = call.state.mp.issue_token(appid, secret)
    return {"access_token": issued.token, "expires_in": int(issued.expires_at - issued.issued_at)}


async def get_ticket(call: MPCall) -> dict[str, Any]:
    """``GET cgi-bin/ticket/getticket?type=jsapi``; the same ticket until it expires."""
    if call.query("type") not in ("jsapi", "wx_card"):
        raise MPError(40097)
    ticket, expires_in = call.state.mp.jsapi_ticket(call.appid)
    return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in}


routes: list[Route] = [
    mp_route(TOKEN_PATH, get_token, methods=["GET"], needs_token=False),
    mp_route(TICKET_PATH, get_ticket, methods=["GET"]),
]
