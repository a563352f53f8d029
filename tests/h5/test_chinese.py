"""Issue 10, observations 8 and 10 on the pages: every timeline entry reads in Chinese (no "客户 survey", no
"退款awaiting_customer", no "refund_code_sent"), and a lead sees masked personal data until an audited reveal."""

from __future__ import annotations

from typing import Any

from app.conversations.models import Message
from app.customers import service as customers
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.tickets.serializers import EVENT_LABELS
from approvals.service import KIND_LABELS
from approvals.service import STATUS_LABELS as APPROVAL_STATUS
from tests.h5.conftest import H5, csrf_of
from tests.untranslated import leaks, visible_text

#: one realistic row per event kind, as the code that writes it does
EVENTS: list[dict[str, Any]] = [
    {"kind": "created", "actor_kind": "system", "new": "new"},
    {"kind": "intake", "actor_kind": "system", "reason": "关键词：退款"},
    {"kind": "status_changed", "actor_kind": "staff", "old": "new", "new": "pending", "reason": "等客户补充"},
    {"kind": "assigned", "actor_kind": "system", "old": None, "new": "{lina}"},
    {"kind": "priority_changed", "actor_kind": "system", "old": "normal", "new": "urgent", "reason": "解决超时"},
    {"kind": "group_changed", "actor_kind": "staff", "old": "{group}", "new": "{group}"},
    {"kind": "updated", "actor_kind": "system", "old": '{"refund": {"status": "pending"}}',
     "new": '{"refund": {"status": "awaiting_customer"}}',
     "reason": f"{KIND_LABELS['refund']}{APPROVAL_STATUS['awaiting_customer']}"},
    {"kind": "merged", "actor_kind": "staff"},
    {"kind": "replied", "actor_kind": "staff"},
    {"kind": "note", "actor_kind": "staff"},
    {"kind": "customer_message", "actor_kind": "customer"},
    {"kind": "rated", "actor_kind": "customer", "new": "5"},
    {"kind": "survey", "actor_kind": "customer", "data": {"solved": True, "staff_id": None}},
    {"kind": "survey", "actor_kind": "customer", "data": {"solved": True, "rating": 4, "comment": "很满意"}},
    {"kind": "bot_handoff", "actor_kind": "bot", "reason": "客户要求人工"},
    {"kind": "delivery_failed", "actor_kind": "system", "reason": "微信客服发送失败：超过 48 小时"},
    {"kind": "delivery_unknown", "actor_kind": "system", "reason": "平台超时未答复，消息可能已送达也可能没有送达。",
     "data": {"outbox_id": 1, "channel": "wechat_mp"}},
    {"kind": "delivery_resent", "actor_kind": "staff", "actor_id": "{lina}", "data": {"outbox_id": 1}},
    {"kind": "kf_session", "actor_kind": "system", "new": "3", "reason": "微信客服会话在企业微信中变更"},
    {"kind": "queue_released", "actor_kind": "system", "reason": "技能组已开始工作，离开非工作时间队列"},
    {"kind": "sla_breached", "actor_kind": "system", "new": "first_response", "reason": "首次响应超时"},
    {"kind": "sla_escalated", "actor_kind": "system", "new": "2", "reason": "解决超时升级第2级"},
    {"kind": "escalation_fallback", "actor_kind": "system", "new": "admin",
     "reason": "工单超时升级（第3级）：首次响应：组织架构中没有可通知的上级，已转给兜底审批人管理员"},
    {"kind": "approval_requested", "actor_kind": "staff", "new": "退款 6800.00 元", "reason": "质量问题"},
    {"kind": "approval_step", "actor_kind": "staff", "new": "第1级同意", "reason": "同意"},
    {"kind": "approval_escalated", "actor_kind": "system", "new": "刘洋", "reason": "陈静 超时未审批"},
    {"kind": "approval_fallback", "actor_kind": "system", "new": "管理员",
     "reason": "组织架构中只找到 1 级审批人，退款 1500.00 元需要 2 级审批：第 2 级由兜底审批人管理员审批"},
    {"kind": "approval_cancelled", "actor_kind": "system", "reason": "企业微信审批已撤销"},
    {"kind": "approval_approved", "actor_kind": "customer", "new": "退款", "reason": "客户已回复验证码确认退款"},
    {"kind": "approval_rejected", "actor_kind": "staff", "new": "补偿", "reason": "未说明理由"},
    {"kind": "refund_code_sent", "actor_kind": "system"},
]


