"""The scanner itself: it finds the leaks observed in issue 10 and does not flag legitimate content."""

from __future__ import annotations

import pytest

from tests.untranslated import leaks, visible_text


@pytest.mark.parametrize(("text", "found"), [
    ("客户 survey", ["survey"]),
    ("修改了工单（退款awaiting_customer）", ["awaiting_customer"]),
    ("系统 refund_code_sent · 10:30", ["refund_code_sent"]),
    ("字段 subject：Field required", ["Field", "required"]),
    ("状态：pending → resolved", ["pending", "resolved"]),
])
def test_it_finds_the_observed_leaks(text: str, found: list[str]) -> None:
    assert leaks(text) == found


@pytest.mark.parametrize("text", [
    "工单 GD-20241204-0001 已受理，详情见 https://desk.example.com/h5/my/tickets/GD-20241204-0001?x=open_now",
    "请在企业微信（WeCom）中打开；支持 JPG、PNG、GIF 或 WebP 图片，不超过 5 MB",
    "客户邮箱 z***@example.com，电话 138****5678，订单 SO_2024 号",  # fewer than 3 letters: an order number
    "首次响应剩 2小时5分 · SLA",
])
def test_it_does_not_flag_legitimate_content(text: str) -> None:
    assert leaks(text) == []


def test_visible_text_skips_scripts_styles_and_hidden_attributes() -> None:
    html = ('<style>.status-pending{}</style><script>var x = "refund_code_sent";</script>'
            '<div class="status status-awaiting_customer" data-name="survey">处理中</div>'
            '<input type="hidden" name="orig_status" value="pending"><textarea placeholder="回复客户"></textarea>'
            '<input type="submit" value="提交"><code>order_no</code>')
    assert visible_text(html) == "处理中\n回复客户\n提交"
