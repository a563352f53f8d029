"""WeCom access_token and JS-SDK tickets.

获取access_token https://developer.work.weixin.qq.com/document/path/91039; JS-SDK 签名与 ticket
https://developer.work.weixin.qq.com/document/path/96909 (corp ``get_jsapi_ticket`` and app
``ticket/get?type=agent_config``, each the same until it expires).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["routes"]


async def get_token(call: WeComCall) -> dict[str, Any]:
    """``GET gettoken?corpid=&corpsecret=``."""
    corpid = call.query("corpid", missing=41002)
    secret = call.query("corpsecret", missing=41004)
    issued = call.wecom.issue_token(corpid, secret)
    return {"access_token": issued.token, "expires_in": int(issued.expires_at - call.state.clock.now())}


async def get_jsapi_ticket(call: WeComCall) -> dict[str, Any]:
    """``GET get_jsapi_ticket``: the corp's JS-SDK ticket."""
    ticket, expires_in = call.wecom.ticket("corp")
    return {"ticket": ticket, "expires_in": expires_in}


async def get_agent_ticket(call: WeComCall) -> dict[str, Any]:
    """``GET ticket/get?type=agent_config``: the app's ticket (per agent, not per corp)."""
    if call.query("type") != "agent_config":
        raise WeComError(40058, "invalid type")
    app = call.require_app()
    ticket, expires_in = call.wecom.ticket(f"agent:{app.agent_id}")
    return {"ticket": ticket, "expires_in": expires_in}


routes: list[Route] = [
    wecom_route("gettoken", get_token, methods=["GET"], needs_token=False, rate_limited=False),
    wecom_route("get_jsapi_ticket", get_jsapi_ticket, methods=["GET"]),
    wecom_route("ticket/get", get_agent_ticket, methods=["GET"]),
]
