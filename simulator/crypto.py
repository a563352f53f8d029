"""WeChat callback crypto, written independently of wechatpy so each side can check the other.

Follows 消息加解密说明 https://developers.weixin.qq.com/doc/oplatform/developers/dev/push/encryption.md (MP) and
加解密方案说明 https://developer.work.weixin.qq.com/document/path/90968 (WeCom; the algorithm is identical):

* ``AESKey = base64(EncodingAESKey + "=")`` (32 bytes, AES-256-CBC, IV = key[:16]);
* plaintext = random(16) + len(msg) as 4-byte big-endian + msg + receiveid (MP: AppID, WeCom: CorpID);
* PKCS#7 padding to a multiple of **32** bytes, not the AES block size of 16;
* signature = sha1 of the sorted values concatenated without separator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "CryptoError",
    "decrypt",
    "encrypt",
    "random_aes_key",
    "random_nonce",
    "sign",
    "signatures_equal",
]

_BLOCK = 32  # WeChat pads to 32 bytes; standard 16-byte unpadders reject the official V1a vector.
_ALNUM = string.ascii_letters + string.digits


class CryptoError(ValueError):
    """Raised when a ciphertext or key is malformed; ``code`` follows the official sample's error codes."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def sign(*parts: str) -> str:
    """sha1 hex of the values sorted lexicographically and concatenated (token, timestamp, nonce[, encrypt])."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signatures_equal(a: str, b: str) -> bool:
    """Constant-time signature comparison."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _key(aes_key43: str) -> bytes:
    if len(aes_key43) != 43:
        raise CryptoError(-40004, "EncodingAESKey must have 43 characters")
    try:
        key = base64.b64decode(aes_key43 + "=", validate=True)
    except binascii.Error as exc:
        raise CryptoError(-40004, "EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise CryptoError(-40004, "EncodingAESKey does not decode to 32 bytes")
    return key


def random_aes_key() -> str:
    """A fresh 43-character EncodingAESKey."""
    return "".join(secrets.choice(_ALNUM) for _ in range(43))


def random_nonce(length: int = 10) -> str:
    """A numeric nonce like the ones MP puts on callback URLs."""
    first = secrets.choice("123456789")
    return first + "".join(secrets.choice(string.digits) for _ in range(length - 1))


def encrypt(aes_key43: str, receiveid: str, msg: bytes, rand16: bytes | None = None) -> str:
    """Encrypt ``msg`` for ``receiveid``; returns the base64 text that goes into ``<Encrypt>``."""
    key = _key(aes_key43)
    if rand16 is None:
        # The official samples use 16 printable characters; any 16 bytes would do.
        rand16 = "".join(secrets.choice(_ALNUM) for _ in range(16)).encode("ascii")
    if len(rand16) != 16:
        raise CryptoError(-40006, "random prefix must be 16 bytes")
    raw = rand16 + struct.pack(">I", len(msg)) + msg + receiveid.encode("utf-8")
    pad = _BLOCK - len(raw) % _BLOCK  # 1..32; a full block when already aligned
    raw += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode("ascii")


def decrypt(aes_key43: str, encrypt_b64: str) -> tuple[bytes, str]:
    """Decrypt an ``<Encrypt>`` value; returns ``(msg, receiveid)``. The caller checks the receiveid."""
    key = _key(aes_key43)
    try:
        data = base64.b64decode(encrypt_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(-40010, "Encrypt is not base64") from exc
    if not data or len(data) % 16:
        raise CryptoError(-40007, "ciphertext length is not a multiple of the AES block")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = decryptor.update(data) + decryptor.finalize()
    pad = raw[-1]
    if not 1 <= pad <= _BLOCK or raw[-pad:] != bytes([pad]) * pad:
        raise CryptoError(-40007, "bad PKCS#7 padding")
    raw = raw[:-pad]
    if len(raw) < 20:
        raise CryptoError(-40008, "plaintext too short")
    (length,) = struct.unpack(">I", raw[16:20])
    if 20 + length > len(raw):
        raise CryptoError(-40008, "message length exceeds plaintext")
    msg = raw[20 : 20 + length]
    try:
        receiveid = raw[20 + length :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CryptoError(-40008, "receiveid is not UTF-8") from exc
    return msg, receiveid
