"""Field encryption at rest, keyed hashes for exact-match search, and masking for display.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with MultiFernet for key rotation: the first key in
FIELD_ENCRYPTION_KEYS encrypts, every key decrypts; `gongdan keys rotate` re-encrypts with the first
(docs/deploy.md, Secrets). Without configured keys one is derived from SECRET_KEY, which suits the embedded mode only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

import phonenumbers
from cryptography.fernet import Fernet, MultiFernet

from app.settings import Settings, get_settings


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...], secret: str) -> MultiFernet:
    if not keys:
        derived = hashlib.sha256(b"gongdan-field-key:" + secret.encode()).digest()
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(k.encode()) for k in keys])


def _settings(settings: Settings | None) -> Settings:
    return settings or get_settings()


def encrypt_field(value: str, *, settings: Settings | None = None) -> str:
    """Encrypt one field value for storage."""
    s = _settings(settings)
    return _fernet(s.field_keys, str(s.secret_key)).encrypt(value.encode()).decode()


def decrypt_field(token: str, *, settings: Settings | None = None) -> str:
    """Decrypt a stored field value."""
    s = _settings(settings)
    return _fernet(s.field_keys, str(s.secret_key)).decrypt(token.encode()).decode()


def rotate_field(token: str, *, settings: Settings | None = None) -> str:
    """Re-encrypt a stored value with the current (first) key."""
    s = _settings(settings)
    return _fernet(s.field_keys, str(s.secret_key)).rotate(token.encode()).decode()


def keyed_hash(value: str, *, settings: Settings | None = None) -> str:
    """HMAC-SHA256 of a normalised value: searchable by exact match, useless without the key."""
    s = _settings(settings)
    key = hashlib.sha256(b"gongdan-search-key:" + str(s.secret_key).encode()).digest()
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def normalize_phone(raw: str) -> str | None:
    """Return a mainland-style number in E.164 (+8613812345678), or None when it is not a valid number."""
    try:
        parsed = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def find_phones(text: str) -> list[str]:
    """Find the phone numbers written in a free text (E.164)."""
    return [
        phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        for m in phonenumbers.PhoneNumberMatcher(text, "CN")
    ]


def mask_phone(e164_or_raw: str) -> str:
    """138****5678: the national number with its middle four digits hidden."""
    digits = re.sub(r"\D", "", e164_or_raw)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(email: str) -> str:
    """z***@example.com."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


# Long digit runs that look like mobile numbers (11 digits starting with 1), including +86 and separators.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?(1[3-9]\d)[-\s]?(\d{4})[-\s]?(\d{4})(?!\d)")


def mask_text(text: str) -> str:
    """Mask every mainland mobile number inside a free text (for logs and for staff without the reveal right)."""
    return _PHONE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
