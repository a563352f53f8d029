"""``WeComDriver``: plays WeCom toward the desk by sending encrypted callbacks, as the platform does.

Follows 接收消息与事件 https://developer.work.weixin.qq.com/document/path/96466 and 加解密方案说明
https://developer.work.weixin.qq.com/document/path/90968:

* URL verification is a GET with ``msg_signature, timestamp, nonce, echostr``, the echostr encrypted (and
  percent-encoded on the wire); the desk must answer the bare decrypted plaintext within one second;
* pushes are POSTs of ``<xml><ToUserName/><Encrypt/><AgentID/></xml>`` with ``msg_signature`` over the Encrypt value;
  ToUserName and AgentID outside Encrypt are not signed;
* an answer other than HTTP 200 within 5 s makes WeCom re-send the same body up to 3 more times, each with a fresh
  timestamp, nonce and signature;
* member messages carry **string** MsgIds since 2025 (``CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==``), which wechatpy's parser
  rejects; change_contact events configured after 2022-08-15 carry only UserID/Department (members) and Id/ParentId
  (departments) — ``minimal=True`` sends that shape.

Other helpers send their events through ``send_event`` (``kf_msg_or_event`` without FromUserName,
``sys_approval_change`` with nested ``ApprovalInfo``) or ``deliver_xml`` for a hand-written body.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator import crypto
from simulator.mp.xml import Value, cdata, render_xml
from simulator.state import SimulatorState
from simulator.wecom.store import WeComApp

__all__ = ["WeComDelivery", "WeComDriver", "string_msg_id"]

#: a nested element: (tag, [(tag, value-or-children), ...]) renders as <tag>...</tag>
Field = tuple[str, Any]


def string_msg_id() -> str:
    """A MsgId in WeCom's 2025 form: base64 text, not a number."""
    return base64.b64encode(b"\x08\x02\x10" + secrets.token_bytes(17)).decode("ascii")


def _render(fields: Sequence[Field]) -> str:
    """Like ``render_xml`` but with nested elements: a list value renders as children."""
    parts: list[str] = []
    for name, value in fields:
        if isinstance(value, list):
            parts.append(f"<{name}>{_render(value)}</{name}>")
        elif isinstance(value, str):
            parts.append(f"<{name}>{cdata(value)}</{name}>")
        else:
            parts.append(f"<{name}>{value}</{name}>")
    return "".join(parts)


@dataclass
class WeComDelivery:
    """One callback delivery, with WeCom-style retries."""

    xml: str
    body: bytes
    encrypt: str
    attempts: list[tuple[int | None, float, str]] = field(default_factory=list)
    response: httpx.Response | None = None

    @property
    def delivered(self) -> bool:
        """The desk answered HTTP 200 to one of the attempts."""
        return self.response is not None and self.response.status_code == 200


