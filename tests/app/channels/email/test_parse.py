"""The corpus of real-shaped mail: what the desk reads out of each (pure, no database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.channels.email.parse import decode_bytes, parse_mail, sanitise_html, strip_quotes
from tests.app.channels.email.conftest import ADDRESS, fixture

OWN = {ADDRESS}
CST = timezone(timedelta(hours=8))


def test_outlook_chinese_reply_threads_on_our_id_and_drops_the_quoted_history() -> None:
    m = parse_mail(fixture("outlook_zh_reply.eml"), own=OWN)

    assert m.subject == "答复: 打印机报修 [GD-20261204-0001]"
    assert m.ticket_numbers == ["GD-20261204-0001"]
    assert (m.from_addr, m.from_name) == ("zhangwei@customer.cn", "张伟")
    assert m.date == datetime(2026, 12, 4, 10, 15, 31, tzinfo=CST)
    assert m.thread_ids == ["<gd1.0123456789abcdef@example.com>", "<CAFirstMail@mail.customer.cn>"]
    assert m.text == "好的，打印机型号是 HP M227，今天上午又卡纸了三次。\n\n张伟\n市场部 | 某某科技有限公司"
    assert "您好，我们已收到您的问题" in m.full_text
    assert (m.auto, m.is_bounce, m.attachments) == ("", False, [])


def test_outlook_html_is_sanitised() -> None:
    html = parse_mail(fixture("outlook_zh_reply.eml")).html

    assert "<script" not in html and "alert(1)" not in html and "<style" not in html
    assert "javascript:" not in html and "onclick" not in html
    assert '<a rel="noopener noreferrer nofollow">link</a>' in html
    assert "<div>好的，打印机型号是 HP M227，今天上午又卡纸了三次。</div>" in html


def test_foxmail_gbk_labelled_gb2312_with_a_gbk_encoded_file_name() -> None:
    m = parse_mail(fixture("foxmail_gbk.eml"), own=OWN)

    assert m.subject == "订单一直没有发货"
    assert (m.from_addr, m.from_name) == ("lizhe@qq.com", "李喆")  # 喆 is outside GB2312
    assert m.text == "您好：\n我的订单号 202612040012345678 一直没有发货，请帮忙查一下。李喆"
    assert "原始邮件" in m.full_text
    [pdf] = m.attachments
    assert (pdf.filename, pdf.content_type, pdf.inline) == ("发货单.pdf", "application/octet-stream", False)
    assert pdf.content.startswith(b"%PDF-1.4")


def test_out_of_office_reply_is_marked_automatic() -> None:
    m = parse_mail(fixture("auto_reply.eml"), own=OWN)

    assert m.auto == "auto_submitted"
    assert m.text == "您好，我正在休假，12月10日返回，期间邮件不能及时回复。"
    assert m.thread_ids == ["<gd2.0123456789abcdef@example.com>"]


def test_delivery_status_report_is_a_bounce_about_our_message() -> None:
    m = parse_mail(fixture("bounce.eml"), own=OWN)

    assert m.is_bounce
    assert (m.bounced_ids, m.bounce_status) == (["gd5.0123456789abcdef"], "5.1.1")


def test_a_mailer_daemon_notice_without_a_report_part_is_a_bounce() -> None:
    raw = (b"From: Mail Delivery Subsystem <mailer-daemon@qq.com>\r\nTo: support@example.com\r\n"
           b"Subject: =?utf-8?b?57O757uf6YCA5L+h?=\r\nMessage-ID: <b2@qq.com>\r\n\r\n"
           b"Original message: Message-ID: <gd7.00112233445566ff@example.com>\r\n")
    m = parse_mail(raw)

    assert m.subject == "系统退信"
    assert (m.is_bounce, m.bounced_ids, m.bounce_status) == (True, ["gd7.00112233445566ff"], "")


def test_a_forwarded_chain_keeps_the_forwarded_mail_and_drops_the_signature() -> None:
    m = parse_mail(fixture("forwarded.eml"), own=OWN)

    assert m.is_forward
    assert m.text.startswith("请看下面客户的投诉，麻烦跟进。\n\n---------- Forwarded message ---------\n")
    assert m.text.endswith("你们承诺三天内退款，已经一周了还没到账，订单号 202611280099887766。")


def test_html_only_mail_with_an_inline_image_and_an_rfc2231_file_name() -> None:
    m = parse_mail(fixture("html_inline_image.eml"), own=OWN)

    assert m.text == "屏幕上出现这个错误：\n\n谢谢！"  # Gmail's "…于…写道：" and the quote are cut
    assert '<img src="cid:ii_lq1" alt="image.png">' in m.html
    assert "onerror" not in m.html
    image, csv = m.attachments
    assert (image.filename, image.content_type, image.content_id, image.inline) == (
        "image.png", "image/png", "ii_lq1", True)
    assert image.content.startswith(b"\x89PNG")
    assert (csv.filename, csv.content_type, csv.inline) == ("错误日志.csv", "text/csv", False)


def test_bulk_mail_is_marked_automatic() -> None:
    m = parse_mail(fixture("bulk_list.eml"), own=OWN)

    assert (m.auto, m.text) == ("precedence", "全场五折起。")


def test_mail_from_our_own_address_is_marked() -> None:
    raw = b"From: support@example.com\r\nSubject: x\r\nMessage-ID: <o@example.com>\r\n\r\nhello\r\n"

    assert parse_mail(raw, own=OWN).auto == "own_address"


def test_other_loop_headers() -> None:
    base = b"From: a@b.cn\r\nSubject: x\r\nMessage-ID: <l@b.cn>\r\n"
    assert parse_mail(base + b"X-Loop: helpdesk\r\n\r\nhi\r\n").auto == "x_loop"
    assert parse_mail(base + b"X-Auto-Response-Suppress: OOF\r\n\r\nhi\r\n").auto == "auto_response_suppress"
    assert parse_mail(base + b"Auto-Submitted: no\r\n\r\nhi\r\n").auto == ""
    assert parse_mail(base + b"Precedence: list\r\n\r\nhi\r\n").auto == "precedence"


def test_a_plain_utf8_mail_loses_its_signature() -> None:
    m = parse_mail(fixture("new_utf8.eml"), own=OWN)

    assert (m.subject, m.from_name, m.message_id) == ("发票抬头开错了", "刘洋", "<new-mail-0001@customer.cn>")
    assert m.text == "你好，发票抬头开错了，请重开。"
    assert m.full_text.endswith("刘洋 13800138000")


def test_quotes_of_chinese_clients() -> None:
    foxmail = "收到，谢谢。\n\n------------------ 原始邮件 ------------------\n发件人: \"客服\"<s@e.com>;\n正文"
    apple = "好的\n\n在 2026年12月3日，15:00，客服 <s@e.com> 写道：\n\n> 请提供订单号"
    outlook_fullwidth = ("已处理\n\n发件人：客服 <s@e.com>\n发送时间：2026年12月3日 15:00\n收件人：我\n主题：回复\n\n"
                         "旧内容")

    assert strip_quotes(foxmail) == "收到，谢谢。"
    assert strip_quotes(apple) == "好的"
    assert strip_quotes(outlook_fullwidth) == "已处理"


def test_bodies_in_gbk_gb18030_and_utf8() -> None:
    assert decode_bytes("喆".encode("gbk"), "gb2312") == "喆"
    assert decode_bytes("𠀀".encode("gb18030"), "gb18030") == "𠀀"
    assert decode_bytes("你好".encode(), None) == "你好"
    assert decode_bytes("你好".encode("gbk"), "utf-8") == "你好"  # mislabelled: the GB18030 fallback reads it


def test_sanitise_keeps_text_and_drops_active_content() -> None:
    assert sanitise_html('<p onclick="x()">hi<iframe src="https://e"></iframe></p>') == "<p>hi</p>"
