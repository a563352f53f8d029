"""Callback envelopes: signature, timestamp window, decryption and XML parsing for MP and WeCom pushes.

Follows 消息加解密说明 https://developers.weixin.qq.com/doc/oplatform/developers/dev/push/encryption.md (MP plain,
compatibility and safe mode), 接入指南 https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
(MP URL verification) and 加解密方案说明 https://developer.work.weixin.qq.com/document/path/90968 with 接收消息与事件
https://developer.work.weixin.qq.com/document/path/96466 (WeCom). The AES work is wechatpy's own
(``wechatpy.crypto`` for MP, ``wechatpy.work.crypto`` for WeCom; the algorithm is the same, only the receiveid
differs: AppID for MP, CorpID for WeCom). What wechatpy lacks is added here: constant-time signature comparison,
a timestamp window against replays, hardened XML parsing (any DTD refused, plus a nesting-depth limit: ElementTree
serialises nested elements recursively, so 1,000 levels raised RecursionError), bounded identifier fields, and
previous-key fallback for MP key rotation. Replays inside the window are refused by ``app.wecom.replay``.

An MP account that has an EncodingAESKey accepts only encrypted pushes (``encrypt_type=aes``: safe mode, or
compatibility mode whose plaintext copy is ignored). Plain mode signs only timestamp and nonce, never the body, so
accepting it for such an account would let anyone who saw one callback URL post any text as any openid. Plain mode
is accepted only for an account without a key, or one explicitly configured with ``accept_plain`` (a migration aid).

Everything is pure CPU work with no I/O, meant for the callback request path. Every failure raises
``CallbackRejected(reason, status_code=...)`` whose reason is one of:

=========================  ======  ==========================================================================
reason                     status  meaning
=========================  ======  ==========================================================================
missing_parameter          400     timestamp, nonce or echostr absent
bad_timestamp              400     timestamp is not a whole number
bad_signature              403     signature / msg_signature absent or wrong
stale_timestamp            403     ``abs(now - timestamp) > window_seconds``
unsupported_encrypt_type   400     MP ``encrypt_type`` other than absent, ``raw`` or ``aes``
encryption_required        403     MP plain-mode push to an account that has an EncodingAESKey (forgery guard)
body_too_large             413     body above ``MAX_BODY_BYTES``
malformed_body             400     not XML/JSON, wrong encoding, unexpected structure
too_deep                   400     XML (or JSON) nested deeper than ``MAX_XML_DEPTH``
field_too_long             400     an identifier field longer than its ``BOUNDED_FIELDS`` limit
forbidden_xml              400     DTD, entity declaration or external reference (XML bombs, XXE)
missing_encrypt            400     encrypted mode without ``<Encrypt>``
bad_base64                 400     ``<Encrypt>`` / echostr is not base64 of whole AES blocks
decrypt_failed             400     no configured key decrypts it
wrong_receiver             400     decrypts, but for another AppID/CorpID
=========================  ======  ==========================================================================

Reasons never contain secrets or request values. Parameters arrive already percent-decoded once (starlette's
``request.query_params``); do not decode again. A ``+`` must stay a ``+``; since base64 never contains spaces, a
space in echostr can only be a ``+`` that a sender failed to percent-encode, and is turned back into one.

Safe mode decrypts to JSON when the account chose the JSON data format (vector M2c); such bodies are supported:
``xml`` then holds the JSON text and ``fields`` its top-level values as strings.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import pyexpat
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wechatpy.crypto import PrpCrypto as MPPrpCrypto
from wechatpy.crypto import WeChatCrypto as MPCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner
from wechatpy.work.crypto import PrpCrypto as WeComPrpCrypto
from wechatpy.work.crypto import WeChatCrypto as WeComCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

from app.errors import CallbackRejected, ConfigError

__all__ = [
    "BOUNDED_FIELDS",
    "MAX_BODY_BYTES",
    "MAX_ID_LENGTH",
    "MAX_XML_DEPTH",
    "CallbackCredentials",
    "KeyChoice",
    "MPEnvelope",
    "WeComEnvelope",
    "encrypt_mp_reply",
    "encrypt_wecom_reply",
    "open_mp_callback",
    "open_wecom_callback",
    "parse_xml",
    "sign",
    "verify_mp_echo",
    "verify_wecom_echo",
]

#: real pushes are under 2 KB; anything far larger is not from the platform
MAX_BODY_BYTES = 64 * 1024
#: real pushes nest at most about 6 levels (ApprovalInfo > SpRecord > Details > Approver > UserId)
MAX_XML_DEPTH = 32
#: openids are 28 characters, WeCom userids at most 64, MsgIds about 32; identity columns hold 128
MAX_ID_LENGTH = 128
#: top-level fields that become identifiers, keys or short columns, with the longest value accepted (a genuine push
#: is far shorter: openids have 28 characters, userids and OpenKfIds at most 64); any longer one is refused
BOUNDED_FIELDS: dict[str, int] = {
    "ToUserName": MAX_ID_LENGTH, "FromUserName": MAX_ID_LENGTH, "MsgId": MAX_ID_LENGTH, "MsgID": MAX_ID_LENGTH,
    "MediaId": MAX_ID_LENGTH, "ThumbMediaId": MAX_ID_LENGTH, "ExternalUserID": MAX_ID_LENGTH,
    "Token": MAX_ID_LENGTH, "State": MAX_ID_LENGTH, "WelcomeCode": MAX_ID_LENGTH, "ChatId": MAX_ID_LENGTH,
    "UserID": 64, "OpenKfId": 64, "MsgType": 32, "Event": 64, "ChangeType": 64, "Status": 64, "Format": 32,
    "CreateTime": 20, "AgentID": 20,
}

KeyChoice = Literal["current", "previous"]


@dataclass(frozen=True)
class CallbackCredentials:
    """What verifies one app's callbacks: the URL token, the EncodingAESKey(s) and the expected receiveid.

    ``receive_id`` is the AppID for MP and the CorpID for a WeCom self-built app. Secrets are kept out of ``repr``.
    """

    token: str = field(repr=False)
    aes_key: str | None = field(repr=False)
    receive_id: str
    previous_aes_key: str | None = field(default=None, repr=False)
    #: MP only: also accept plain-mode pushes although an EncodingAESKey is configured (while switching modes)
    accept_plain: bool = False

    @property
    def plain_allowed(self) -> bool:
        """Whether an unencrypted MP push may be accepted: no key at all, or explicitly configured."""
        return not self.aes_key or self.accept_plain

    def __post_init__(self) -> None:
        for name in ("aes_key", "previous_aes_key"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 43 and value.isascii() and value.isalnum()):
                raise ConfigError(f"{name} must be the 43-character EncodingAESKey")

    def key(self, which: KeyChoice) -> str:
        """The EncodingAESKey named by ``which``."""
        value = self.aes_key if which == "current" else self.previous_aes_key
        if not value:
            raise ConfigError(f"no {which} EncodingAESKey is configured for {self.receive_id}")
        return value


@dataclass(frozen=True)
class MPEnvelope:
    """An authenticated MP push: the plaintext body, its fields, and how it came."""

    #: the decrypted (or plain) body text, normally XML; JSON when the account uses the JSON data format
    xml: str
    #: top-level fields, every value a string (MsgId stays a string; nested elements keep their XML)
    fields: dict[str, str]
    encrypted: bool
    #: which EncodingAESKey decrypted it; encrypt the passive reply with the same one
    key_used: KeyChoice | None


@dataclass(frozen=True)
class WeComEnvelope:
    """An authenticated WeCom push."""

    xml: str
    fields: dict[str, str]
    #: the unencrypted outer fields (ToUserName = CorpID, AgentID); not covered by the signature
    outer: dict[str, str]
    key_used: KeyChoice

    @property
    def agent_id(self) -> str | None:
        """The AgentID, from the decrypted body or else the envelope."""
        return self.fields.get("AgentID") or self.outer.get("AgentID") or None


# -- signatures and timestamps ---------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """wechatpy's signature: sha1 hex of the values sorted and concatenated (token, timestamp, nonce[, encrypt])."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    signature: str = signer.signature
    return signature


