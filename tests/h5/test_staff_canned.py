"""快捷回复 in the staff reply box (h5/staff_pages.py, staff/_canned.html): the agent's groups' and shared replies,
placeholders filled for the ticket, escaped into the page; a filled reply goes out exactly as inserted."""

from __future__ import annotations

import html as htmllib
import re

from app.conversations.models import Message
from app.customers import service as customers
from app.replies.models import CannedReply
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.h5.conftest import H5, csrf_of

GREETING = "{客户称呼}您好，您的工单 {工单号} 已收到，{客服姓名}会尽快处理。"


async def _ticket(*, group: str, customer_name: str = "王先生", assignee: str | None = None) -> Ticket:
    customer = await customers.create(name=customer_name)
    g = await SkillGroup.get(name=group)
    staff = await Staff.get(userid=assignee) if assignee else None
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款还没到账", group_id=g.id,
                                assignee_id=staff.id if staff else None)


async def _replies() -> None:
    first = await SkillGroup.get(name="一线客服组")
    after = await SkillGroup.get(name="售后组")
    await CannedReply.create(title="问候", category="通用", body=GREETING)
    await CannedReply.create(title="查物流", body="{customer}，请提供订单号，工单 {number}。{未知}", group=first)
    await CannedReply.create(title="退货地址", body="请寄回 <仓库> \"A\" 区", group=after)
    await CannedReply.create(title="停用的", body="不该出现", active=False)


def _offered(page: str) -> dict[str, str]:
    """The canned replies on the page: title -> the text a tap inserts."""
    block = page[page.index('id="canned"'):page.index("</details>")]
    return {htmllib.unescape(re.sub(r"<[^>]+>", "", title)).strip().split(" ")[-1]: htmllib.unescape(text)
            for text, title in re.findall(r'data-canned="([^"]*)"[^>]*>(.*?)</button>', block)}


async def test_an_agent_gets_shared_and_own_group_replies_filled_for_the_ticket(h5: H5) -> None:
    await _replies()
    ticket = await _ticket(group="一线客服组", assignee="lina")
    await h5.login_staff("lina")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert "快捷回复（2）" in page and "/static/h5/canned.js" in page
    assert _offered(page) == {
        "问候": f"王先生您好，您的工单 {ticket.number} 已收到，李娜会尽快处理。",
        "查物流": f"王先生，请提供订单号，工单 {ticket.number}。{{未知}}",
    }
    assert "退货地址" not in page and "不该出现" not in page


async def test_an_unknown_name_is_addressed_as_customer_and_markup_is_escaped(h5: H5) -> None:
    await _replies()
    ticket = await _ticket(group="售后组", customer_name="", assignee="wangfang")
    await h5.login_staff("wangfang")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert 'data-canned="请寄回 &lt;仓库&gt; &#34;A&#34; 区"' in page or (
        'data-canned="请寄回 &lt;仓库&gt; &quot;A&quot; 区"' in page)
    assert _offered(page)["问候"] == f"客户您好，您的工单 {ticket.number} 已收到，王芳会尽快处理。"
    assert set(_offered(page)) == {"问候", "退货地址"}


async def test_an_admin_gets_shared_and_the_tickets_group_replies(h5: H5) -> None:
    await _replies()
    ticket = await _ticket(group="售后组")
    await h5.login_staff("admin")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert set(_offered(page)) == {"问候", "退货地址"}


async def test_no_replies_no_block_and_an_inserted_reply_goes_out_as_shown(h5: H5) -> None:
    ticket = await _ticket(group="一线客服组", assignee="lina")
    await h5.login_staff("lina")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert 'id="canned"' not in page and "canned.js" not in page
    await _replies()
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    text = _offered(page)["问候"]
    r = await h5.client.post(f"/h5/tickets/{ticket.number}", data={
        "csrf_token": csrf_of(page), "version": str(ticket.version), "orig_status": ticket.status,
        "orig_priority": ticket.priority, "orig_assignee_id": str(ticket.assignee_id or ""),  # type: ignore[attr-defined]
        "status": ticket.status, "priority": ticket.priority,
        "assignee_id": str(ticket.assignee_id or ""), "text": text, "action": "reply"})  # type: ignore[attr-defined]
    assert r.status_code == 303
    message = await Message.get(ticket_id=ticket.id, direction="out")
    assert message.text == f"王先生您好，您的工单 {ticket.number} 已收到，李娜会尽快处理。"
