"""bench.email on a handful of mails, so `python -m bench.email` cannot rot."""

from __future__ import annotations

import os

import pytest

from bench import email as bench_email
from bench.seed import drop_database
from tests.conftest import IN_CI, _forget_dialect

pytestmark = pytest.mark.mysql

#: one database per test process, so concurrent runs on one server do not collide
SMOKE_DB = f"mysql://root:@127.0.0.1:3306/gongdan_bench_email_smoke_{os.getpid()}"


async def _mariadb_or_skip() -> None:
    import aiomysql

    try:
        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3)
        conn.close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI and is unreachable: {exc}")
        pytest.skip(f"MariaDB not reachable: {exc}")


async def test_bench_email_tickets_every_mail_and_measures_the_baseline() -> None:
    await _mariadb_or_skip()
    try:
        _forget_dialect()  # earlier tests of this process ran on SQLite (tortoise caches SQL per dialect)
        figures = await bench_email.run(emails=12, database_url=SMOKE_DB)
    finally:
        await drop_database(SMOKE_DB)

    assert (figures["emails"], figures["replies"], figures["with_attachment"]) == (12, 3, 3)
    assert (figures["tickets_created"], figures["messages_created"], figures["outbox_rows"]) == (9, 12, 12)
    assert figures["media_files"] == 12 + 3  # every original, and the attachments
    assert figures["jobs_enqueued_not_run"] == {"deliver_outbox": 12}
    assert figures["emails_per_s"] > 0 and figures["bare_parses_per_s"] > 0 and figures["cpu_ms_per_email"] > 0
    assert figures["sql_statements_per_email"] > 0


def test_the_corpus_is_chinese_mail_as_it_arrives() -> None:
    """GBK and UTF-8 encoded words and bodies, replies in their thread, attachments with encoded names."""
    from app.channels.email.parse import parse_mail

    mails = bench_email.corpus(11)
    assert b"Subject: =?gbk?b?" in mails[1] and b"Subject: =?utf-8?b?" in mails[0]
    assert b'charset="gbk"' in mails[1] and b'charset="utf-8"' in mails[0]
    parsed = [parse_mail(raw) for raw in mails]
    assert [p.subject for p in parsed[:3]] == list(bench_email.SUBJECTS[:3])
    assert parsed[3].subject == "回复: " + bench_email.SUBJECTS[2]
    assert parsed[3].in_reply_to == [parsed[2].message_id]
    assert "发件人" not in parsed[3].text and "发件人" in parsed[3].full_text  # the quoted history
    assert "HP M227" in parsed[3].text
    assert [a.filename for a in parsed[10].attachments] in (["发票扫描件.pdf"], ["故障照片.png"])  # GBK encoded word
    assert b'filename="=?gbk?b?' in mails[10]
    assert [a.filename for a in parsed[0].attachments] in (["发票扫描件.pdf"], ["故障照片.png"])
    assert len({p.message_id for p in parsed}) == 11
    assert bench_email.bare_parse(mails[0]) > 0
