"""``WeChatDriver``: plays WeChat toward the desk by POSTing signed MP callbacks, as the platform does.

Follows:

* 消息推送 / 加解密 https://developers.weixin.qq.com/doc/oplatform/developers/dev/push/encryption.md — plain mode
  signs ``token, timestamp, nonce`` in ``signature``; compatibility and safe mode add ``encrypt_type=aes`` and a
  ``msg_signature`` over the ``<Encrypt>`` value too. URL verification (GET) is plain in every mode and expects the
  echostr back verbatim.
* 被动回复用户消息 https://developers.weixin.qq.com/doc/service/en/Message_Management/Passive_user_reply_message.html —
  no answer within 5 s or a non-200 answer makes WeChat re-send the same body up to 3 more times, each with a
  fresh timestamp, nonce and signature; the desk may answer ``success``, an empty body or a reply XML (encrypted
  with ``<Encrypt>, <MsgSignature>, <TimeStamp>, <Nonce>`` in safe mode). Anything else, or no answer at all, shows
  the customer "该公众号暂时无法提供服务，请稍后再试".
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from xml.etree.ElementTree import Element

import httpx

from simulator import crypto
from simulator.mp.store import Interaction, Mode, MPAccount
from simulator.mp.xml import Value, element_to_dict, parse_xml, render_xml, safe_envelope, with_encrypt
from simulator.state import SimulatorState

__all__ = [
    "CUSTOMER_ERROR_NOTICE",
    "TINY_PNG",
    "Attempt",
    "DeliveryResult",
    "PassiveReply",
    "WeChatDriver",
]

CUSTOMER_ERROR_NOTICE = "该公众号暂时无法提供服务，请稍后再试"
REPLY_MSGTYPES = ("text", "image", "voice", "video", "music", "news", "transfer_customer_service")


def _tiny_png() -> bytes:
    """A valid 1×1 PNG, built rather than pasted so it is obviously harmless."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\x07\xc1\x60")  # filter byte + one green pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


TINY_PNG = _tiny_png()


class Attempt(NamedTuple):
    """One POST: HTTP status (None on timeout or connection error), seconds taken, response text."""

    status_code: int | None
    elapsed: float
    body: str


@dataclass
class PassiveReply:
    """A reply XML the desk returned in the HTTP response, as the customer would see it."""

    msgtype: str
    fields: dict[str, Any]
    xml: str
    encrypted: bool

    def as_message(self) -> dict[str, Any]:
        """The same content in the custom-message JSON shape, so one renderer shows both."""
        f = self.fields
        if self.msgtype == "text":
            return {"msgtype": "text", "text": {"content": f.get("Content", "")}}
        if self.msgtype in ("image", "voice"):
            inner = f.get(self.msgtype.capitalize()) or {}
            return {"msgtype": self.msgtype, self.msgtype: {"media_id": inner.get("MediaId", "")}}
        if self.msgtype == "video":
            video = f.get("Video") or {}
            return {
                "msgtype": "video",
                "video": {
                    "media_id": video.get("MediaId", ""),
                    "title": video.get("Title", ""),
                    "description": video.get("Description", ""),
                },
            }
        if self.msgtype == "music":
            music = f.get("Music") or {}
            return {
                "msgtype": "music",
                "music": {
                    "title": music.get("Title", ""),
                    "description": music.get("Description", ""),
                    "musicurl": music.get("MusicUrl", ""),
                    "hqmusicurl": music.get("HQMusicUrl", ""),
                    "thumb_media_id": music.get("ThumbMediaId", ""),
                },
            }
        if self.msgtype == "news":
            items = (f.get("Articles") or {}).get("item") or []
            if isinstance(items, dict):
                items = [items]
            articles = [
                {
                    "title": item.get("Title", ""),
                    "description": item.get("Description", ""),
                    "picurl": item.get("PicUrl", ""),
                    "url": item.get("Url", ""),
                }
                for item in items
            ]
            return {"msgtype": "news", "news": {"articles": articles}}
        return {"msgtype": self.msgtype}


