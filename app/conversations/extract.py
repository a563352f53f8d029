"""Structured fields read out of a customer's words at intake: order number, phone, problem type. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.conversations.config import ConversionRules
from app.security.crypto import find_phones


@dataclass
class Extracted:
    order_no: str | None = None
    phone: str | None = None
    category: str = ""
    matched_keywords: list[str] = field(default_factory=list)


def extract(text: str, rules: ConversionRules) -> Extracted:
    """Read order number, phone number and problem type from a text."""
    out = Extracted()
    phones = find_phones(text)
    if phones:
        out.phone = phones[0]
    phone_digits = {p.removeprefix("+86") for p in phones}
    for pattern in rules.order_patterns:
        for match in pattern.finditer(text):
            value = match.group(1) if match.groups() else match.group(0)
            if value not in phone_digits:
                out.order_no = value
                break
        if out.order_no:
            break
    for category, words in rules.categories.items():
        hits = [w for w in words if w in text]
        if hits:
            out.category = category
            out.matched_keywords = hits
            break
    return out
