"""MP customer-service (客服) and template (模板) message endpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.routing import Route

from simulator.mp.api import MPCall, mp_route
from simulator.mp.errors import MPError
from simulator.mp.store import render_template
from simulator.state import SimulatorState

__all__ = ["routes"]

logger = logging.getLogger(__name__)

# 客服消息 发送消息 https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage
CUSTOM_SEND_PATH = "message/custom/send"
# 模板消息 发送模板消息 https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage.md
TEMPLATE_SEND_PATH = "message/template/send"

# msgtypes whose payload points at a temporary media file that must exist
_MEDIA_MSGTYPES = ("image", "voice", "video")


async def custom_send(call: MPCall) -> dict[str, Any]:
    """Deliver a custom message if the customer-service window allows it (45015 / 45047 otherwise)."""
    data = call.json()
    touser = data.get("touser")
    if not isinstance(touser, str) or not touser:
        raise MPError(41009)
    msgtype = data.get("msgtype")
    if not isinstance(msgtype, str) or not msgtype:
        raise MPError(40008)
    payload = data.get(msgtype)
    if not isinstance(payload, dict):
        raise MPError(40008)
    if msgtype == "text" and not str(payload.get("content") or ""):
        raise MPError(44004)
    if msgtype in _MEDIA_MSGTYPES:
        call.state.mp.get_media(call.appid, str(payload.get("media_id") or ""))
    call.state.mp.consume_custom_quota(call.appid, touser)
    call.state.mp.record_sent(appid=call.appid, touser=touser, kind="custom", msgtype=msgtype, body=data)
    return {"errcode": 0, "errmsg": "ok"}


async def template_send(call: MPCall) -> dict[str, Any]:
    """Deliver a template message: not bound by the 48 h window, but the user must follow the account."""
    data = call.json()
    touser = data.get("touser")
    if not isinstance(touser, str) or not touser:
        raise MPError(41009)
    template_id = data.get("template_id")
    if not isinstance(template_id, str) or not template_id:
        raise MPError(40037)
    template = call.state.mp.template(call.appid, template_id)
    fields = data.get("data")
    if fields is not None and not isinstance(fields, dict):
        raise MPError(47001)
    user = call.state.mp.user(call.appid, touser)
    if user is None:
        raise MPError(40003)
    if not user.subscribe:
        raise MPError(43004)
    msgid = call.state.mp.next_msg_id()
    call.state.mp.record_sent(
        appid=call.appid,
        touser=touser,
        kind="template",
        msgtype="template",
        body=data,
        msgid=msgid,
        title=template.title if template else None,
        rendered=render_template(template.content, fields or {}) if template else None,
    )
    _schedule_job_finish(call.state, call.appid, touser, msgid)
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def _schedule_job_finish(state: SimulatorState, appid: str, openid: str, msgid: int) -> None:
    """WeChat reports the delivery asynchronously with a TEMPLATESENDJOBFINISH event to the callback URL."""
    account = state.mp.account(appid)
    if not state.mp.template_job_finish or not account.callback_url:
        return
    from simulator.driver import WeChatDriver  # the driver imports the store; import here to keep layers apart

    async def deliver() -> None:
        await asyncio.sleep(state.mp.template_job_finish_delay)
        try:
            await WeChatDriver(state, account).template_send_job_finish(openid, msgid)
        except Exception:  # a background callback must never crash the API server
            logger.exception("TEMPLATESENDJOBFINISH delivery to %s failed", account.callback_url)

    task = asyncio.get_running_loop().create_task(deliver())
    state.background_tasks.add(task)
    task.add_done_callback(state.background_tasks.discard)


routes: list[Route] = [
    mp_route(CUSTOM_SEND_PATH, custom_send, methods=["POST"]),
    mp_route(TEMPLATE_SEND_PATH, template_send, methods=["POST"]),
]
