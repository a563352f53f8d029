"""微信客服 (kf): accounts, the customers' message queue pulled with ``kf/sync_msg``, sending with ``kf/send_msg``
and ``kf/send_msg_on_event``, and the session state machine.

Follows 接收消息和事件 https://developer.work.weixin.qq.com/document/path/94670, 发送消息
https://developer.work.weixin.qq.com/document/path/94677, 分配客服会话 (service_state)
https://developer.work.weixin.qq.com/document/path/94669 and the state table of path/94698:

* the callback only announces (``kf_msg_or_event`` with a ``Token`` valid 10 minutes); ``sync_msg`` pages the
  open_kfid's messages from an opaque cursor (none: the last 3 days), at most ``limit`` (≤1000) a page, with
  ``has_more`` 0/1 and ``next_cursor``; an expired or unknown token is 95007; without a token the call is strictly
  rate-limited (here 6 a minute per open_kfid, then 45009);
* messages sent through the API never come back in ``sync_msg``;
* ``send_msg`` works only within 48 h of the customer's last message (95002), at most 5 messages after it (95001),
  and only in states 0 and 1 (95018); the caller's ``msgid`` (≤32 of ``[0-9a-zA-Z_-]``) identifies the message:
  a second send with the same msgid is refused (``DUPLICATE_MSGID``), so nothing is delivered twice;
* ``service_state/trans`` follows the table (from 4 nothing; 95016 otherwise illegal; 95014 for an unknown
  servicer) and hands back a ``msg_code`` for ``send_msg_on_event``; ``enter_session`` events carry a
  ``welcome_code`` usable once, within 20 s.

The code for a repeated msgid is not in our protocol notes: the simulator answers 40058 with errmsg
"msgid duplicated", and Gongdan treats it as "already delivered".
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Route

from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["KfSession", "KfState", "kf_state", "routes"]

TOKEN_TTL = 600
HISTORY_SECONDS = 3 * 86400
WINDOW_SECONDS = 48 * 3600
MAX_SENDS = 5
TOKENLESS_PER_MINUTE = 6
CODE_TTL = 20
DUPLICATE_MSGID = 40058
_MSGID = re.compile(r"^[0-9a-zA-Z_-]{1,32}$")
#: the moves service_state/trans allows (path/94669): to the bot, the queue, a servicer, or the end
TRANSITIONS: dict[int, set[int]] = {0: {1, 2, 3, 4}, 1: {2, 3, 4}, 2: {3, 4}, 3: {3, 4}, 4: set()}


@dataclass
class KfSession:
    state: int = 0
    servicer_userid: str = ""
    last_customer_at: float = 0.0
    sent_since: int = 0


@dataclass
class KfState:
    """The kf side of the corp (one per simulator, hung on ``WeComStore.extension("kf", ...)``)."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    accounts: dict[str, str] = field(default_factory=dict)
    #: every message customers and WeCom produced, in order: dicts as sync_msg returns them plus "_seq"
    messages: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    sessions: dict[tuple[str, str], KfSession] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_msgids: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    tokenless_calls: dict[str, list[float]] = field(default_factory=dict)
    servicers: set[str] = field(default_factory=set)
    #: both directions in the order they happened, for the chat page: ("in", queued item) / ("out", sent record);
    #: an entry's id is its index + 1
    journal: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: how the chat page delivers kf_msg_or_event callbacks (tests hand in the desk's ASGI transport)
    callback_transport: Any = None

    def add_account(self, open_kfid: str, name: str) -> None:
        with self.lock:
            self.accounts[open_kfid] = name

    def session(self, open_kfid: str, external_userid: str) -> KfSession:
        with self.lock:
            return self.sessions.setdefault((open_kfid, external_userid), KfSession(state=4))

    def _append(self, now: float, item: dict[str, Any]) -> dict[str, Any]:
        item.setdefault("msgid", "sim" + secrets.token_hex(12))
        item.setdefault("send_time", int(now))
        item["_seq"] = len(self.messages) + 1
        self.messages.append(item)
        self.journal.append(("in", item))
        return item

    def record_sent(self, item: dict[str, Any]) -> dict[str, Any]:
        """Log a message the desk sent (send_msg / send_msg_on_event)."""
        with self.lock:
            self.sent.append(item)
            self.journal.append(("out", item))
            return item

    def conversation(self, open_kfid: str, external_userid: str, since_id: int = 0) -> list[dict[str, Any]]:
        """One customer's chat in order, both directions, after ``since_id`` (for the chat page)."""
        with self.lock:
            out: list[dict[str, Any]] = []
            for index, (direction, item) in enumerate(self.journal[since_id:], start=since_id + 1):
                who = item.get("external_userid") if direction == "in" else item.get("touser")
                if item.get("open_kfid") != open_kfid or who != external_userid:
                    continue
                body = {k: v for k, v in item.items() if k != "_seq"}
                out.append({"id": index, "direction": direction, "msgtype": str(item.get("msgtype") or ""),
                            "body": body})
            return out

    def customer_message(self, now: float, open_kfid: str, external_userid: str, msgtype: str,
                         body: dict[str, Any]) -> dict[str, Any]:
        """A customer writes: the message joins the queue and opens the 48-hour window (a new session from 4)."""
        with self.lock:
            s = self.session(open_kfid, external_userid)
            if s.state == 4:
                s.state, s.servicer_userid = 0, ""
            s.last_customer_at, s.sent_since = now, 0
            return self._append(now, {"open_kfid": open_kfid, "external_userid": external_userid, "origin": 3,
                                      "msgtype": msgtype, msgtype: body})

    def event(self, now: float, open_kfid: str, external_userid: str, event: dict[str, Any]) -> dict[str, Any]:
        """A system event (enter_session gets a welcome_code)."""
        with self.lock:
            body = {"open_kfid": open_kfid, "external_userid": external_userid, **event}
            if body.get("event_type") == "enter_session":
                code = "wc" + secrets.token_hex(10)
                self.codes[code] = (open_kfid, external_userid, now + CODE_TTL)
                body["welcome_code"] = code
            return self._append(now, {"open_kfid": open_kfid, "external_userid": external_userid, "origin": 4,
                                      "msgtype": "event", "event": body})

    def issue_token(self, now: float, open_kfid: str) -> str:
        """The Token a kf_msg_or_event callback carries."""
        with self.lock:
            token = "ENC" + secrets.token_urlsafe(24)
            self.tokens[token] = (open_kfid, now + TOKEN_TTL)
            return token


def kf_state(call_or_store: Any) -> KfState:
    """The kf state of a simulator (accepts a WeComCall, a WeComStore or a SimulatorState)."""
    store = getattr(call_or_store, "wecom", call_or_store)
    state: KfState = store.extension("kf", KfState)
    return state


def _encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"kf:{seq}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(raw.removeprefix("kf:"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeComError(40058, "invalid cursor") from exc


async def sync_msg(call: WeComCall) -> dict[str, Any]:
    """``POST kf/sync_msg``."""
    data = call.json()
    kf = kf_state(call)
    now = call.state.clock.now()
    open_kfid = str(data.get("open_kfid") or "")
    token = str(data.get("token") or "")
    limit = int(data.get("limit") or 1000)
    if not 1 <= limit <= 1000:
        raise WeComError(40058, "invalid limit")
    with kf.lock:
        if token:
            issued = kf.tokens.get(token)
            if issued is None or issued[1] < now or (open_kfid and issued[0] != open_kfid):
                raise WeComError(95007, "invalid msg token")
        else:
            recent = [t for t in kf.tokenless_calls.get(open_kfid, []) if t > now - 60]
            if len(recent) >= TOKENLESS_PER_MINUTE:
                raise WeComError(45009)
            kf.tokenless_calls[open_kfid] = [*recent, now]
        start = _decode(str(data["cursor"])) if data.get("cursor") else 0
        pending = [m for m in kf.messages if m["_seq"] > start and (not open_kfid or m["open_kfid"] == open_kfid)
                   and (start or m["send_time"] >= now - HISTORY_SECONDS)]
        page = pending[:limit]
        last = page[-1]["_seq"] if page else start
        return {"next_cursor": _encode(last), "has_more": 1 if len(pending) > limit else 0,
                "msg_list": [{k: v for k, v in m.items() if k != "_seq"} for m in page]}


def _check_msg(data: dict[str, Any]) -> str:
    msgtype = str(data.get("msgtype") or "")
    if msgtype not in ("text", "image", "voice", "video", "file", "link", "miniprogram", "msgmenu", "location"):
        raise WeComError(40058, "invalid msgtype")
    if not isinstance(data.get(msgtype), dict):
        raise WeComError(40058, f"{msgtype} missing")
    msgid = str(data.get("msgid") or "")
    if msgid and not _MSGID.match(msgid):
        raise WeComError(40058, "invalid msgid")
    return msgid


async def send_msg(call: WeComCall) -> dict[str, Any]:
    """``POST kf/send_msg``: the 48-hour window, 5 messages, states 0 and 1 only, msgid once."""
    data = call.json()
    kf = kf_state(call)
    now = call.state.clock.now()
    msgid = _check_msg(data)
    open_kfid, touser = str(data.get("open_kfid") or ""), str(data.get("touser") or "")
    with kf.lock:
        if open_kfid not in kf.accounts:
            raise WeComError(95000, "invalid open_kfid")
        if msgid and msgid in kf.sent_msgids:
            raise WeComError(DUPLICATE_MSGID, "msgid duplicated")
        s = kf.session(open_kfid, touser)
        if not s.last_customer_at or now - s.last_customer_at > WINDOW_SECONDS:
            raise WeComError(95002, "send msg exceed 48 hours")
        if s.state not in (0, 1):
            raise WeComError(95018, "service state not allowed to send msg")
        if s.sent_since >= MAX_SENDS:
            raise WeComError(95001, "send msg count exceed limit")
        s.sent_since += 1
        msgid = msgid or "simsent" + secrets.token_hex(8)
        kf.sent_msgids.add(msgid)
        kf.record_sent({**data, "msgid": msgid, "send_time": int(now)})
        return {"msgid": msgid}


async def send_msg_on_event(call: WeComCall) -> dict[str, Any]:
    """``POST kf/send_msg_on_event``: a welcome_code or msg_code, once, within 20 seconds."""
    data = call.json()
    kf = kf_state(call)
    now = call.state.clock.now()
    msgid = _check_msg(data)
    with kf.lock:
        code = kf.codes.pop(str(data.get("code") or ""), None)
        if code is None or code[2] < now:
            raise WeComError(95015, "invalid code")
        if msgid and msgid in kf.sent_msgids:
            raise WeComError(DUPLICATE_MSGID, "msgid duplicated")
        msgid = msgid or "simsent" + secrets.token_hex(8)
        kf.sent_msgids.add(msgid)
        kf.record_sent({**data, "touser": code[1], "open_kfid": code[0], "msgid": msgid, "on_event": True,
                        "send_time": int(now)})
        return {"msgid": msgid}


async def state_get(call: WeComCall) -> dict[str, Any]:
    """``POST kf/service_state/get``."""
    data = call.json()
    s = kf_state(call).session(str(data.get("open_kfid") or ""), str(data.get("external_userid") or ""))
    return {"service_state": s.state, "servicer_userid": s.servicer_userid}


async def state_trans(call: WeComCall) -> dict[str, Any]:
    """``POST kf/service_state/trans``: the table of path/94669, 95016 for anything else."""
    data = call.json()
    kf = kf_state(call)
    new = int(data.get("service_state", -1))
    servicer = str(data.get("servicer_userid") or "")
    with kf.lock:
        s = kf.session(str(data.get("open_kfid") or ""), str(data.get("external_userid") or ""))
        if new not in TRANSITIONS.get(s.state, set()):
            raise WeComError(95016, "invalid service state transition")
        if new == 3:
            if not servicer:
                raise WeComError(95014, "servicer_userid required")
            if kf.servicers and servicer not in kf.servicers:
                raise WeComError(95014, "servicer not active")
        s.state, s.servicer_userid = new, servicer if new == 3 else ""
        code = "mc" + secrets.token_hex(10)
        kf.codes[code] = (str(data.get("open_kfid")), str(data.get("external_userid")),
                          call.state.clock.now() + CODE_TTL)
        return {"msg_code": code}


async def account_list(call: WeComCall) -> dict[str, Any]:
    """``POST kf/account/list``."""
    data = call.json() if call.body.strip() else {}
    kf = kf_state(call)
    offset, limit = int(data.get("offset") or 0), int(data.get("limit") or 100)
    with kf.lock:
        items = [{"open_kfid": k, "name": v, "avatar": "", "manage_privilege": True}
                 for k, v in sorted(kf.accounts.items())]
    return {"account_list": items[offset:offset + limit]}


routes: list[Route] = [
    wecom_route("kf/sync_msg", sync_msg, methods=["POST"]),
    wecom_route("kf/send_msg", send_msg, methods=["POST"], rate_limited=False),
    wecom_route("kf/send_msg_on_event", send_msg_on_event, methods=["POST"], rate_limited=False),
    wecom_route("kf/service_state/get", state_get, methods=["POST"]),
    wecom_route("kf/service_state/trans", state_trans, methods=["POST"]),
    wecom_route("kf/account/list", account_list, methods=["POST"]),
]
