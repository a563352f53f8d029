"""Raw mail -> what the desk needs (pure): headers, the text to show, sanitised HTML, attachments, loop signals.

MIME, RFC 2047 subjects and RFC 2231 file names: the standard ``email`` package with ``policy.default``. Bodies are
decoded with their declared charset, where GB2312 and GBK are read as GB18030 (their superset: mail labelled
gb2312 often holds GBK-only characters). Quoted history and signatures: mail-parser-reply (Chinese and English
headers), after cutting at the Chinese clients' separators it does not know (Foxmail/QQ "原始邮件", "…写道：" lines,
full-width colons in Outlook's 发件人：). HTML: sanitised with nh3; an HTML-only mail is read as text by a small
``html.parser`` walk (html2text would do it but is GPL-licensed, BeautifulSoup is a large dependency for this).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import nh3
from mailparser_reply import EmailReplyParser

#: our own Message-IDs: <gd{outbox id}.{16 hex}@domain>; the local part is the outbox row's provider_msg_id
OUR_ID = re.compile(r"\bgd\d+\.[0-9a-f]{16}(?=@)")
#: a ticket number in a subject: [GD-20261205-0042]
SUBJECT_NUMBER = re.compile(r"\[([A-Z]{1,8}-\d{8}-\d{4,})\]")
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
BOUNCE_SUBJECT = re.compile(r"^(undeliver|delivery status notification \(failure\)|mail delivery failed|"
                            r"returned mail|系统退信|退信|投递失败|邮件投递失败)", re.IGNORECASE)
STATUS_CODE = re.compile(r"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.IGNORECASE | re.MULTILINE)
FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|转发)\s*[:：]", re.IGNORECASE)
#: Chinese clients' quote headers mail-parser-reply does not cut at
CUT_LINES = re.compile(
    r"^\s*(?:-{2,}\s*(?:原始邮件|Original Message)\s*-{2,}"
    r"|.*\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日.*写道\s*[:：]"
    r"|On .{5,120} wrote:)\s*$",
    re.IGNORECASE | re.MULTILINE)
HEADER_COLON = re.compile(r"^(\s*>?\s*[*]?(?:发件人|发送时间|收件人|抄送|主题|日期|时间))\s*：", re.MULTILINE)
#: RFC 3676's signature delimiter
SIGNATURE_LINE = re.compile(r"^-- ?$", re.MULTILINE)
#: encoded words labelled GB2312/GBK: decoded as GB18030 (the superset) so GBK-only characters survive
GB_ENCODED_WORD = re.compile(rb"=\?(?:gb2312|gbk|x-gbk|cp936)\?", re.IGNORECASE)
TRAILING_SEPARATORS = re.compile(r"(?:\n[ \t]*(?:[-_=]{5,}|-{2,}\s*原始邮件\s*-{2,})[ \t]*)+\s*$")
CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
                   "gb_2312-80": "gb18030", "ks_c_5601-1987": "cp949", "unicode-1-1-utf-7": "utf-7"}
HTML_KEEP_MAX = 200_000
TEXT_MAX = 60_000

_reply_parser = EmailReplyParser(languages=["zh", "en"])


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


@dataclass
class ParsedMail:
    message_id: str
    subject: str
    from_addr: str
    from_name: str
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    #: the text shown on the timeline (quoted history and signature removed)
    text: str
    #: the whole text body as it arrived (decoded)
    full_text: str
    #: the sanitised HTML body ("" for plain-text mail)
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    #: why no automatic message may answer this mail ("" when one may): auto_submitted, x_loop, precedence, ...
    auto: str = ""
    is_bounce: bool = False
    #: for bounces: our Message-IDs (local parts) the report is about, and the DSN status code
    bounced_ids: list[str] = field(default_factory=list)
    bounce_status: str = ""
    is_forward: bool = False

    @property
    def ticket_numbers(self) -> list[str]:
        """Ticket numbers quoted in brackets in the subject, first first."""
        return SUBJECT_NUMBER.findall(self.subject.upper())

    @property
    def thread_ids(self) -> list[str]:
        """In-Reply-To then References, newest first, without repeats."""
        out: list[str] = []
        for mid in [*self.in_reply_to, *reversed(self.references)]:
            if mid not in out:
                out.append(mid)
        return out


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):  # a malformed header the policy cannot parse
        value = None
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:  # an encoded word the parser left alone (inside a quoted parameter, a bad fold)
        with contextlib.suppress(Exception):
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes of a text part as str: the declared charset (GB2312/GBK read as GB18030), else UTF-8, else GB18030."""
    tried: list[str] = []
    name = (charset or "").strip().strip('"').lower()
    for cs in (CHARSET_ALIASES.get(name, name), "utf-8", "gb18030"):
        if not cs or cs in tried:
            continue
        tried.append(cs)
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


def _filename(part: Message) -> str:
    name = ""
    with contextlib.suppress(Exception):
        name = part.get_filename() or ""
    if not name:
        raw = part.get_param("name")
        name = str(raw) if isinstance(raw, str) else ""
    if "=?" in name:
        with contextlib.suppress(Exception):
            name = str(make_header(decode_header(name)))
    return name.replace("/", "_").replace("\\", "_").strip()


class _TextOfHtml(HTMLParser):
    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
                        "hr", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML body (block elements become line breaks)."""
    walker = _TextOfHtml()
    walker.feed(html)
    walker.close()
    lines = [" ".join(line.replace("\xa0", " ").split()) for line in "".join(walker.out).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sanitise_html(html: str) -> str:
    """HTML safe to show: no script, style, event handlers or foreign schemes (inline images as cid: kept)."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto", "cid"}, link_rel="noopener noreferrer nofollow")


