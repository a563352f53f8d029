"""A scanner for English that leaks into what people read: identifiers (``awaiting_customer``, ``refund_code_sent``)
and English words known from our code (status, event and approval names, pydantic's messages).

Only visible text is scanned: for HTML the text nodes (never <script>/<style>) and the attributes people see
(placeholder, title, alt, aria-label, the value of a button). Ticket numbers, URLs, e-mail addresses, file names and
brand or format names (WeCom, WeChat, WeUI, JPG, API, SLA...) are allowed; so is anything inside an <code> element.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["IDENTIFIER", "KNOWN_WORDS", "leaks", "visible_text"]

#: an identifier: ASCII letters joined by underscores, 3+ letters in all (refund_code_sent, kf_session)
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_])(?=(?:[A-Za-z0-9]*[A-Za-z]){3})[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+"
                        r"(?![A-Za-z0-9_])")
#: English words our code uses as values; seeing one in Chinese text means a label is missing
KNOWN_WORDS = frozenset("""
survey awaiting customer refund code sent pending open opened resolved closed merged approved rejected cancelled
expired created assigned updated changed priority status low normal high urgent ticket tickets message note notes
internal reply replied intake rated bot handoff delivery failed session queue released breached escalated requested
step approval approvals field required error errors none null true false undefined missing invalid value type new
input string integer object list should least most characters valid please the and not with for from this that
staff agent lead admin group transfer compensation draft published retired image file voice video location
""".split())
_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z]{3,}(?![A-Za-z])")
_ALLOWED = re.compile(
    r"https?://\S+"                               # links
    r"|[\w.*%+-]+@[\w.-]+\.[A-Za-z]{2,}"           # (masked) e-mail addresses
    r"|\b[A-Z][A-Z0-9]{0,7}-\d{8}-\d{4}\b"         # ticket numbers GD-20241204-0001
    r"|\b[\w-]+\.(?:jpg|jpeg|png|gif|webp|pdf)\b"  # file names
    r"|\b(?:WeCom|WeChat|WeUI|WebP|JPG|PNG|GIF|PDF|API|SLA|H5|UUID|JSON|OAuth)\b"
)
_VISIBLE_ATTRS = {"placeholder", "title", "alt", "aria-label"}


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._skip += 1
        values = dict(attrs)
        self.parts.extend(v for k, v in attrs if k in _VISIBLE_ATTRS and v)
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    """The text a person sees on an HTML page, one part per line."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return "\n".join(p.strip() for p in parser.parts if p.strip())


def leaks(text: str) -> list[str]:
    """Untranslated identifiers and known English words in a visible text (empty when it is all Chinese)."""
    plain = _ALLOWED.sub(" ", text)
    found = [m.group(0) for m in IDENTIFIER.finditer(plain)]
    found += [w for w in _WORD.findall(IDENTIFIER.sub(" ", plain)) if w.lower() in KNOWN_WORDS]
    return found
