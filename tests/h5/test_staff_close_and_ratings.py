"""Staff pages: closing asks for a confirmation first, and the customer's one rating shows on the ticket page, in
list rows and in 我的评分."""

from __future__ import annotations

from app.conversations.models import Message
from app.customers import service as customers
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import closing, ratings, states
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent, TicketRating
from tests.h5.conftest import H5, csrf_of


async def _ticket(subject: str = "退款还没到账", *, assignee: str = "lina") -> Ticket:
    customer = await customers.create(name="王先生")
    g = await SkillGroup.get(name="一线客服组")
    staff = await Staff.get(userid=assignee)
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=subject, group_id=g.id,
                                assignee_id=staff.id)


def _form(html: str, ticket: Ticket, **data: str) -> dict[str, str]:
    return {"csrf_token": csrf_of(html), "version": str(ticket.version), "orig_status": ticket.status,
            "orig_priority": ticket.priority, "orig_assignee_id": str(ticket.assignee_id or ""),  # type: ignore[attr-defined]
            "status": ticket.status, "priority": ticket.priority,
            "assignee_id": str(ticket.assignee_id or ""), **data}  # type: ignore[attr-defined]


async def test_closing_a_new_unanswered_ticket_asks_first_and_applies_nothing(h5: H5) -> None:
    # observation 7: an agent closed a new ticket in one step
    ticket = await _ticket()
    await h5.login_staff("lina")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    r = await h5.client.post(f"/h5/tickets/{ticket.number}",
                             data=_form(page, ticket, action="reply", text="已退款", status="closed", reason="重复"))
    assert r.status_code == 200
    assert closing.UNANSWERED_WARNING in r.text and "确认关闭" in r.text
    assert '<input type="hidden" name="confirm" value="1">' in r.text
    assert (await Ticket.get(id=ticket.id)).status == "new"
    assert not await Message.filter(ticket_id=ticket.id).exists()
    assert not await TicketEvent.filter(ticket_id=ticket.id, kind="status_changed").exists()
    # the dialog's form carries everything typed; confirming applies it
    r = await h5.client.post(f"/h5/tickets/{ticket.number}", data=_form(
        r.text, ticket, action="reply", text="已退款", status="closed", reason="重复", confirm="1"))
    assert r.status_code == 303 and r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=replied"
    assert (await Ticket.get(id=ticket.id)).status == "closed"
    assert (await Message.get(ticket_id=ticket.id)).text == "已退款"


async def test_closing_an_answered_ticket_asks_the_plain_question(h5: H5) -> None:
    ticket = await _ticket()
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="师傅明天上门")
    ticket = await Ticket.get(id=ticket.id)
    await h5.login_staff("lina")
    page = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    r = await h5.client.post(f"/h5/tickets/{ticket.number}", data=_form(page, ticket, action="save", status="closed"))
    assert r.status_code == 200 and closing.CLOSE_WARNING in r.text
    assert (await Ticket.get(id=ticket.id)).status == "open"


async def test_the_rating_shows_on_the_ticket_page_in_rows_and_in_my_figures(h5: H5) -> None:
    # observation 6: staff saw neither the chat's 5 nor the page's 2
    ticket = await _ticket()
    ticket = await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version,
                                     actor=SYSTEM)
    await ratings.record_rating(ticket_id=ticket.id, score=5, comment="处理很快", channel="wecom_kf",
                                source="bot_survey")
    await ratings.record_rating(ticket_id=ticket.id, score=2, comment="其实没解决", channel="h5", source="h5_page")
    await h5.login_staff("lina")
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    assert '<div class="rating-now">客户评价：<span class="score">2 分</span> · 网页评价 · 其实没解决' in html
    assert '<li>此前：5 分 · 聊天评价（微信客服） · 处理很快' in html
    search = await h5.client.post("/h5/search", data={"csrf_token": csrf_of(html), "q": ticket.number})
    assert '<span class="rating rating-low">评价 2 分</span>' in search.text
    live = await _ticket("另一个问题")
    await Ticket.filter(id=live.id).update(status="open")
    await ratings.record_rating(ticket_id=live.id, score=4, comment="", channel="h5", source="h5_page")
    mine = (await h5.client.get("/h5/tickets")).text
    assert '<span class="rating">评价 4 分</span>' in mine
    assert '<p class="my-rating">我的评分：平均 3.0 分 · 共 2 次评价 · 满意（4-5 分）50%</p>' in mine


async def test_the_customer_rates_again_on_the_page_and_it_replaces_the_chat_rating(h5: H5) -> None:
    customer = await customers.resolve_identity(kind="mp_openid", scope="default", value="oMine", name="客户")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="门锁坏了")
    ticket = await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version,
                                     actor=SYSTEM)
    await ratings.record_rating(ticket_id=ticket.id, score=5, comment="", channel="wechat_mp", source="bot_survey")
    await h5.login_customer("oMine")
    page = (await h5.client.get(f"/h5/my/tickets/{ticket.number}")).text
    assert "您的评价：5 星" in page and "修改评价" in page
    r = await h5.post_form(f"/h5/my/tickets/{ticket.number}/rate", {"score": "2", "comment": "其实没解决"},
                           page=f"/h5/my/tickets/{ticket.number}")
    assert r.headers["location"] == f"/h5/my/tickets/{ticket.number}?notice=rated"
    rating = await TicketRating.get(ticket_id=ticket.id)
    assert (rating.score, rating.comment, rating.source, [h["score"] for h in rating.history]) == (
        2, "其实没解决", "h5_page", [5])