def _check_signature(expected: str, given: str | None) -> None:
    # wechatpy compares with `!=`; compare in constant time instead.
    if not given or not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8", "replace")):
        raise CallbackRejected("bad_signature", status_code=403)


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise CallbackRejected("missing_parameter", status_code=400)
    return value


def _timestamp(params: Mapping[str, str]) -> tuple[str, int]:
    raw = _required(params, "timestamp")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise CallbackRejected("bad_timestamp", status_code=400)
    return raw, int(raw)


def _check_window(timestamp: int, now: float, window_seconds: int) -> None:
    if abs(now - timestamp) > window_seconds:
        raise CallbackRejected("stale_timestamp", status_code=403)


# -- body parsing ----------------------------------------------------------------------------------------------


def _text(body: bytes | str) -> str:
    if len(body) > MAX_BODY_BYTES:
        raise CallbackRejected("body_too_large", status_code=413)
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallbackRejected("malformed_body", status_code=400) from exc


class _DTDForbidden(Exception):
    pass


class _NoDTDTreeBuilder(ET.TreeBuilder):
    """ElementTree's C tree builder that refuses a document type declaration as soon as it starts.

    Entities can only be declared inside a DTD, so with the DTD refused no entity is ever defined or expanded, and
    ElementTree never fetches external resources: what defusedxml's ``forbid_dtd`` guards against. defusedxml
    parsed with ElementTree's pure-Python parser to hook those declarations, at 2.5 times the CPU of the C one;
    two parses were a fifth of a callback's cost (issue 15). The expat bundled with Python (>= 2.4.1, checked at
    import) also bounds entity amplification on its own.
    """

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DTDForbidden(name)


