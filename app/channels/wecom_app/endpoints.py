"""``/callbacks/wecom/app`` and ``/callbacks/wecom/contacts``: verify → store under a dedupe key → enqueue → ack.

Follows 接收消息与事件 https://developer.work.weixin.qq.com/document/path/96466 and 加解密方案说明
https://developer.work.weixin.qq.com/document/path/90968:

* GET (URL verification) answers the **bare** decrypted echostr (no quotes, BOM or newline) within one second;
* POST decrypts (receiveid = CorpID), keeps MsgId a string (WeCom sends non-numeric ones since 2025, which
  wechatpy's parser rejects), inserts an ``InboundEvent`` and answers an empty 200 at once. A retry of the same
  push (same body, new signature) hits the unique dedupe key and is acknowledged again;
* dedupe keys: member messages ``(CorpID, AgentID, MsgId)``; events the SHA-256 of the decrypted XML, because
  FromUserName+CreateTime collide for ``sys`` events emitted in bulk;
* a second POST of the same signed (timestamp, nonce, msg_signature) inside the window is refused (403
  ``replayed``, ``app.wecom.replay``); nesting deeper than ``MAX_XML_DEPTH`` and over-long identifier fields are
  400s before anything is stored.

The app URL (token ``WECOM_TOKEN``/``WECOM_AES_KEY``) receives member messages and app events, including
change_external_contact, kf_msg_or_event and sys_approval_change; the contacts URL (``WECOM_CONTACT_TOKEN``/
``WECOM_CONTACT_AES_KEY``, the 通讯录同步 assistant) receives change_contact. Nothing here calls an API.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.channels import inbox
from app.channels.models import bounded_dedupe_key
from app.errors import CallbackRejected, ConfigError
from app.logs import get_logger
from app.settings import Settings, get_settings
from app.timeutil import utcnow
from app.wecom.callback import MAX_BODY_BYTES, CallbackCredentials, open_wecom_callback, verify_wecom_echo
from app.wecom.replay import check_not_replayed, replay_guard_for

__all__ = ["APP_KIND", "CONTACTS_KIND", "credentials", "dedupe_key", "routes", "sender_key"]

log = get_logger(__name__)
APP_KIND = "wecom_app"
CONTACTS_KIND = "wecom_contacts"



def credentials(kind: str, settings: Settings | None = None) -> CallbackCredentials | None:
    """The callback credentials of the app or contacts URL, or None when not configured."""
    w = (settings or get_settings()).wecom
    token, aes_key = (w.token, w.aes_key) if kind == APP_KIND else (w.contact_token, w.contact_aes_key)
    if not w.corp_id or not str(token) or not str(aes_key):
        return None
    try:
        return CallbackCredentials(token=str(token), aes_key=str(aes_key), receive_id=w.corp_id)
    except ConfigError:
        return None


def dedupe_key(kind: str, fields: dict[str, str], xml: str, *, corp_id: str, agent_id: str | None) -> str:
    """``kind:`` + the message's own id, or a hash of the decrypted body for events."""
    msg_id = fields.get("MsgId")
    if msg_id and fields.get("MsgType") != "event":
        return bounded_dedupe_key(f"{kind}:{corp_id}:{agent_id or ''}:{msg_id}")
    return f"{kind}:{hashlib.sha256(xml.encode('utf-8')).hexdigest()}"


def sender_key(kind: str, fields: dict[str, str]) -> str:
    """Whose events run one at a time, in order: a kf account's (its sync_msg cursor), else the sender's (a member,
    or ``sys`` for directory and approval events, whose order matters too)."""
    return f"{kind}:{fields.get('OpenKfId') or fields.get('FromUserName') or ''}"


def _reject(exc: CallbackRejected, request: Request, kind: str) -> Response:
    log.warning("callback.rejected", channel=kind, reason=exc.reason, status=exc.status_code,
                client=request.client.host if request.client else None)
    return PlainTextResponse(exc.reason, status_code=exc.status_code)


def _endpoints(kind: str) -> tuple[Route, Route]:
    async def verify(request: Request) -> Response:
        creds = credentials(kind)
        if creds is None:
            return PlainTextResponse("not configured", status_code=404)
        try:
            echo = verify_wecom_echo(creds, request.query_params, now=utcnow().timestamp(),
                                     window_seconds=get_settings().callback_window_seconds)
        except CallbackRejected as exc:
            return _reject(exc, request, kind)
        return Response(echo.encode("utf-8"), media_type="text/plain")

    async def receive(request: Request) -> Response:
        creds = credentials(kind)
        if creds is None:
            return PlainTextResponse("not configured", status_code=404)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _reject(CallbackRejected("body_too_large", status_code=413), request, kind)
        settings = get_settings()
        try:
            envelope = open_wecom_callback(creds, request.query_params, body, now=utcnow().timestamp(),
                                           window_seconds=settings.callback_window_seconds)
            seen = await check_not_replayed(replay_guard_for(request, settings), channel=kind,
                                            params=request.query_params,
                                            window_seconds=settings.callback_window_seconds)
        except CallbackRejected as exc:
            return _reject(exc, request, kind)
        key = dedupe_key(kind, envelope.fields, envelope.xml, corp_id=creds.receive_id, agent_id=envelope.agent_id)
        try:
            stored = await inbox.store(channel_account_id=None, payload=envelope.xml, dedupe_key=key,
                                       sender_key=sender_key(kind, envelope.fields))
        except BaseException:
            await replay_guard_for(request, settings).forget(seen)  # not stored: the platform's retry must pass
            raise
        if stored is None:
            log.info("callback.duplicate", channel=kind)
        return Response(b"", status_code=200)

    path = "/callbacks/wecom/app" if kind == APP_KIND else "/callbacks/wecom/contacts"
    return Route(path, verify, methods=["GET"]), Route(path, receive, methods=["POST"])


routes = [*_endpoints(APP_KIND), *_endpoints(CONTACTS_KIND)]
