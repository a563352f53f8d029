"""Log redaction: no phone number (full-width too), ID-card number or e-mail address reaches a log line, however it
is written or passed (issue 11, finding 8: an e-mail in a customer search reached the log 4 times)."""

from __future__ import annotations

import io
import logging
from typing import Any

from app.logs import get_logger, redact


def _redacted(**values: Any) -> dict[str, Any]:
    return dict(redact(None, "info", dict(values)))


def test_emails_full_width_phones_and_id_cards_are_masked_in_every_value() -> None:
    out = _redacted(event="search zhang@example.com", q="１３６１２３４５６７１", id_no="11010519491231002X",
                    nested={"emails": ["li@example.org"], "zhang@example.com": 1}, raw=b"13812345678")
    assert out == {"event": "search z***@example.com", "q": "136****5671", "id_no": "110***********002X",
                   "nested": {"emails": ["l***@example.org"], "z***@example.com": 1}, "raw": "138****5678"}


def test_url_encoded_values_are_masked() -> None:
    out = _redacted(path="/api/v1/customers?q=zhang%40example.com&phone=138+1234+5678",
                    other="/api/v1/customers?q=%EF%BC%91%EF%BC%93%EF%BC%98%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94"
                          "%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98")
    assert out["path"] == "/api/v1/customers?q=z***@example.com&phone=138****5678"
    assert out["other"] == "/api/v1/customers?q=138****5678"
    assert _redacted(path="/api/v1/tickets?status=open%2Cpending")["path"] == "/api/v1/tickets?status=open%2Cpending"


def test_objects_rendered_later_are_masked_and_secrets_dropped() -> None:
    class Url:
        def __str__(self) -> str:
            return "http://desk/api/v1/customers?q=wang@example.com"

    out = _redacted(url=Url(), count=3, flag=True, token="gd_secret")
    assert out == {"url": "http://desk/api/v1/customers?q=w***@example.com", "count": 3, "flag": True,
                   "token": "[redacted]"}


def test_stdlib_and_structlog_lines_as_rendered(log_output: io.StringIO) -> None:
    # uvicorn's access log line of a customer search, and an application line
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET",
                                             "/api/v1/customers?q=zhang.san%40example.com", "1.1", 200)
    get_logger("app.customers").info("customer.search", q="zhang.san@example.com", phone="１３６ １２３４ ５６７１")
    try:
        raise ValueError("bad input 13812345678 from zhang.san@example.com")
    except ValueError:
        get_logger("app.http").exception("request.crashed")
    text = log_output.getvalue()
    for clear in ("zhang.san@example.com", "zhang.san%40example.com", "13812345678", "１２３４"):
        assert clear not in text
    assert text.count("z***@example.com") == 4
    assert "136****5671" in text and "138****5678" in text


def test_a_line_below_the_level_is_dropped_before_redaction_reads_it(log_output: io.StringIO) -> None:
    # redaction renders and scans every value: at LOG_LEVEL=WARNING an info line paid for that on every ticket and
    # was thrown away afterwards
    rendered: list[str] = []

    class Value:
        def __str__(self) -> str:
            rendered.append("str")
            return "13812345678"

    logger = get_logger("app.tickets.level_probe")
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    logger.info("ticket.level_probe", value=Value())
    assert rendered == [] and "ticket.level_probe" not in log_output.getvalue()
    logger.warning("ticket.level_probe", value=Value())
    assert rendered == ["str"] and "138****5678" in log_output.getvalue()