async def _busy_ticket() -> Ticket:
    """A ticket whose timeline holds every event kind and every message kind, with personal data in its texts."""
    customer = await customers.resolve_identity(kind="mp_openid", scope="default", value="oBusy", name="王先生")
    group = await SkillGroup.get(name="一线客服组")
    lina = await Staff.get(userid="lina")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款 电话１３６１２３４５６７１",
                                  description="邮箱 wang@example.com", group_id=group.id, phone="13612345671")
    ids = {"{lina}": str(lina.id), "{group}": str(group.id)}
    for spec in EVENTS:
        row: dict[str, Any] = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in spec.items()}
        await TicketEvent.create(ticket_id=ticket.id, **row)
    for direction, author, text, media in [
        ("in", "customer", "我的手机 13612345671，身份证 11010119900307123X", []),
        ("out", "staff", "已为您登记", []),
        ("internal", "staff", "客户邮箱 wang@example.com", []),
        ("in", "customer", "", [{"kind": "file", "path": "2024/12/a.pdf"}, {"kind": "voice", "path": "2024/12/b.amr"},
                                {"kind": "image", "path": "2024/12/c.jpg"}]),
    ]:
        await Message.create(ticket_id=ticket.id, customer_id=customer.id, direction=direction, author_kind=author,
                             msg_type="text", text=text, media=media, staff_id=lina.id if author == "staff" else None)
    return ticket


def test_every_event_kind_written_anywhere_has_a_label() -> None:
    assert {e["kind"] for e in EVENTS} == set(EVENT_LABELS)
    assert not [label for label in EVENT_LABELS.values() if leaks(label)]


async def test_the_staff_ticket_page_reads_in_chinese_and_masks_personal_data_for_a_lead(h5: H5) -> None:
    ticket = await _busy_ticket()
    await h5.login_staff("zhangwei")  # a lead: has the reveal right, still sees masked values
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    text = visible_text(html)
    assert leaks(text) == []
    for label in ("回访：问题已解决", "回访：问题已解决，评分 4 分，留言：很满意", "修改了工单（退款待客户确认）",
                  "已发送退款验证码", "首次响应超时", "技能组：一线客服组 → 一线客服组", "微信客服会话：由人工接待",
                  "超时升级至第 2 级", "审批已撤销（企业微信审批已撤销）", "附件（文件）", "附件（语音）"):
        assert label in text, label
    for secret in ("13612345671", "１３６１２３４５６７１", "wang@example.com", "11010119900307123X"):
        assert secret not in html
    assert "136****5671" in text and "w***@example.com" in text and "110***********123X" in text
    assert await AuditLog.all().count() == 0

    r = await h5.client.post(f"/h5/tickets/{ticket.number}/reveal",
                             data={"csrf_token": csrf_of(html), "reason": "回电"})
    assert r.status_code == 200 and 'href="tel:+8613612345671"' in r.text
    lead = await Staff.get(userid="zhangwei")
    assert await AuditLog.filter(staff_id=lead.id, object_id=str(ticket.id)).count() == 1


async def test_the_other_staff_pages_read_in_chinese(h5: H5) -> None:
    ticket = await _busy_ticket()
    await Ticket.filter(id=ticket.id).update(assignee_id=(await Staff.get(userid="zhangwei")).id)
    await h5.login_staff("zhangwei")
    for path in ("/h5/tickets", "/h5/queue", "/h5/search", "/h5/new", "/h5/approvals"):
        r = await h5.client.get(path)
        assert r.status_code == 200, path
        assert leaks(visible_text(r.text)) == [], path
    html = (await h5.client.get("/h5/tickets")).text
    assert "136****5671" in html and "13612345671" not in html


async def test_the_customer_ticket_page_reads_in_chinese(h5: H5) -> None:
    ticket = await _busy_ticket()
    await h5.login_customer("oBusy")
    for path in ("/h5/my/tickets", f"/h5/my/tickets/{ticket.number}", "/h5/my/new"):
        r = await h5.client.get(path)
        assert r.status_code == 200, path
        assert leaks(visible_text(r.text)) == [], path
