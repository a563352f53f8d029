"""Field encryption at rest and keyed hashes for exact-match search; masking for display lives in
`app.security.pii` (re-exported here).

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

from app.security.pii import digits_at_least, mask_email, mask_id_card, mask_phone, mask_text
from app.settings import Settings, get_settings

__all__ = [
    "decrypt_field", "encrypt_field", "find_phones", "keyed_hash", "mask_email", "mask_id_card", "mask_phone",
    "mask_text", "normalize_phone", "rotate_field",
]


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


@lru_cache(maxsize=8)
def _search_key(secret: str) -> bytes:
    return hashlib.sha256(b"gongdan-search-key:" + secret.encode()).digest()


def keyed_hash(value: str, *, settings: Settings | None = None) -> str:
    """HMAC-SHA256 of a normalised value: searchable by exact match, useless without the key."""
    # the key is derived once per secret: a sync hashes a remark mobile for tens of thousands of relations
    key = _search_key(str(_settings(settings).secret_key))
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


#: the fewest digits a valid number can be written with, from phonenumbers' metadata: a Chinese national number,
#: or a country code and that country's shortest national number (Iran's +98 and four digits), since numbers of
#: other countries are found only with their code; a text with fewer digits holds nothing the matcher would find.
#: Written out rather than computed at start-up (that loads every country's metadata: 20 MiB a process);
#: tests/app/security/test_finders.py derives it from the installed library.
MIN_PHONE_DIGITS = 6
_ENOUGH_DIGITS = digits_at_least(MIN_PHONE_DIGITS)
#: the fewest digits of a number written without a plus sign: a Chinese national number (7; "00" and a number
#: abroad has more), all in one place: between two of its digits stand at most four of phonenumbers' punctuation
#: characters (its VALID_PUNCTUATION; its matcher ignores case, hence "X"). Both written out and checked against the
#: installed library by tests/app/security/test_finders.py.
MIN_NATIONAL_DIGITS = 7
_PHONE_PUNCTUATION = ("-xX\u2010-\u2015\u2212\u30fc\uff0d-\uff0f \u00a0\u00ad\u200b\u2060\u3000()\uff08\uff09\uff3b"
                      "\uff3d.\\[\\]/~\u2053\u223c\uff5e")
_NATIONAL_DIGITS = re.compile(rf"\d(?:[{_PHONE_PUNCTUATION}]{{0,4}}\d){{{MIN_NATIONAL_DIGITS - 1}}}")


def find_phones(text: str) -> list[str]:
    """Find the phone numbers written in a free text (E.164)."""
    # the matcher costs ~20 us even on a text with no number in it (~100 us on one with a short number), and every
    # new ticket's text passes here: dates, amounts and times apart from each other hold no number
    # (without a plus sign the run of seven answers alone: it holds the six digits the floor asks for)
    if "+" in text or "\uff0b" in text:
        if _ENOUGH_DIGITS.match(text) is None:
            return []
    elif _NATIONAL_DIGITS.search(text) is None:
        return []
    return [
        phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        for m in phonenumbers.PhoneNumberMatcher(text, "CN")
    ]
