from __future__ import annotations

import re
from datetime import timedelta

from app.conversations.models import Message
from app.customers import service as customers
from app.outbox.models import OutboxMessage
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import utcnow
from tests.h5.conftest import H5, csrf_of


async def _ticket(subject: str = "退款还没到账", *, group: str = "一线客服组", assignee: str | None = None,
                  phone: str | None = None, customer_name: str = "王先生") -> Ticket:
    customer = await customers.create(name=customer_name)
    g = await SkillGroup.get(name=group)
    staff = await Staff.get(userid=assignee) if assignee else None
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=subject, group_id=g.id,
                                assignee_id=staff.id if staff else None, phone=phone)


async def test_my_tickets_newest_first_with_priority_customer_channel_and_overdue_sla(h5: H5) -> None:
    old = await _ticket("旧的问题", assignee="lina")
    new = await _ticket("新的问题", assignee="lina", customer_name="李女士")
    await Ticket.filter(id=old.id).update(priority="urgent", first_response_due=utcnow() - timedelta(minutes=30))
    await _ticket("别人的问题", assignee="wangfang", group="售后组")
    await h5.login_staff("lina")
    html = (await h5.client.get("/h5/tickets")).text
    assert html.index(new.number) < html.index(old.number)
    assert "别人的问题" not in html
    row = html[html.index(old.number) - 400: html.index(old.number) + 900]
    assert "紧急" in row and "王先生" in row and "后台录入" in row
    assert re.search(r'class="sla sla-over"[^>]*>首次响应超时 30分<', row)


async def test_queue_claim_and_the_second_claim_conflicts(h5: H5) -> None:
    ticket = await _ticket("没人领的问题")
    await h5.login_staff("lina")
    html = (await h5.client.get("/h5/queue")).text
    assert ticket.number in html and "领取" in html
    token = csrf_of(html)
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/claim", data={"csrf_token": token, "version": "1"})
    assert r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=claimed"
    lina = await Staff.get(userid="lina")
    assert (await Ticket.get(id=ticket.id)).assignee_id == lina.id  # type: ignore[attr-defined]
    other = h5.new_client()
    await h5.login_staff("zhangwei", other)
    token = csrf_of((await other.get("/h5/queue")).text)
    r = await other.post(f"/h5/tickets/{ticket.number}/claim", data={"csrf_token": token, "version": "1"})
    assert r.headers["location"] == "/h5/queue?notice=claim_conflict"
    assert (await Ticket.get(id=ticket.id)).assignee_id == lina.id  # type: ignore[attr-defined]


async def test_ticket_page_escapes_and_masks(h5: H5) -> None:
    ticket = await _ticket("<script>alert(1)</script> 电话 13812345678", phone="13812345678")
    await h5.login_staff("lina")
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 电话 138****5678" in html
    assert "13812345678" not in html
    assert "/reveal" not in html  # an agent without the right sees no 显示 button


async def test_reveal_is_audited(h5: H5) -> None:
    ticket = await _ticket("回电", phone="13812345678")
    await h5.login_staff("zhangwei")  # a lead may reveal
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    assert f"/h5/tickets/{ticket.number}/reveal" in page.text
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/reveal",
                             data={"csrf_token": csrf_of(page.text), "reason": "回电确认地址"})
    assert r.status_code == 200 and 'href="tel:+8613812345678"' in r.text
    log = await AuditLog.get()
    assert (log.action, log.object_type, log.object_id, log.field, log.reason) == (
        "reveal", "ticket", str(ticket.id), "phone", "回电确认地址")


async def _act(h5: H5, ticket: Ticket, **data: str) -> tuple[str, object]:
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    form = {"csrf_token": csrf_of(page), "version": str(ticket.version), "orig_status": ticket.status,
            "orig_priority": ticket.priority, "orig_assignee_id": str(ticket.assignee_id or ""),  # type: ignore[attr-defined]
            "status": ticket.status, "priority": ticket.priority,
            "assignee_id": str(ticket.assignee_id or ""), **data}  # type: ignore[attr-defined]
    return page, await h5.client.post(f"/h5/tickets/{ticket.number}", data=form)