if pyexpat.version_info < (2, 4, 1):  # pragma: no cover - every supported CPython bundles a newer expat
    raise ImportError(f"expat {pyexpat.EXPAT_VERSION} lacks billion-laughs protection; 2.4.1 or newer is needed")


def _parse_root(text: str) -> ET.Element:
    """Parse with any DTD refused, then check the depth without recursion (the body is at most MAX_BODY_BYTES, so
    a deep document costs little to build; iterparse cost twice as much per callback, issue 15)."""
    if len(text) > MAX_BODY_BYTES:
        raise CallbackRejected("body_too_large", status_code=413)
    parser = ET.XMLParser(target=_NoDTDTreeBuilder())
    try:
        parser.feed(text)
        root: ET.Element | None = parser.close()
    except _DTDForbidden as exc:
        raise CallbackRejected("forbidden_xml", status_code=400) from exc
    except (ET.ParseError, ValueError) as exc:
        raise CallbackRejected("malformed_body", status_code=400) from exc
    if root is None:
        raise CallbackRejected("malformed_body", status_code=400)
    if text.count("<") <= MAX_XML_DEPTH:
        return root  # each level of nesting takes a start tag, so no deeper document has this few '<'
    todo: list[tuple[ET.Element, int]] = [(root, 1)]
    while todo:
        element, depth = todo.pop()
        if depth > MAX_XML_DEPTH:
            raise CallbackRejected("too_deep", status_code=400)
        todo.extend((child, depth + 1) for child in element)
    return root


def parse_xml(text: str) -> dict[str, str]:
    """Parse ``<xml>...</xml>`` into ``{tag: text}`` for the root's children, every value a string.

    CDATA or not, newlines between elements or not, all parse the same. A leaf's text is kept verbatim (an empty
    element gives ``""``). An element with children (``ApprovalInfo``, ``ScanCodeInfo``) keeps its serialized XML,
    so ``parse_xml(fields["ApprovalInfo"])`` reads one level down. When a tag repeats, the first one wins; parse
    the raw XML for lists. DTDs and entities are refused (``forbidden_xml``), never expanded; nesting deeper than
    ``MAX_XML_DEPTH`` is refused (``too_deep``) while parsing, before anything recursive runs.
    """
    root = _parse_root(text)
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str) or child.tag in fields:
            continue
        if len(child):
            fields[child.tag] = ET.tostring(child, encoding="unicode").strip()
        else:
            fields[child.tag] = child.text or ""
    return fields


