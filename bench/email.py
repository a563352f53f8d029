"""Inbound email figures: mails parsed and ticketed per second by one worker, beside a bare parse.

    python -m bench.email [--emails 1000] [--database mysql://root:@127.0.0.1:3306/gongdan_bench_email]

A corpus of `--emails` real-shaped Chinese mails is generated: RFC 2047 subjects (UTF-8 and GBK encoded words),
UTF-8 and GBK bodies, some with an HTML alternative, every fourth a reply to the sender's previous mail
(In-Reply-To and References, an Outlook or Foxmail quoted history and a signature), every fifth new mail with an
attachment (a GBK encoded-word or RFC 2231 file name). The database (named gongdan_bench*, dropped and created,
schema from the models) gets the demo org and one mailbox channel account; the mails are stored as that account's
InboundEvents the way the IMAP poll stores them (`store_mail`), then ONE worker (this process, one event at a
time) runs `process_inbound_event` on each: the email processor parses, threads and hands the mail to the intake
flow (customer, message, ticket, acknowledgement in the outbox) and writes the original and attachments to media.
The jobs those steps enqueue (sending the acknowledgement, staff cards) are only counted, not run.

The baseline parses the same bytes with Python's `email` (policy.default: headers, the body text, every
attachment's content) in the same run; the desk's own parser (`parse_mail`) alone is measured too. CPU is this
process's (and MariaDB's, when its process is visible); the SQL statements sent are counted. The worker logs as
in production (JSON at INFO, to stderr). After the timing the run checks the outcome: every event done, one ticket
per new mail, replies threaded into theirs, subjects and bodies decoded, quoted history and signatures kept off
the timeline, attachments and originals in media. Only figures of one run compare: the VM's speed drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email import policy
from email.encoders import encode_base64
from email.header import Header
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from tortoise import Tortoise

from app import queue as jobqueue
from app.channels.email import accounts
from app.channels.email.jobs import store_mail
from app.channels.email.parse import parse_mail
from app.channels.inbound_jobs import process_inbound_event
from app.channels.models import InboundEvent
from app.conversations.models import Message
from app.db import close_db, init_db
from app.logs import configure_logging
from app.outbox.models import OutboxMessage
from app.settings import load_settings, set_settings
from app.setup import setup
from app.tickets.models import Ticket
from bench import procs
from bench.seed import drop_database
from bench.sla import QueryCounter

DATABASE = "mysql://root:@127.0.0.1:3306/gongdan_bench_email"
ADDRESS = "support@bench.example.com"
CHINA = timezone(timedelta(hours=8))
SUBJECTS = ("发票抬头开错了，请帮忙重开", "打印机卡纸，报修", "订单 20261204001 还没发货", "退款申请：商品有质量问题",
            "账户无法登录，提示密码错误", "安装师傅什么时候上门？", "合同续签的报价单", "物流显示已签收但没收到")
BODIES = ("你好，\n\n{topic}。订单号 {order}，麻烦尽快处理，谢谢！\n\n",
          "您好：\n    我们公司上周采购的设备出现了问题，{topic}。附件是照片和发票，请查收。\n    联系人在下面。\n\n",
          "客服你好，{topic}，已经等了三天了，希望今天能给个答复。\n\n")
NAMES = ("刘洋", "张伟", "王芳", "李娜", "陈静", "杨磊", "赵敏", "黄强")
SIGNATURE = "-- \n{name}\n市场部 | 某某科技有限公司\n电话 010-0000 0000\n"
QUOTE = ("\n\n________________________________\n发件人: 客服中心 <{ours}>\n发送时间: 2026年12月4日 10:02\n"
         "收件人: {name} <{sender}>\n主题: Re: {subject}\n\n您好，我们已收到您的问题，正在处理。\n")
FOXMAIL_QUOTE = ("\n\n------------------ 原始邮件 ------------------\n"
                 "发件人: \"{name}\"<{sender}>;\n主题: {subject}\n\n{prev}")


def _subject_header(subject: str, charset: str) -> str:
    return Header(subject, charset).encode()


def _attachment(rng: random.Random) -> tuple[bytes, str, str, str]:
    """(content, maintype, subtype, filename) of a small attachment."""
    if rng.random() < 0.5:
        return (b"%PDF-1.4\n" + rng.randbytes(24_000) + b"\n%%EOF\n", "application", "pdf", "发票扫描件.pdf")
    return (b"\x89PNG\r\n\x1a\n" + rng.randbytes(40_000), "image", "png", "故障照片.png")


def build_mail(n: int, rng: random.Random, *, previous: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]]:
    """The n-th mail of the corpus (a reply to `previous` when given) and what a reply to it needs."""
    if previous is None:
        name = NAMES[n % len(NAMES)]
        sender = f"customer{n:06d}@customer{n % 37}.cn"
        subject = SUBJECTS[n % len(SUBJECTS)]
        text = BODIES[n % len(BODIES)].format(topic=subject, order=f"2026{n:08d}") + SIGNATURE.format(name=name)
        references: list[str] = []
        quoted = ""
    else:
        name, sender = previous["name"], previous["sender"]
        subject = "回复: " + previous["subject"]
        text = "好的，补充一下：型号是 HP M227，今天上午又卡了三次。\n\n" + SIGNATURE.format(name=name)
        references = [*previous["references"], previous["message_id"]]
        quoted = (QUOTE.format(ours=ADDRESS, name=name, sender=sender, subject=previous["subject"]) if n % 2
                  else FOXMAIL_QUOTE.format(name=name, sender=sender, subject=previous["subject"],
                                            prev=previous["text"]))
    gbk = n % 3 == 1  # a third of the mail in GBK, the way Foxmail and older Outlook send it
    charset = "gbk" if gbk else "utf-8"
    message_id = make_msgid(idstring=f"b{n}", domain=sender.rsplit("@", 1)[1])
    body = text + quoted
    # compat32 MIME classes: they keep the GBK encoded words as written (policy.default would refold to UTF-8)
    part: MimeMessage = MIMEText(body, "plain", charset)
    if n % 2 == 0:
        html = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.splitlines() if line) + "</body></html>"
        alternative = MIMEMultipart("alternative")
        alternative.attach(part)
        alternative.attach(MIMEText(html, "html", charset))
        part = alternative
    msg: MimeMessage = part
    if previous is None and n % 5 == 0:
        content, maintype, subtype, filename = _attachment(rng)
        attachment = MIMEBase(maintype, subtype)
        attachment.set_payload(content)
        encode_base64(attachment)
        if gbk:  # Foxmail: an encoded word in quotes (not RFC 2231, but what arrives)
            word = Header(filename, "gbk").encode()
            attachment.add_header("Content-Disposition", "attachment", filename=word)
            attachment.set_param("name", word)
        else:
            attachment.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
        msg = MIMEMultipart("mixed")
        msg.attach(part)
        msg.attach(attachment)
    msg["From"] = f"{_subject_header(name, charset)} <{sender}>"
    msg["To"] = f"{_subject_header('客服中心', charset)} <{ADDRESS}>"
    msg["Subject"] = _subject_header(subject, charset)
    msg["Date"] = format_datetime(datetime(2026, 12, 4, 9, 0, tzinfo=CHINA) + timedelta(seconds=n))
    msg["Message-ID"] = message_id
    if references:
        msg["In-Reply-To"] = references[-1]
        msg["References"] = " ".join(references)
    msg["X-Mailer"] = "Foxmail 7.2.25" if gbk else "Microsoft Outlook 16.0"
    raw = msg.as_bytes()
    return raw, {"name": name, "sender": sender, "subject": subject, "text": text, "message_id": message_id,
                 "references": references}


def corpus(count: int, *, seed: int = 20261204) -> list[bytes]:
    """`count` distinct mails: new mail from new senders, and every fourth a reply to the one before it."""
    rng = random.Random(seed)
    mails: list[bytes] = []
    last: dict[str, Any] | None = None
    for n in range(count):
        raw, last = build_mail(n, rng, previous=last if n % 4 == 3 else None)
        mails.append(raw)
    return mails


def bare_parse(raw: bytes) -> int:
    """What any mail reader does first: the headers, the body text and every attachment's content."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    size = len(str(msg["Subject"])) + len(str(msg["From"]))
    body = msg.get_body(("plain", "html"))
    if body is not None:
        size += len(body.get_content())
    for part in msg.iter_attachments():
        size += len(part.get_content())
    return size