@dataclass
class DeliveryResult:
    """Everything about one callback delivery, including WeChat-style retries."""

    xml: str
    body: bytes
    openid: str
    msg_id: int | None
    encrypt: str | None
    attempts: list[Attempt] = field(default_factory=list)
    response: httpx.Response | None = None
    reply: PassiveReply | None = None
    reply_error: str | None = None
    #: the customer never sees the outcome (unsubscribe, delivery reports), so no error notice is logged
    silent: bool = False

    @property
    def delivered(self) -> bool:
        """The desk answered HTTP 200 to one of the attempts."""
        return self.response is not None and self.response.status_code == 200

    @property
    def customer_saw_error(self) -> bool:
        """WeChat would show the customer "该公众号暂时无法提供服务，请稍后再试"."""
        return not self.delivered or self.reply_error is not None


class WeChatDriver:
    """Acts as the WeChat platform toward the desk for one Official Account."""

    def __init__(
        self,
        state: SimulatorState,
        account: MPAccount,
        callback_url: str | None = None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.state = state
        self.account = account
        self._callback_url = callback_url
        self.timeout = timeout
        self.retries = retries
        self._transport = transport

    @property
    def callback_url(self) -> str:
        """Where callbacks go: the explicit URL, else the account's configured one."""
        url = self._callback_url or self.account.callback_url
        if not url:
            raise ValueError(f"no callback URL for MP account {self.account.appid}")
        return url

    # -- customer actions ----------------------------------------------------------------------------------------

    async def send_text(self, openid: str, content: str) -> DeliveryResult:
        """The customer sends a text message."""
        return await self._customer_message(openid, "text", [("Content", content)])

    async def send_image(
        self, openid: str, content: bytes = TINY_PNG, *, content_type: str = "image/png", filename: str = "image.png"
    ) -> DeliveryResult:
        """The customer sends a picture; it is stored as media so the desk can ``media/get`` it."""
        media_id = self.state.mp.add_media(self.account.appid, content, content_type, filename, "image")
        return await self._customer_message(
            openid, "image", [("PicUrl", self._media_url(media_id)), ("MediaId", media_id)]
        )

    async def send_voice(
        self, openid: str, content: bytes = b"#!AMR\n", format: str = "amr", recognition: str | None = None
    ) -> DeliveryResult:
        """The customer sends a voice message (``Recognition`` only when speech recognition is on)."""
        media_id = self.state.mp.add_media(self.account.appid, content, f"audio/{format}", f"voice.{format}", "voice")
        fields: list[tuple[str, Value]] = [("MediaId", media_id), ("Format", format)]
        if recognition is not None:
            fields.append(("Recognition", recognition))
        return await self._customer_message(openid, "voice", fields)

    async def send_location(
        self, openid: str, lat: float, lng: float, scale: int = 15, label: str = ""
    ) -> DeliveryResult:
        """The customer shares a location."""
        fields: list[tuple[str, Value]] = [("Location_X", lat), ("Location_Y", lng), ("Scale", scale), ("Label", label)]
        return await self._customer_message(openid, "location", fields)

    async def send_link(self, openid: str, title: str, description: str, url: str) -> DeliveryResult:
        """The customer shares a link."""
        return await self._customer_message(
            openid, "link", [("Title", title), ("Description", description), ("Url", url)]
        )

    async def subscribe(self, openid: str, scene: str | None = None) -> DeliveryResult:
        """The customer follows the account, optionally by scanning a parametric QR code (``qrscene_<scene>``)."""
        self.state.mp.subscribe(self.account.appid, openid, scene=scene)
        fields: list[tuple[str, Value]] = [("Event", "subscribe")]
        if scene is not None:
            fields += [("EventKey", f"qrscene_{scene}"), ("Ticket", "gQ" + secrets.token_urlsafe(40))]
        return await self._event(openid, fields, interaction="event")

    async def unsubscribe(self, openid: str) -> DeliveryResult:
        """The customer unfollows; every window closes."""
        self.state.mp.unsubscribe(self.account.appid, openid)
        return await self._event(openid, [("Event", "unsubscribe"), ("EventKey", "")], interaction=None, silent=True)

    async def scan(self, openid: str, scene: str) -> DeliveryResult:
        """A follower scans a parametric QR code (SCAN event)."""
        fields: list[tuple[str, Value]] = [
            ("Event", "SCAN"),
            ("EventKey", scene),
            ("Ticket", "gQ" + secrets.token_urlsafe(40)),
        ]
        return await self._event(openid, fields, interaction="event")

    async def click(self, openid: str, key: str) -> DeliveryResult:
        """The customer taps a CLICK menu button (opens only the 1-minute window)."""
        return await self._event(openid, [("Event", "CLICK"), ("EventKey", key)], interaction="event")

    async def view(self, openid: str, url: str) -> DeliveryResult:
        """The customer taps a VIEW (link) menu button; this opens no window."""
        return await self._event(openid, [("Event", "VIEW"), ("EventKey", url)], interaction=None)

    async def template_send_job_finish(self, openid: str, msgid: int, status: str = "success") -> DeliveryResult:
        """WeChat's delivery report for a template message; note ``<MsgID>`` with a capital D."""
        fields: list[tuple[str, Value]] = [("Event", "TEMPLATESENDJOBFINISH"), ("MsgID", msgid), ("Status", status)]
        return await self._event(openid, fields, interaction=None, log=False, silent=True)

    # -- lower level -------------------------------------------------------------------------------------------------

    def message_xml(self, openid: str, msgtype: str, fields: list[tuple[str, Value]], *, with_msg_id: bool) -> str:
        """The plaintext callback XML (ToUserName, FromUserName, CreateTime, MsgType, fields[, MsgId])."""
        head: list[tuple[str, Value]] = [
            ("ToUserName", self.account.original_id),
            ("FromUserName", openid),
            ("CreateTime", int(self.state.clock.now())),
            ("MsgType", msgtype),
        ]
        tail: list[tuple[str, Value]] = [("MsgId", self.state.mp.next_msg_id())] if with_msg_id else []
        return render_xml(head + fields + tail)

    def signed_params(
        self,
        body_xml: str,
        mode: Mode | None = None,
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        openid: str | None = None,
        token: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Query parameters and wire body for a plaintext XML in ``mode``; override pieces to craft bad variants."""
        mode = mode or self.account.mode
        root = parse_xml(body_xml)
        if openid is None:
            openid = root.findtext("FromUserName") or ""
        body, encrypt = self._wire(body_xml, mode)
        params = self._sign(encrypt, openid, timestamp=timestamp, nonce=nonce, token=token)
        return params, body

    async def deliver_xml(
        self, xml: str, *, interaction: Interaction | None = None, silent: bool = False
    ) -> DeliveryResult:
        """Deliver an arbitrary plaintext callback XML with the account's mode, signatures and retries."""
        root = parse_xml(xml)
        openid = root.findtext("FromUserName") or ""
        msg_id_text = root.findtext("MsgId")
        if interaction is not None:
            self.state.mp.record_interaction(self.account.appid, openid, interaction)
        body, encrypt = self._wire(xml, self.account.mode)
        result = DeliveryResult(
            xml=xml,
            body=body,
            openid=openid,
            msg_id=int(msg_id_text) if msg_id_text and msg_id_text.isdigit() else None,
            encrypt=encrypt,
            silent=silent,
        )
        return await self._post_with_retries(result)

    async def replay(self, result: DeliveryResult) -> DeliveryResult:
        """Re-deliver exactly the same body (same MsgId, same ciphertext) with a new timestamp, nonce and signature."""
        again = DeliveryResult(
            xml=result.xml,
            body=result.body,
            openid=result.openid,
            msg_id=result.msg_id,
            encrypt=result.encrypt,
            silent=result.silent,
        )
        return await self._post_with_retries(again)

    async def post_raw(
        self, body: bytes, params: dict[str, str], *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """One POST of exactly these bytes and parameters (malformed XML, bad signatures, XML bombs...)."""
        async with self._client() as client:
            return await client.post(
                self.callback_url, params=params, content=body, headers=headers or {"Content-Type": "text/xml"}
            )

    async def verify_url(self, token: str | None = None, echostr: str | None = None) -> httpx.Response:
        """The GET handshake of 服务器配置: 3-value signature; the desk must echo ``echostr`` verbatim."""
        timestamp = str(int(self.state.clock.now()))
        nonce = crypto.random_nonce()
        params = {
            "signature": crypto.sign(token if token is not None else self.account.token, timestamp, nonce),
            "echostr": echostr or str(secrets.randbelow(9 * 10**18) + 10**18),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        async with self._client() as client:
            return await client.get(self.callback_url, params=params)

    # -- internals -------------------------------------------------------------------------------------------------

    def _media_url(self, media_id: str) -> str:
        if self.state.public_base_url:
            return f"{self.state.public_base_url.rstrip('/')}/_sim/media/{media_id}"
        return f"http://mmbiz.qpic.cn/mmbiz_jpg/{media_id}/0"

    async def _customer_message(self, openid: str, msgtype: str, fields: list[tuple[str, Value]]) -> DeliveryResult:
        self.state.mp.ensure_user(self.account.appid, openid)
        xml = self.message_xml(openid, msgtype, fields, with_msg_id=True)
        self._log_received(xml, openid, msgtype)
        return await self.deliver_xml(xml, interaction="message")

    async def _event(
        self,
        openid: str,
        fields: list[tuple[str, Value]],
        *,
        interaction: Interaction | None,
        log: bool = True,
        silent: bool = False,
    ) -> DeliveryResult:
        self.state.mp.ensure_user(self.account.appid, openid)
        xml = self.message_xml(openid, "event", fields, with_msg_id=False)
        if log:
            self._log_received(xml, openid, "event")
        return await self.deliver_xml(xml, interaction=interaction, silent=silent)

    def _log_received(self, xml: str, openid: str, msgtype: str) -> None:
        fields = element_to_dict(parse_xml(xml))
        msg_id = fields.get("MsgId")
        self.state.mp.record_received(
            appid=self.account.appid,
            openid=openid,
            msgtype=msgtype,
            fields=fields,
            xml=xml,
            msg_id=int(msg_id) if isinstance(msg_id, str) and msg_id.isdigit() else None,
            event=fields.get("Event"),
        )

    def _wire(self, xml: str, mode: Mode) -> tuple[bytes, str | None]:
        if mode == "plain":
            return xml.encode("utf-8"), None
        encrypt = crypto.encrypt(self.account.aes_key, self.account.appid, xml.encode("utf-8"))
        if mode == "compat":
            return with_encrypt(xml, encrypt).encode("utf-8"), encrypt
        return safe_envelope(self.account.original_id, encrypt).encode("utf-8"), encrypt

    def _sign(
        self,
        encrypt: str | None,
        openid: str,
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        token: str | None = None,
    ) -> dict[str, str]:
        timestamp = timestamp or str(int(self.state.clock.now()))
        nonce = nonce or crypto.random_nonce()
        token = token if token is not None else self.account.token
        params = {"signature": crypto.sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        params["openid"] = openid
        if encrypt is not None:
            params["encrypt_type"] = "aes"
            params["msg_signature"] = crypto.sign(token, timestamp, nonce, encrypt)
        return params

    def _client(self) -> httpx.AsyncClient:
        # A client per delivery: the driver is used from several event loops (tests, uvicorn's thread).
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=self.timeout,
            trust_env=False,
            headers={"User-Agent": "Mozilla/4.0"},
        )

    async def _post_with_retries(self, result: DeliveryResult) -> DeliveryResult:
        async with self._client() as client:
            for _ in range(1 + self.retries):
                params = self._sign(result.encrypt, result.openid)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self.timeout):
                        response = await client.post(
                            self.callback_url,
                            params=params,
                            content=result.body,
                            headers={"Content-Type": "text/xml"},
                        )
                except (TimeoutError, httpx.TimeoutException):
                    result.attempts.append(Attempt(None, time.monotonic() - started, ""))
                    continue
                except httpx.TransportError as exc:
                    result.attempts.append(Attempt(None, time.monotonic() - started, f"<{type(exc).__name__}>"))
                    continue
                result.attempts.append(Attempt(response.status_code, time.monotonic() - started, response.text))
                result.response = response
                if response.status_code == 200:
                    break
        if result.delivered:
            assert result.response is not None
            result.reply, result.reply_error = self._read_reply(result.response.content, result.openid)
        else:
            result.reply_error = "no HTTP 200 within the retries"
        self._log_outcome(result)
        return result

    def _read_reply(self, content: bytes, openid: str) -> tuple[PassiveReply | None, str | None]:
        text = content.decode("utf-8", "replace")
        if text.strip() in ("", "success"):
            return None, None
        try:
            root = parse_xml(content)
        except Exception:
            return None, "reply is neither 'success', empty, nor XML"
        encrypted = root.find("Encrypt") is not None
        if encrypted:
            decrypted, error = self._decrypt_reply(root)
            if decrypted is None:
                return None, error
            inner_xml = decrypted
            try:
                root = parse_xml(inner_xml)
            except Exception:
                return None, "decrypted reply is not XML"
        else:
            inner_xml = text
        fields = element_to_dict(root)
        msgtype = str(fields.get("MsgType") or "")
        if msgtype not in REPLY_MSGTYPES:
            return None, f"unsupported reply MsgType {msgtype!r}"
        if fields.get("ToUserName") != openid or fields.get("FromUserName") != self.account.original_id:
            return None, "reply ToUserName/FromUserName do not match the message"
        return PassiveReply(msgtype=msgtype, fields=fields, xml=inner_xml, encrypted=encrypted), None

    def _decrypt_reply(self, root: Element) -> tuple[str | None, str | None]:
        encrypt = root.findtext("Encrypt") or ""
        signature = root.findtext("MsgSignature") or ""
        timestamp = root.findtext("TimeStamp") or ""
        nonce = root.findtext("Nonce") or ""
        expected = crypto.sign(self.account.token, timestamp, nonce, encrypt)
        if not crypto.signatures_equal(expected, signature):
            return None, "encrypted reply has a wrong MsgSignature"
        try:
            msg, receiveid = crypto.decrypt(self.account.aes_key, encrypt)
        except crypto.CryptoError as exc:
            return None, f"encrypted reply does not decrypt: {exc}"
        if receiveid != self.account.appid:
            return None, "encrypted reply is for another appid"
        return msg.decode("utf-8", "replace"), None

    def _log_outcome(self, result: DeliveryResult) -> None:
        appid = self.account.appid
        if result.reply is not None and result.reply.msgtype != "transfer_customer_service":
            body = result.reply.as_message()
            self.state.mp.record_sent(
                appid=appid, touser=result.openid, kind="passive", msgtype=result.reply.msgtype, body=body
            )
        elif result.customer_saw_error and not result.silent:
            self.state.mp.record_sent(
                appid=appid,
                touser=result.openid,
                kind="notice",
                msgtype="text",
                body={"msgtype": "text", "text": {"content": CUSTOMER_ERROR_NOTICE}, "reason": result.reply_error},
            )