class WeComDriver:
    """Acts as WeCom toward one callback URL of the desk (the self-built app's, or 通讯录同步's)."""

    def __init__(
        self,
        state: SimulatorState,
        app: WeComApp,
        callback_url: str | None = None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.state = state
        self.app = app
        self._callback_url = callback_url
        self.timeout = timeout
        self.retries = retries
        self._transport = transport

    @property
    def corp_id(self) -> str:
        """The receiveid every callback is encrypted for."""
        corp_id: str = self.state.wecom.corp_id
        return corp_id

    @property
    def callback_url(self) -> str:
        """Where callbacks go: the explicit URL, else the app's configured one."""
        url = self._callback_url or self.app.callback_url
        if not url:
            raise ValueError(f"no callback URL for WeCom app {self.app.name}")
        return url

    # -- URL verification -------------------------------------------------------------------------------------

    async def verify_url(self, echostr: str | None = None) -> httpx.Response:
        """The GET handshake of 接收消息服务器配置; the desk must answer the decrypted ``echostr`` bare."""
        plain = echostr or str(secrets.randbelow(9 * 10**18) + 10**18)
        encrypted = crypto.encrypt(self.app.aes_key, self.corp_id, plain.encode("utf-8"))
        params = self._sign(encrypted)
        params["echostr"] = encrypted
        async with self._client() as client:
            return await client.get(self.callback_url, params=params)

    # -- what WeCom pushes ------------------------------------------------------------------------------------

    def event_xml(self, event: str, fields: Sequence[Field], *, from_user: str | None = "sys",
                  create_time: int | None = None) -> str:
        """The plaintext of an event push (ToUserName, FromUserName, CreateTime, MsgType, Event, fields, AgentID)."""
        head: list[Field] = [("ToUserName", self.corp_id)]
        if from_user is not None:
            head.append(("FromUserName", from_user))
        head += [("CreateTime", int(create_time if create_time is not None else self.state.clock.now())),
                 ("MsgType", "event"), ("Event", event)]
        tail: list[Field] = [("AgentID", self.app.agent_id)] if self.app.agent_id is not None else []
        return "<xml>" + _render([*head, *fields, *tail]) + "</xml>"

    async def send_event(self, event: str, fields: Sequence[Field], *, from_user: str | None = "sys",
                         create_time: int | None = None) -> WeComDelivery:
        """Push any event, e.g. ``send_event("kf_msg_or_event", [("Token", t), ("OpenKfId", k)], from_user=None)``."""
        return await self.deliver_xml(self.event_xml(event, fields, from_user=from_user, create_time=create_time))

    async def send_text(self, userid: str, content: str, *, msg_id: str | None = None) -> WeComDelivery:
        """A member writes to the app (string MsgId)."""
        xml = render_xml([("ToUserName", self.corp_id), ("FromUserName", userid),
                          ("CreateTime", int(self.state.clock.now())), ("MsgType", "text"), ("Content", content),
                          ("MsgId", msg_id or string_msg_id()), ("AgentID", self.app.agent_id or 0)])
        return await self.deliver_xml(xml)

    def change_contact_xml(self, change_type: str, *, minimal: bool = True, **ids: Any) -> str:
        """A change_contact plaintext built from the store's current data (or ids only for deletes).

        ``create_user/update_user/delete_user`` take ``userid``; ``*_party`` take ``dept_id``; ``update_tag`` takes
        ``tagid`` and optional ``add_users/del_users`` lists. ``minimal`` is the post-2022 shape.
        """
        fields: list[Field] = [("ChangeType", change_type)]
        wecom = self.state.wecom
        if change_type.endswith("_user"):
            userid = str(ids["userid"])
            fields.append(("UserID", userid))
            if ids.get("new_userid"):
                fields.append(("NewUserID", str(ids["new_userid"])))
            user = wecom.users.get(userid)
            if change_type != "delete_user" and user is not None:
                fields.append(("Department", ",".join(str(d) for d in user.department)))
                if not minimal:
                    fields += [("MainDepartment", user.main_department), ("Name", user.name),
                               ("IsLeaderInDept", ",".join(str(x) for x in user.is_leader_in_dept)),
                               ("Position", user.position), ("Status", user.status)]
        elif change_type.endswith("_party"):
            dept_id = int(ids["dept_id"])
            fields.append(("Id", dept_id))
            dept = wecom.departments.get(dept_id)
            if change_type != "delete_party" and dept is not None:
                fields.append(("ParentId", str(dept.parentid)))
                if not minimal or change_type == "create_party":
                    fields += [("Name", dept.name), ("Order", dept.order)]
        elif change_type == "update_tag":
            fields.append(("TagId", int(ids["tagid"])))
            if ids.get("add_users"):
                fields.append(("AddUserItems", ",".join(ids["add_users"])))
            if ids.get("del_users"):
                fields.append(("DelUserItems", ",".join(ids["del_users"])))
        else:
            raise ValueError(f"unknown change_contact type {change_type}")
        return self.event_xml("change_contact", fields)

    async def change_contact(self, change_type: str, *, minimal: bool = True, **ids: Any) -> WeComDelivery:
        """Push a change_contact event (see ``change_contact_xml``)."""
        return await self.deliver_xml(self.change_contact_xml(change_type, minimal=minimal, **ids))

    def change_external_contact_xml(self, change_type: str, userid: str, external_userid: str,
                                    **extra: Value) -> str:
        """A change_external_contact plaintext; ``extra`` adds State, WelcomeCode, Source, FailReason..."""
        fields: list[Field] = [("ChangeType", change_type), ("UserID", userid), ("ExternalUserID", external_userid)]
        fields += [(key, value) for key, value in extra.items()]
        return self.event_xml("change_external_contact", fields)

    async def change_external_contact(self, change_type: str, userid: str, external_userid: str,
                                      **extra: Value) -> WeComDelivery:
        """Push a change_external_contact event."""
        return await self.deliver_xml(self.change_external_contact_xml(change_type, userid, external_userid,
                                                                       **extra))

    # -- wire ---------------------------------------------------------------------------------------------------

    def envelope(self, xml: str) -> tuple[bytes, str]:
        """Encrypt a plaintext into the POST body; returns (body, Encrypt value)."""
        encrypt = crypto.encrypt(self.app.aes_key, self.corp_id, xml.encode("utf-8"))
        outer: list[tuple[str, Value]] = [("ToUserName", self.corp_id), ("Encrypt", encrypt)]
        if self.app.agent_id is not None:
            outer.append(("AgentID", str(self.app.agent_id)))
        return render_xml(outer).encode("utf-8"), encrypt

    def signed_params(self, encrypt: str, *, timestamp: str | None = None, nonce: str | None = None,
                      token: str | None = None) -> dict[str, str]:
        """Query parameters for a push; override pieces to craft bad variants."""
        return self._sign(encrypt, timestamp=timestamp, nonce=nonce, token=token)

    async def deliver_xml(self, xml: str) -> WeComDelivery:
        """Deliver a plaintext with encryption, signatures and retries."""
        body, encrypt = self.envelope(xml)
        return await self._post_with_retries(WeComDelivery(xml=xml, body=body, encrypt=encrypt))

    async def replay(self, delivery: WeComDelivery) -> WeComDelivery:
        """Re-send exactly the same body with a fresh timestamp, nonce and signature (a WeCom retry)."""
        again = WeComDelivery(xml=delivery.xml, body=delivery.body, encrypt=delivery.encrypt)
        return await self._post_with_retries(again)

    async def post_raw(self, body: bytes, params: dict[str, str]) -> httpx.Response:
        """One POST of exactly these bytes and parameters."""
        async with self._client() as client:
            return await client.post(self.callback_url, params=params, content=body,
                                      headers={"Content-Type": "text/xml"})

    def _sign(self, encrypt: str, *, timestamp: str | None = None, nonce: str | None = None,
              token: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(self.state.clock.now()))
        nonce = nonce or crypto.random_nonce()
        token = token if token is not None else self.app.token
        return {"msg_signature": crypto.sign(token, timestamp, nonce, encrypt), "timestamp": timestamp,
                "nonce": nonce}

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=self.timeout, trust_env=False)

    async def _post_with_retries(self, delivery: WeComDelivery) -> WeComDelivery:
        async with self._client() as client:
            for _ in range(1 + self.retries):
                params = self._sign(delivery.encrypt)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self.timeout):
                        response = await client.post(self.callback_url, params=params, content=delivery.body,
                                                     headers={"Content-Type": "text/xml"})
                except (TimeoutError, httpx.TimeoutException):
                    delivery.attempts.append((None, time.monotonic() - started, ""))
                    continue
                except httpx.TransportError as exc:
                    delivery.attempts.append((None, time.monotonic() - started, f"<{type(exc).__name__}>"))
                    continue
                delivery.attempts.append((response.status_code, time.monotonic() - started, response.text))
                delivery.response = response
                if response.status_code == 200:
                    break
        return delivery