async def test_reply_with_a_status_change(h5: H5) -> None:
    ticket = await _ticket(assignee="lina")
    await h5.login_staff("lina")
    _, r = await _act(h5, ticket, text="已为您加急处理", action="reply", status="pending")
    assert r.status_code == 303 and r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=replied"  # type: ignore[attr-defined]
    message = await Message.get(ticket_id=ticket.id, direction="out")
    lina = await Staff.get(userid="lina")
    assert (message.text, message.staff_id, message.author_kind) == ("已为您加急处理", lina.id, "staff")  # type: ignore[attr-defined]
    assert (await Ticket.get(id=ticket.id)).status == "pending"
    assert await OutboxMessage.filter(dedupe_key=f"reply:message:{message.id}").exists()


async def test_conflict_keeps_everything_typed_and_sends_nothing(h5: H5) -> None:
    ticket = await _ticket(assignee="lina")
    await h5.login_staff("lina")
    stale = ticket
    await tickets.update(actor=SYSTEM, ticket_id=ticket.id, expected_version=1, changes={"priority": "high"})
    _, r = await _act(h5, stale, text="这段回复<b>不能丢</b>", action="reply", status="resolved", reason="已退款")
    assert r.status_code == 409  # type: ignore[attr-defined]
    html = r.text  # type: ignore[attr-defined]
    assert "工单已被他人修改：现在是「新建」、优先级「高」、处理人「李娜」。你填写的内容已保留" in html
    assert ">这段回复&lt;b&gt;不能丢&lt;/b&gt;</textarea>" in html
    assert '<option value="resolved" selected>' in html and 'value="已退款"' in html
    assert 'name="version" value="2"' in html
    assert not await Message.filter(ticket_id=ticket.id, direction="out").exists()


async def test_internal_note_and_priority_change(h5: H5) -> None:
    ticket = await _ticket(assignee="lina")
    await h5.login_staff("lina")
    _, r = await _act(h5, ticket, text="客户很着急", action="note", priority="urgent")
    assert r.status_code == 303  # type: ignore[attr-defined]
    note = await Message.get(ticket_id=ticket.id)
    assert (note.direction, note.text, note.outbox_id) == ("internal", "客户很着急", None)
    assert (await Ticket.get(id=ticket.id)).priority == "urgent"
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert "内部备注" in html and "优先级：普通 → 紧急" in html


async def test_search_by_phone_is_a_post(h5: H5) -> None:
    customer = await customers.create(name="赵先生", phone="13900001111")
    g = await SkillGroup.get(name="一线客服组")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="发票", group_id=g.id)
    await h5.login_staff("lina")
    r = await h5.post_form("/h5/search", {"q": "13900001111"})
    assert r.status_code == 200 and ticket.number in r.text
    r = await h5.post_form("/h5/search", {"q": ticket.number})
    assert ticket.number in r.text


async def test_new_ticket_for_a_new_customer_is_mine(h5: H5) -> None:
    await h5.login_staff("lina")
    r = await h5.post_form("/h5/new", {"customer": "13700002222", "subject": "空调不制冷", "description": "三天了",
                                       "order_no": "2026112500009", "priority": "high"})
    ticket = await Ticket.get()
    assert r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=created"
    lina = await Staff.get(userid="lina")
    assert (ticket.subject, ticket.priority, ticket.order_no, ticket.assignee_id) == (  # type: ignore[attr-defined]
        "空调不制冷", "high", "2026112500009", lina.id)


async def test_sidebar_finds_the_contact_and_prefills_from_the_conversation(h5: H5) -> None:
    customer = await customers.resolve_identity(kind="external_userid", value="wmExternal0001", name="周女士")
    await Message.create(customer=customer, direction="in", author_kind="customer",
                         text="订单 2026112500123 少发了一件")
    old = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="上次的问题",
                               group_id=(await SkillGroup.get(name="一线客服组")).id)
    await h5.login_staff("lina")
    r = await h5.post_form("/h5/sidebar", {"external_userid": "wmExternal0001"})
    assert "周女士" in r.text and old.number in r.text
    assert 'name="order_no" value="2026112500123"' in r.text
    assert "订单 2026112500123 少发了一件</textarea>" in r.text
    r = await h5.post_form("/h5/sidebar/create", {"external_userid": "wmExternal0001", "subject": "少发一件",
                                                  "description": "补发", "order_no": "2026112500123"},
                           page="/h5/sidebar")
    created = await Ticket.filter(subject="少发一件").get()
    assert created.customer_id == customer.id  # type: ignore[attr-defined]
    assert r.headers["location"] == f"/h5/tickets/{created.number}?notice=created"


async def test_approvals_empty_state(h5: H5) -> None:
    await h5.login_staff("lina")
    r = await h5.client.get("/h5/approvals")
    assert r.status_code == 200 and "没有等待你审批的申请" in r.text
