"""Building and reading MP callback XML.

Shapes follow 接收普通消息 https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
and 接收事件推送 https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html:
strings in CDATA, numbers bare, no whitespace between elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

__all__ = ["cdata", "element_to_dict", "encrypt_value", "parse_xml", "render_xml", "safe_envelope", "with_encrypt"]

Value = str | int | float


def cdata(value: str) -> str:
    """Wrap in CDATA; a literal ``]]>`` is split across two sections as XML requires."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_xml(fields: Iterable[tuple[str, Value]]) -> str:
    """``<xml>`` with one element per field, in order."""
    parts = ["<xml>"]
    for name, value in fields:
        text = cdata(value) if isinstance(value, str) else str(value)
        parts.append(f"<{name}>{text}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def with_encrypt(plain_xml: str, encrypt: str) -> str:
    """Compatibility mode (兼容模式): the plaintext fields and ``<Encrypt>`` in one body, as in the M1 sample."""
    return plain_xml[: -len("</xml>")] + f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"


def safe_envelope(to_user: str, encrypt: str) -> str:
    """Safe mode (安全模式): only the account's original id and the ciphertext."""
    return render_xml([("ToUserName", to_user), ("Encrypt", encrypt)])


def parse_xml(text: str | bytes) -> Element:
    """Parse with defusedxml (no entities, no DTDs); raises ``ValueError`` subclasses or ``ParseError``."""
    root: Element = ElementTree.fromstring(text)
    return root


def encrypt_value(text: str | bytes) -> str | None:
    """The ``<Encrypt>`` text of a body, if any."""
    node = parse_xml(text).find("Encrypt")
    return None if node is None else (node.text or "")


def element_to_dict(element: Element) -> dict[str, Any]:
    """Children as a dict; repeated tags become lists, nested elements become dicts."""
    out: dict[str, Any] = {}
    for child in element:
        value: Any = element_to_dict(child) if len(child) else (child.text or "")
        if child.tag in out:
            existing = out[child.tag]
            if not isinstance(existing, list):
                out[child.tag] = [existing]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out
