"""The kf API calls, over the shared WeCom client (``app.wecom.work``): token cache, rate limit, error mapping.

微信客服 https://developer.work.weixin.qq.com/document/path/94670 (sync_msg), path/94677 (send_msg),
path/95122 (send_msg_on_event), path/94669 (service_state), path/94661 (account/list).
"""

from __future__ import annotations

from typing import Any

from app.wecom.work import WeComApi, wecom_api

SYNC_MSG = "kf/sync_msg"
SEND_MSG = "kf/send_msg"
SEND_MSG_ON_EVENT = "kf/send_msg_on_event"
STATE_GET = "kf/service_state/get"
STATE_TRANS = "kf/service_state/trans"
ACCOUNT_LIST = "kf/account/list"


def client() -> WeComApi:
    """The self-built app's API (the app must be granted 微信客服 in the admin console)."""
    return wecom_api("app")


async def sync_msg(*, open_kfid: str, cursor: str, token: str | None, limit: int) -> dict[str, Any]:
    """One page of messages after ``cursor``."""
    body: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit, "voice_format": 0}
    if cursor:
        body["cursor"] = cursor
    if token:
        body["token"] = token
    return await client().post(SYNC_MSG, body)


async def send_msg(*, open_kfid: str, touser: str, msgid: str, msgtype: str, content: dict[str, Any]
                   ) -> dict[str, Any]:
    """Send one message to a customer (``msgid`` is ours: a repeat is refused, not delivered twice)."""
    return await client().post(SEND_MSG, {"touser": touser, "open_kfid": open_kfid, "msgid": msgid,
                                          "msgtype": msgtype, msgtype: content})


async def send_msg_on_event(*, code: str, msgid: str, msgtype: str, content: dict[str, Any]) -> dict[str, Any]:
    """Answer an event (enter_session's welcome_code) within its time."""
    return await client().post(SEND_MSG_ON_EVENT, {"code": code, "msgid": msgid, "msgtype": msgtype,
                                                   msgtype: content})


async def get_state(*, open_kfid: str, external_userid: str) -> dict[str, Any]:
    """The session's state and servicer."""
    return await client().post(STATE_GET, {"open_kfid": open_kfid, "external_userid": external_userid})


async def trans_state(*, open_kfid: str, external_userid: str, service_state: int,
                      servicer_userid: str = "") -> dict[str, Any]:
    """Move the session (1 bot, 2 queue, 3 servicer, 4 end)."""
    body: dict[str, Any] = {"open_kfid": open_kfid, "external_userid": external_userid,
                            "service_state": service_state}
    if servicer_userid:
        body["servicer_userid"] = servicer_userid
    return await client().post(STATE_TRANS, body)


async def list_accounts() -> list[dict[str, Any]]:
    """Every kf account of the corp."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await client().post(ACCOUNT_LIST, {"offset": offset, "limit": 100})
        items = list(page.get("account_list") or [])
        out.extend(items)
        if len(items) < 100:
            return out
        offset += 100