def _json_depth(text: str) -> int:
    """The deepest bracket nesting outside strings (json's decoder recurses, so check before decoding)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _parse_json(text: str) -> dict[str, str]:
    if _json_depth(text) > MAX_XML_DEPTH:
        raise CallbackRejected("too_deep", status_code=400)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CallbackRejected("malformed_body", status_code=400) from exc
    if not isinstance(data, dict):
        raise CallbackRejected("malformed_body", status_code=400)
    return {str(key): _json_scalar(value) for key, value in data.items()}


def _json_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _parse_body(text: str) -> dict[str, str]:
    if len(text) > MAX_BODY_BYTES:
        raise CallbackRejected("body_too_large", status_code=413)
    stripped = text.lstrip()
    fields = _parse_json(stripped) if stripped.startswith("{") else parse_xml(text)
    for name, limit in BOUNDED_FIELDS.items():
        if len(fields.get(name, "")) > limit:
            raise CallbackRejected("field_too_long", status_code=400)
    return fields


# -- decryption ------------------------------------------------------------------------------------------------


def _check_base64(value: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRejected("bad_base64", status_code=400) from exc
    if len(raw) < 32 or len(raw) % 16:
        raise CallbackRejected("bad_base64", status_code=400)


@functools.lru_cache(maxsize=64)
def _prp(platform: Literal["mp", "wecom"], token: str, key: str, receive_id: str) -> MPPrpCrypto | WeComPrpCrypto:
    """wechatpy's cipher for one EncodingAESKey, made once: decoding the key and building the AES cipher was a
    twentieth of a callback's CPU (issue 15); each decrypt still starts a decryptor of its own."""
    if platform == "mp":
        return MPPrpCrypto(MPCrypto(token, key, receive_id).key)
    return WeComPrpCrypto(WeComCrypto(token, key, receive_id).key)


def _decrypt_once(platform: Literal["mp", "wecom"], creds: CallbackCredentials, key: str, encrypt: str) -> str:
    """Decrypt with one key through wechatpy; CallbackRejected on failure."""
    try:
        prp = _prp(platform, creds.token, key, creds.receive_id)
    except Exception as exc:  # a key that is not base64 of 32 bytes
        raise CallbackRejected("decrypt_failed", status_code=400) from exc
    try:
        plaintext: str = prp.decrypt(encrypt, creds.receive_id)
    except (InvalidAppIdException, InvalidCorpIdException) as exc:
        raise CallbackRejected("wrong_receiver", status_code=400) from exc
    except Exception as exc:  # garbage under a wrong key surfaces as struct/Unicode/Value/Index errors
        raise CallbackRejected("decrypt_failed", status_code=400) from exc
    return plaintext


def _decrypt(platform: Literal["mp", "wecom"], creds: CallbackCredentials, encrypt: str) -> tuple[str, KeyChoice]:
    """Try the current key, then the previous one (key rotation); report the current key's failure."""
    if not creds.aes_key:
        raise ConfigError(f"callback for {creds.receive_id} is encrypted but no EncodingAESKey is configured")
    _check_base64(encrypt)
    try:
        return _decrypt_once(platform, creds, creds.aes_key, encrypt), "current"
    except CallbackRejected as first:
        if not creds.previous_aes_key:
            raise
        try:
            return _decrypt_once(platform, creds, creds.previous_aes_key, encrypt), "previous"
        except CallbackRejected:
            raise first from None


def _verified_encrypt(
    creds: CallbackCredentials, params: Mapping[str, str], body: bytes | str, *, now: float, window_seconds: int
) -> tuple[str, dict[str, str]]:
    """Parse the envelope, check msg_signature over its Encrypt and the window; return (Encrypt, outer fields)."""
    outer = parse_xml(_text(body))
    encrypt = outer.get("Encrypt")
    if not encrypt:
        raise CallbackRejected("missing_encrypt", status_code=400)
    raw_ts, timestamp = _timestamp(params)
    nonce = _required(params, "nonce")
    _check_signature(sign(creds.token, raw_ts, nonce, encrypt), params.get("msg_signature"))
    _check_window(timestamp, now, window_seconds)
    outer.pop("Encrypt")
    return encrypt, outer


# -- MP --------------------------------------------------------------------------------------------------------


def verify_mp_echo(
    creds: CallbackCredentials, params: Mapping[str, str], *, now: float, window_seconds: int = 300
) -> str:
    """MP URL verification (GET): check the 3-value ``signature`` and the window; return ``echostr`` verbatim.

    The echostr is never encrypted on MP, even in safe mode.
    """
    raw_ts, timestamp = _timestamp(params)
    nonce = _required(params, "nonce")
    echostr = _required(params, "echostr")
    _check_signature(sign(creds.token, raw_ts, nonce), params.get("signature"))
    _check_window(timestamp, now, window_seconds)
    return echostr


