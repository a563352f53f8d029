"""Approvals in the H5 workbench (issue 10, observation 11): the ticket page asks for an approval, and the approval
card lands on the approval's own page where the approver decides."""

from __future__ import annotations

import re

from app.customers import service as customers
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from approvals.models import ApprovalRequest
from tests.h5.conftest import H5, csrf_of


async def _ticket(*, assignee: str = "lina") -> Ticket:
    customer = await customers.create(name="王先生")
    group = await SkillGroup.get(name="一线客服组")
    staff = await Staff.get(userid=assignee)
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款还没到账", group_id=group.id,
                                assignee_id=staff.id)


async def _ask(h5: H5, ticket: Ticket, **form: str) -> tuple[int, str, str]:
    page = await h5.client.get(f"/h5/tickets/{ticket.number}")
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/approval",
                             data={"csrf_token": csrf_of(page.text), **form})
    return r.status_code, r.headers.get("location", ""), r.text


async def test_the_ticket_page_requests_an_approval(h5: H5) -> None:
    ticket = await _ticket()
    await h5.login_staff("lina")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert f'action="/h5/tickets/{ticket.number}/approval"' in page and "申请审批" in page
    status, location, _ = await _ask(h5, ticket, kind="refund", amount="1500", reason="商品破损，全额退款")
    assert (status, location) == (303, f"/h5/tickets/{ticket.number}?notice=approval_requested")
    req = await ApprovalRequest.get(ticket_id=ticket.id)
    zhangwei, admin = await Staff.get(userid="zhangwei"), await Staff.get(userid="admin")
    assert (req.kind, req.params, req.reason, req.chain) == (
        "refund", {"amount": "1500.00"}, "商品破损，全额退款", [zhangwei.id, admin.id])
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}?notice=approval_requested")).text
    assert "审批申请已提交" in html
    # the ticket says the second level went to the fallback approver
    assert ("兜底审批人接手：管理员（组织架构中只找到 1 级审批人，退款 1500.00 元需要 2 级审批："
            "第 2 级由兜底审批人管理员审批）") in html


async def test_bad_approval_forms_keep_the_page_and_change_nothing(h5: H5) -> None:
    ticket = await _ticket()
    await h5.login_staff("lina")
    for form, message in [
        ({"kind": "refund", "amount": "abc", "reason": "退款"}, "请填写金额"),
        ({"kind": "refund", "amount": "1500", "reason": " "}, "请填写申请理由"),
        ({"kind": "bogus", "amount": "", "reason": "随便"}, "请选择审批类型"),
        ({"kind": "transfer", "group_id": "x", "reason": "转财务"}, "目标技能组不存在"),
    ]:
        status, _, html = await _ask(h5, ticket, **form)
        assert status == 422 and message in html, form
        assert 'action="/h5/tickets/' in html  # the ticket page again, with the error
    assert await ApprovalRequest.all().count() == 0
    assert await TicketEvent.filter(ticket_id=ticket.id, kind__startswith="approval").count() == 0


async def test_the_approval_page_shows_the_request_and_takes_the_decision(h5: H5) -> None:
    ticket = await _ticket()
    await h5.login_staff("lina")
    await _ask(h5, ticket, kind="refund", amount="1500", reason="商品破损，全额退款")
    req = await ApprovalRequest.get(ticket_id=ticket.id)

    lead = h5.new_client()
    await h5.login_staff("zhangwei", lead)
    page = await lead.get(f"/h5/approvals/{req.id}")
    assert page.status_code == 200
    assert "退款 1500.00 元" in page.text and "商品破损，全额退款" in page.text and "第1/2级" in page.text
    assert f'href="/h5/tickets/{ticket.number}"' in page.text
    assert f'action="/h5/approvals/{req.id}"' in page.text  # my turn: the decision form
    r = await lead.post(f"/h5/approvals/{req.id}", data={"csrf_token": csrf_of(page.text), "decision": "approve",
                                                         "comment": "同意"})
    assert r.status_code == 303

    admin = h5.new_client()
    await h5.login_staff("admin", admin)
    page = await admin.get(f"/h5/approvals/{req.id}")
    assert "第2/2级" in page.text and f'action="/h5/approvals/{req.id}"' in page.text
    assert re.search(r"张伟\s*·\s*同意", page.text)

    # the requester sees it without a decision form; someone outside the ticket's scope gets nothing
    page = await h5.client.get(f"/h5/approvals/{req.id}")
    assert page.status_code == 200 and f'action="/h5/approvals/{req.id}"' not in page.text
    assert "等待 管理员 审批" in page.text
    other = h5.new_client()
    await h5.login_staff("wangfang", other)
    assert (await other.get(f"/h5/approvals/{req.id}")).status_code == 404
    assert (await other.get("/h5/approvals/99999")).status_code == 404
