"""`/callbacks/wechat[/{account}]`: verify → store under a dedupe key → enqueue → answer `success`.

Follows 接入指南 / 消息加解密说明 (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html,
https://developers.weixin.qq.com/doc/oplatform/developers/dev/push/encryption.md). WeChat gives up after 5 s and
retries 3 times, so nothing here calls an API or runs ticket logic: one plain INSERT and one enqueue, batched
with the other requests in flight (``app.channels.inbox.store``).

An account with an EncodingAESKey accepts only encrypted pushes (see ``app.wecom.callback``); a second POST of the
same signed (timestamp, nonce, signature) inside the window is refused (403 ``replayed``, ``app.wecom.replay``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.channels import inbox
from app.channels.wechat_mp import accounts
from app.channels.wechat_mp.inbound import KNOWN_EVENTS, KNOWN_MSG_TYPES, dedupe_key
from app.errors import CallbackRejected
from app.logs import get_logger
from app.settings import get_settings
from app.timeutil import utcnow
from app.wecom.callback import MAX_BODY_BYTES, open_mp_callback, verify_mp_echo
from app.wecom.replay import check_not_replayed, replay_guard_for

log = get_logger(__name__)
SUCCESS = PlainTextResponse("success")


def _reject(exc: CallbackRejected, request: Request, key: str) -> Response:
    log.warning("callback.rejected", channel="wechat_mp", account=key, reason=exc.reason,
                status=exc.status_code, client=request.client.host if request.client else None)
    return PlainTextResponse(exc.reason, status_code=exc.status_code)


async def _account(request: Request) -> tuple[str, accounts.MPAccount | None]:
    key = request.path_params.get("account", accounts.DEFAULT_KEY)
    return key, await accounts.by_key(key)


async def verify(request: Request) -> Response:
    """URL verification: the 3-value signature, then the echostr verbatim."""
    key, account = await _account(request)
    if account is None:
        return PlainTextResponse("unknown account", status_code=404)
    try:
        echo = verify_mp_echo(account.callback, request.query_params, now=utcnow().timestamp(),
                              window_seconds=get_settings().callback_window_seconds)
    except CallbackRejected as exc:
        return _reject(exc, request, key)
    return PlainTextResponse(echo)


async def receive(request: Request) -> Response:
    """A message or event from WeChat."""
    key, account = await _account(request)
    if account is None:
        return PlainTextResponse("unknown account", status_code=404)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _reject(CallbackRejected("body_too_large", status_code=413), request, key)
    settings = get_settings()
    guard = replay_guard_for(request, settings)
    try:
        envelope = open_mp_callback(account.callback, request.query_params, body, now=utcnow().timestamp(),
                                    window_seconds=settings.callback_window_seconds)
        seen = await check_not_replayed(guard, channel=f"wechat_mp:{key}", params=request.query_params,
                                        window_seconds=settings.callback_window_seconds)
    except CallbackRejected as exc:
        return _reject(exc, request, key)
    fields = envelope.fields
    msg_type = fields.get("MsgType", "")
    event = fields.get("Event", "")
    if not fields.get("FromUserName") or msg_type not in KNOWN_MSG_TYPES or (
        msg_type == "event" and event not in KNOWN_EVENTS
    ):
        # valid but not for us (a new message type, a debug event): acknowledge so WeChat does not retry
        log.info("callback.ignored", channel="wechat_mp", account=key, msg_type=msg_type, mp_event=event)
        return SUCCESS
    try:
        # the same sender key as the processor's in_order: one follower of one account, in order
        stored = await inbox.store(channel_account_id=account.account_id, payload=envelope.xml,
                                   dedupe_key=dedupe_key(account.appid, fields),
                                   sender_key=f"mp:{account.account_id}:{fields['FromUserName']}")
    except BaseException:
        await guard.forget(seen)  # not stored: WeChat's retry must pass
        raise
    if stored is None:
        log.info("callback.duplicate", channel="wechat_mp", account=key)
    return SUCCESS


routes = [
    Route("/callbacks/wechat", verify, methods=["GET"]),
    Route("/callbacks/wechat", receive, methods=["POST"]),
    Route("/callbacks/wechat/{account}", verify, methods=["GET"]),
    Route("/callbacks/wechat/{account}", receive, methods=["POST"]),
]