def strip_quotes(text: str) -> str:
    """The newest part of a reply: quoted history (Outlook, Foxmail/QQ, Gmail, Apple Mail) and signatures cut."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for pattern in (CUT_LINES, SIGNATURE_LINE):
        cut = pattern.search(text)
        if cut is not None:
            text = text[:cut.start()]
    text = HEADER_COLON.sub(r"\1:", text)
    try:
        reply = _reply_parser.parse_reply(text)
    except Exception:  # the parser is regex-heavy; a mail it chokes on is shown whole rather than lost
        reply = None
    out = (reply if reply is not None else text).strip()
    return TRAILING_SEPARATORS.sub("", "\n" + out).strip()


def cut_signature(text: str) -> str:
    """The text without its last "-- " signature block."""
    found = list(SIGNATURE_LINE.finditer(text))
    return text[:found[-1].start()].rstrip() if found else text


def auto_reason(msg: Message, *, from_addr: str, own: set[str]) -> str:
    """Why no automatic message may answer this mail (RFC 3834 and the usual vendor headers), or ""."""
    auto_submitted = _header(msg, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_submitted"
    if msg.get("X-Loop") is not None:
        return "x_loop"
    if _header(msg, "Precedence").lower() in ("bulk", "list", "junk"):
        return "precedence"
    if msg.get("X-Auto-Response-Suppress") is not None:
        return "auto_response_suppress"
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return "autoreply_header"
    if from_addr in own:
        return "own_address"
    return ""


def _bounce(msg: Message, raw: bytes, *, from_addr: str, subject: str) -> tuple[bool, list[str], str]:
    report = msg.get_content_type() == "multipart/report" and (
        str(msg.get_param("report-type") or "").lower() == "delivery-status")
    local = from_addr.split("@", 1)[0]
    is_bounce = report or local in BOUNCE_SENDERS or (not from_addr and bool(BOUNCE_SUBJECT.search(subject)))
    if not is_bounce and BOUNCE_SUBJECT.search(subject) and local.startswith(BOUNCE_SENDERS):
        is_bounce = True
    if not is_bounce:
        return False, [], ""
    text = raw.decode("latin-1")
    ids = list(dict.fromkeys(OUR_ID.findall(text)))
    status = STATUS_CODE.search(text)
    return True, ids, status.group(1) if status else ""


def parse_mail(raw: bytes, *, own: set[str] | None = None) -> ParsedMail:
    """Parse one raw RFC 5322 message."""
    msg = BytesParser(policy=policy.default).parsebytes(GB_ENCODED_WORD.sub(b"=?gb18030?", raw))
    subject = _header(msg, "Subject")
    pairs = getaddresses([_header(msg, "From")])
    from_name, from_addr = pairs[0] if pairs else ("", "")
    from_addr = from_addr.strip().lower() if "@" in from_addr else ""
    date = None
    with contextlib.suppress(Exception):
        date = parsedate_to_datetime(_header(msg, "Date"))
        if date is not None and date.tzinfo is None:
            date = None
    ids = MESSAGE_ID.findall(_header(msg, "Message-ID"))
    is_bounce, bounced, status = _bounce(msg, raw, from_addr=from_addr, subject=subject)
    body_plain = body_html = None
    if isinstance(msg, EmailMessage):
        with contextlib.suppress(Exception):
            body_plain = msg.get_body(preferencelist=("plain",))
        with contextlib.suppress(Exception):
            body_html = msg.get_body(preferencelist=("html",))
    html = _part_text(body_html) if body_html is not None else ""
    full_text = _part_text(body_plain) if body_plain is not None else html_to_text(html)
    full_text = full_text.replace("\r\n", "\n").strip()[:TEXT_MAX]
    is_forward = bool(FORWARD_SUBJECT.search(subject))
    # a forward is the customer showing us a mail: the forwarded part is the content, only the signature goes
    shown = cut_signature(full_text) if is_forward else strip_quotes(full_text)
    attachments: list[Attachment] = []
    bodies = {id(p) for p in (body_plain, body_html) if p is not None}
    if not is_bounce:
        for part in msg.walk():
            if part.is_multipart() or id(part) in bodies:
                continue
            ctype = part.get_content_type()
            if ctype == "message/rfc822":
                inner = part.get_payload()
                content = inner[0].as_bytes() if isinstance(inner, list) and inner and isinstance(
                    inner[0], Message) else b""
                attachments.append(Attachment(filename=_filename(part) or "attached.eml", content_type=ctype,
                                              content=content))
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes) or not payload:
                continue
            cid = _header(part, "Content-ID").strip("<> ")
            disposition = (part.get_content_disposition() or "").lower()
            filename = _filename(part)
            if not filename and not cid and disposition != "attachment" and ctype.startswith("text/"):
                continue  # another alternative of the body
            attachments.append(Attachment(
                filename=filename or (f"{cid or 'inline'}.{ctype.split('/')[-1]}"), content_type=ctype,
                content=payload, content_id=cid, inline=bool(cid) and disposition != "attachment"))
    return ParsedMail(
        message_id=ids[0] if ids else "",
        subject=subject,
        from_addr=from_addr,
        from_name=from_name,
        date=date,
        in_reply_to=MESSAGE_ID.findall(_header(msg, "In-Reply-To")),
        references=MESSAGE_ID.findall(_header(msg, "References")),
        text=shown,
        full_text=full_text,
        html=sanitise_html(html)[:HTML_KEEP_MAX] if html else "",
        attachments=attachments,
        auto=auto_reason(msg, from_addr=from_addr, own=own or set()),
        is_bounce=is_bounce,
        bounced_ids=bounced,
        bounce_status=status,
        is_forward=is_forward,
    )