def _count_files(root: Path) -> int:
    return sum(1 for f in root.rglob("*") if f.is_file())


def _timed(fn: Any, mails: list[bytes]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for raw in mails:
        fn(raw)
    return time.perf_counter() - wall, time.process_time() - cpu


async def run(*, emails: int, database_url: str = DATABASE) -> dict[str, Any]:
    """Measure both sides; returns the figures."""
    mails = corpus(emails)
    await drop_database(database_url, create=True)
    queue = procs.CountingQueue()
    with tempfile.TemporaryDirectory(prefix="gongdan-bench-email-") as data_dir:
        settings = load_settings({"GONGDAN_ENV": "test", "DATABASE_URL": database_url, "DB_POOL_SIZE": "4"},
                                 env_file=None).with_overrides(data_dir=Path(data_dir))
        set_settings(settings)
        jobqueue.set_queue(queue)
        setup()
        await init_db(settings)
        try:
            await Tortoise.generate_schemas()
            from app.seed import ensure_org

            await ensure_org()
            account = await accounts.upsert_account(
                key="bench", name="客服中心", address=ADDRESS, imap_host="127.0.0.1", imap_port=993,
                smtp_host="127.0.0.1", smtp_port=465, username=ADDRESS, password="bench-auth-code")
            own = await accounts.own_addresses()

            bare_s, bare_cpu = _timed(bare_parse, mails)
            parse_s, parse_cpu = _timed(lambda raw: parse_mail(raw, own=own), mails)

            started = time.perf_counter()
            ids = [await store_mail(account_id=account.id, uidvalidity=1, uid=n + 1, raw=raw, truncated=False)
                   for n, raw in enumerate(mails)]
            store_s = time.perf_counter() - started
            assert None not in ids, "a generated mail was stored twice"
            queue.jobs.clear()

            db_pids = procs.pids_named("mariadbd") or procs.pids_named("mysqld")
            db_cpu0 = procs.cpu_seconds(db_pids)
            with QueryCounter() as statements:
                wall, cpu = time.perf_counter(), time.process_time()
                results = Counter([await process_inbound_event({}, event_id) for event_id in ids if event_id])
                desk_s, desk_cpu = time.perf_counter() - wall, time.process_time() - cpu
            db_cpu = procs.cpu_seconds(db_pids) - db_cpu0

            assert results == {"done": emails}, results
            statuses = Counter(await InboundEvent.all().values_list("status", flat=True))
            assert statuses == {"done": emails}, statuses
            tickets = await Ticket.all().count()
            messages = await Message.filter(direction="in").count()
            outbox = await OutboxMessage.all().count()
            subjects = set(await Ticket.all().values_list("subject", flat=True))
            assert subjects <= set(SUBJECTS), subjects - set(SUBJECTS)
            for text, media in await Message.filter(direction="in").values_list("text", "media"):
                assert "原始邮件" not in text and "发件人" not in text and "某某科技" not in text, text
                assert "HP M227" in text or any(subject in text for subject in SUBJECTS), text  # bodies decoded
                assert sum(1 for m in media if m.get("original")) == 1, media
            media_files = await asyncio.to_thread(_count_files, Path(data_dir, "media"))
        finally:
            await close_db()
            jobqueue.set_queue(None)
            set_settings(None)
    await drop_database(database_url)
    replies = emails // 4
    assert messages == emails and tickets == emails - replies, (messages, tickets)
    desk_rate, bare_rate = emails / desk_s, emails / bare_s
    return {
        "emails": emails, "replies": replies, "with_attachment": sum(1 for n in range(emails)
                                                                     if n % 4 != 3 and n % 5 == 0),
        "corpus_mb": round(sum(map(len, mails)) / 1e6, 2), "database": "mariadb", "workers": 1,
        "emails_per_s": round(desk_rate, 1), "cpu_ms_per_email": round(desk_cpu / emails * 1000, 2),
        "db_cpu_ms_per_email": round(db_cpu / emails * 1000, 2) if db_pids else None,
        "bare_parses_per_s": round(bare_rate, 1), "bare_cpu_ms_per_email": round(bare_cpu / emails * 1000, 3),
        "desk_parses_per_s": round(emails / parse_s, 1),
        "desk_parse_cpu_ms_per_email": round(parse_cpu / emails * 1000, 3),
        "ratio": round(desk_rate / bare_rate, 4),
        "sql_statements_per_email": round(statements.count / emails, 1),
        "stored_per_s": round(emails / store_s, 1),
        "tickets_created": tickets, "messages_created": messages, "outbox_rows": outbox, "media_files": media_files,
        "jobs_enqueued_not_run": dict(sorted(queue.jobs.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--database", default=DATABASE, help="a MariaDB URL whose database is named gongdan_bench*")
    args = parser.parse_args()
    configure_logging(fmt="json", level="INFO")  # as a production worker logs (to stderr)
    figures = asyncio.run(run(emails=args.emails, database_url=args.database))
    print(f"emails/s parsed and ticketed (one worker, MariaDB): {figures['emails_per_s']}"
          f"  ({figures['cpu_ms_per_email']} ms CPU each, MariaDB {figures['db_cpu_ms_per_email']} ms)")
    print(f"bare email-parser parses/s of the same mails:       {figures['bare_parses_per_s']}"
          f"  ({figures['bare_cpu_ms_per_email']} ms CPU each)")
    print(f"the desk's parse_mail alone, parses/s:               {figures['desk_parses_per_s']}")
    print(f"ratio desk/bare: {figures['ratio']}  SQL statements per email: {figures['sql_statements_per_email']}")
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
