"""Masking of personal data for display: one function, ``mask_text``, used by every view, card and log line.

What is masked inside a free text (subjects, descriptions, messages, event reasons, card texts, log values):

- mainland mobile numbers, with or without +86, written with ASCII or full-width digits (１３６１２３４５６７１)
  and with spaces or dashes anywhere between the digits: ``138****5678``;
- landline numbers written with their area code and a separator (``0755-12345678``): ``0755-****5678``;
- 18-character Chinese resident ID-card numbers (region, birth date, sequence, check character):
  ``110***********123X``;
- e-mail addresses: ``z***@example.com``.

A value tokenised at rest (``⟦pii:<id>:<masked>⟧``, see `app.security.tokens`) shows as its masked form.

Full-width digits and signs are matched by translating the text character for character (the translation keeps
every position), so the parts around a match are returned exactly as written. Ticket numbers (GD-20241204-0001),
order numbers and amounts do not have these shapes and are left alone.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["TOKEN", "find_pii", "mask_data", "mask_email", "mask_id_card", "mask_phone", "mask_text", "render_tokens"]

#: full-width digits, letters and signs -> ASCII, one character for one (positions are kept)
_FULLWIDTH = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)},
     **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
     **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
     "＋": "+", "－": "-", "＠": "@", "．": ".", "\u3000": " ", "‐": "-", "‑": "-", "–": "-", "—": "-"}
)

#: one optional separator between two digits of a number
_SEP = r"[ \t\-]?"

_MOBILE = re.compile(
    r"(?<![\d+])(?:\+?86" + _SEP + r")?"
    r"(?P<num>1" + _SEP + r"[3-9](?:" + _SEP + r"\d){9})(?!\d)"
)
_LANDLINE = re.compile(r"(?<![\d+])(?:\+?86" + _SEP + r")?(?P<area>0[1-9]\d{1,2})[ \-](?P<num>\d{3,4}" + _SEP
                       + r"\d{4})(?!\d)")
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
                    r"\.[A-Za-z]{2,}", re.ASCII)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text.translate(_FULLWIDTH))


def mask_phone(e164_or_raw: str) -> str:
    """138****5678: the national number with its middle four digits hidden."""
    digits = _digits(e164_or_raw)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(email: str) -> str:
    """z***@example.com."""
    local, _, domain = email.translate(_FULLWIDTH).partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_id_card(number: str) -> str:
    """110***********123X: the first three and the last four characters of an ID-card number."""
    plain = number.translate(_FULLWIDTH).upper()
    return f"{plain[:3]}{'*' * (len(plain) - 7)}{plain[-4:]}"


def _landline(match: re.Match[str]) -> str:
    num = _digits(match.group("num"))
    return f"{match.group('area')}-****{num[-4:]}"


#: a tokenised value inside a stored text: ``⟦pii:<id>:<masked form>⟧`` (app.security.tokens); the id is lowercase
#: letters only, so no part of a token can look like a number
TOKEN = re.compile(r"⟦pii:(?P<id>[a-z]{8,32})(?::(?P<masked>[^⟦⟧]*))?⟧")


#: the fewest digits any kind above is written with: a landline's area code and number (0xx + 7), a mobile number
#: has 11, an ID card 17; `\d` is every Unicode decimal digit, full-width ones included, as in the patterns
_MIN_DIGITS = 10


def digits_at_least(n: int) -> re.Pattern[str]:
    """A pattern whose `match` says whether a text holds at least n decimal digits (one pass, no backtracking)."""
    return re.compile(rf"(?:\D*+\d){{{n}}}")


_ENOUGH_DIGITS = digits_at_least(_MIN_DIGITS)


def find_pii(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, masked form) of every phone, ID-card number and e-mail address in a text, in order;
    kind is phone, id_card or email (tokens already in the text are skipped)."""
    # most texts (subjects, replies, event reasons) hold no "@" and fewer than ten digits, so none of the four
    # patterns can match: one scan of the text answers for them (every write and every view calls this)
    if not text or ("@" not in text and "＠" not in text and _ENOUGH_DIGITS.match(text) is None):
        return []
    return _scan(text)


def _scan(text: str) -> list[tuple[int, int, str, str]]:
    plain = text.translate(_FULLWIDTH)
    spans: list[tuple[int, int, str, str]] = [(m.start(), m.end(), "token", "") for m in TOKEN.finditer(plain)]

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _, _ in spans)

    for pattern, kind, masker in (
        (_ID_CARD, "id_card", lambda m: mask_id_card(m.group(0))),
        (_EMAIL, "email", lambda m: mask_email(m.group(0))),
        (_MOBILE, "phone", lambda m: mask_phone(m.group("num"))),
        (_LANDLINE, "phone", _landline),
    ):
        for m in pattern.finditer(plain):
            if free(m.start(), m.end()):
                spans.append((m.start(), m.end(), kind, masker(m)))
    return sorted(s for s in spans if s[2] != "token")


def render_tokens(text: str) -> str:
    """Show every token of a stored text as its masked form (138****5678), without reading the database."""
    if not text or "⟦" not in text:
        return text
    return TOKEN.sub(lambda m: m.group("masked") or "***", text)


def mask_text(text: str) -> str:
    """Mask every phone number, ID-card number and e-mail address inside a free text (tokens show masked)."""
    if not text:
        return text
    text = render_tokens(text)
    spans = find_pii(text)
    if not spans:
        return text
    out, last = [], 0
    for start, end, _kind, masked in spans:
        out.append(text[last:start])
        out.append(masked)
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_data(value: Any) -> Any:
    """``mask_text`` applied to every string inside a JSON-like value (custom fields, event data)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v) for v in value]
    return value