def open_mp_callback(
    creds: CallbackCredentials,
    params: Mapping[str, str],
    body: bytes | str,
    *,
    now: float,
    window_seconds: int,
) -> MPEnvelope:
    """Authenticate and open an MP push (POST) in safe or compatibility mode, or plain mode where allowed.

    Compatibility and safe (``encrypt_type=aes``): the 4-value ``msg_signature`` covers ``<Encrypt>`` and is
    checked before anything of the body is used; only the decrypted text is trusted (the plaintext copy a
    compatibility-mode body also carries is ignored). Plain (``encrypt_type`` absent or ``raw``): the 3-value
    ``signature`` authenticates timestamp and nonce only, the body is unsigned by platform design, so it is
    refused (``encryption_required``) unless ``creds.plain_allowed``.
    """
    encrypt_type = params.get("encrypt_type") or "raw"
    if encrypt_type == "raw":
        if not creds.plain_allowed:
            raise CallbackRejected("encryption_required", status_code=403)
        text = _text(body)
        raw_ts, timestamp = _timestamp(params)
        nonce = _required(params, "nonce")
        _check_signature(sign(creds.token, raw_ts, nonce), params.get("signature"))
        _check_window(timestamp, now, window_seconds)
        return MPEnvelope(xml=text, fields=_parse_body(text), encrypted=False, key_used=None)
    if encrypt_type != "aes":
        raise CallbackRejected("unsupported_encrypt_type", status_code=400)
    encrypt, _outer = _verified_encrypt(creds, params, body, now=now, window_seconds=window_seconds)
    plaintext, key_used = _decrypt("mp", creds, encrypt)
    return MPEnvelope(xml=plaintext, fields=_parse_body(plaintext), encrypted=True, key_used=key_used)


def encrypt_mp_reply(
    creds: CallbackCredentials, xml: str, *, nonce: str, timestamp: str | int, key: KeyChoice = "current"
) -> str:
    """Encrypt a passive reply (safe/compat mode) with wechatpy; pass the envelope's ``key_used`` as ``key``."""
    crypto = MPCrypto(creds.token, creds.key(key), creds.receive_id)
    reply: str = crypto.encrypt_message(xml, nonce, str(timestamp))
    return reply


# -- WeCom -----------------------------------------------------------------------------------------------------


def verify_wecom_echo(
    creds: CallbackCredentials, params: Mapping[str, str], *, now: float, window_seconds: int = 300
) -> str:
    """WeCom URL verification (GET): check ``msg_signature`` over the echostr, decrypt it, return the bare plaintext.

    ``params`` must be percent-decoded exactly once (starlette's ``query_params`` already is). The answer must be
    the plaintext alone, without quotes, BOM or newline, within one second.
    """
    raw_ts, timestamp = _timestamp(params)
    nonce = _required(params, "nonce")
    # base64 has no spaces: a space is a '+' the sender did not percent-encode.
    echostr = _required(params, "echostr").replace(" ", "+")
    _check_signature(sign(creds.token, raw_ts, nonce, echostr), params.get("msg_signature"))
    _check_window(timestamp, now, window_seconds)
    plaintext, _key = _decrypt("wecom", creds, echostr)
    return plaintext


def open_wecom_callback(
    creds: CallbackCredentials,
    params: Mapping[str, str],
    body: bytes | str,
    *,
    now: float,
    window_seconds: int,
) -> WeComEnvelope:
    """Authenticate, decrypt and parse a WeCom push (POST); MsgId stays a string (WeCom sends non-numeric ones)."""
    encrypt, outer = _verified_encrypt(creds, params, body, now=now, window_seconds=window_seconds)
    plaintext, key_used = _decrypt("wecom", creds, encrypt)
    return WeComEnvelope(xml=plaintext, fields=_parse_body(plaintext), outer=outer, key_used=key_used)


def encrypt_wecom_reply(
    creds: CallbackCredentials, xml: str, *, nonce: str, timestamp: str | int, key: KeyChoice = "current"
) -> str:
    """Encrypt a passive reply to a WeCom push with wechatpy."""
    crypto = WeComCrypto(creds.token, creds.key(key), creds.receive_id)
    reply: str = crypto.encrypt_message(xml, nonce, str(timestamp))
    return reply
