from __future__ import annotations

from pathlib import Path

from app.conversations.models import Message
from app.customers import service as customers
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets import states
from app.tickets.models import Ticket, TicketEvent, TicketRating
from tests.h5.conftest import H5, csrf_of

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")


async def _customer_ticket(openid: str, subject: str) -> Ticket:
    customer = await customers.resolve_identity(kind="mp_openid", scope="default", value=openid, name="客户")
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=subject)


async def test_a_customer_sees_only_their_own_tickets(h5: H5) -> None:
    mine = await _customer_ticket("oMine", "我的<script>x</script>问题")
    theirs = await _customer_ticket("oTheirs", "别人的问题")
    await h5.login_customer("oMine")
    html = (await h5.client.get("/h5/my/tickets")).text
    assert mine.number in html and theirs.number not in html
    assert "&lt;script&gt;" in html and "<script>x" not in html
    r = await h5.client.get(f"/h5/my/tickets/{theirs.number}")
    assert r.status_code == 404
    staff_only = await h5.client.get("/h5/tickets")
    assert staff_only.status_code == 303 and staff_only.headers["location"].startswith("/h5/login")


async def test_progress_replies_and_no_internal_notes(h5: H5) -> None:
    ticket = await _customer_ticket("oMine", "门锁坏了")
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="师傅明天上门")
    await tickets.add_note(actor=SYSTEM, ticket_id=ticket.id, text="内部：这个客户投诉过两次")
    await h5.login_customer("oMine")
    html = (await h5.client.get(f"/h5/my/tickets/{ticket.number}")).text
    assert "师傅明天上门" in html and "投诉过两次" not in html
    assert '<li class="step step-done">受理</li><li class="step step-done step-now">处理中</li>' in html


async def test_message_with_a_photo_reopens_a_resolved_ticket(h5: H5, tmp_path: Path) -> None:
    ticket = await _customer_ticket("oMine", "门锁坏了")
    ticket = await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version, actor=SYSTEM)
    await h5.login_customer("oMine")
    page = await h5.client.get(f"/h5/my/tickets/{ticket.number}")
    r = await h5.client.post(f"/h5/my/tickets/{ticket.number}/message",
                             data={"csrf_token": csrf_of(page.text), "text": "还是打不开", "consent": "1"},
                             files={"photos": ("lock.png", PNG, "image/png")})
    assert r.headers["location"] == f"/h5/my/tickets/{ticket.number}?notice=sent"
    message = await Message.get(ticket_id=ticket.id, direction="in")
    assert (message.text, message.author_kind, message.media[0]["kind"], message.media[0]["size"]) == (
        "还是打不开", "customer", "image", len(PNG))
    assert (await Ticket.get(id=ticket.id)).status == "open"
    photo = await h5.client.get(f"/h5/my/media/{message.id}/0")
    assert (photo.status_code, photo.content, photo.headers["content-type"]) == (200, PNG, "image/png")
    stranger = h5.new_client()
    await h5.login_customer("oTheirs", stranger)
    assert (await stranger.get(f"/h5/my/media/{message.id}/0")).status_code == 404


async def test_rating_a_resolved_ticket_and_rating_again_replaces_it(h5: H5) -> None:
    ticket = await _customer_ticket("oMine", "门锁坏了")
    await h5.login_customer("oMine")
    page = (await h5.client.get(f"/h5/my/tickets/{ticket.number}")).text
    assert "提交评价" not in page
    await states.transition(ticket_id=ticket.id, to="resolved", expected_version=ticket.version, actor=SYSTEM)
    r = await h5.post_form(f"/h5/my/tickets/{ticket.number}/rate", {"score": "4", "comment": "很及时"},
                           page=f"/h5/my/tickets/{ticket.number}")
    assert r.headers["location"] == f"/h5/my/tickets/{ticket.number}?notice=rated"
    event = await TicketEvent.get(ticket_id=ticket.id, kind="rated")
    assert (event.actor_kind, event.new, event.reason, event.data) == (
        "customer", "4", "很及时", {"score": 4, "comment": "很及时", "channel": "h5", "source": "h5_page",
                                  "replaced": None})
    bad = await h5.post_form(f"/h5/my/tickets/{ticket.number}/rate", {"score": "9"},
                             page=f"/h5/my/tickets/{ticket.number}")
    assert bad.status_code == 422 and "请选择 1 到 5 星。" in bad.text
    again = await h5.post_form(f"/h5/my/tickets/{ticket.number}/rate", {"score": "1"},
                               page=f"/h5/my/tickets/{ticket.number}")
    assert again.status_code == 303
    rating = await TicketRating.get(ticket_id=ticket.id)
    assert (rating.score, rating.comment, [(h["score"], h["comment"]) for h in rating.history]) == (
        1, "", [(4, "很及时")])
    assert "您的评价：1 星" in (await h5.client.get(f"/h5/my/tickets/{ticket.number}")).text


async def test_new_ticket_from_wechat(h5: H5) -> None:
    await h5.login_customer("oNew")
    page = await h5.client.get("/h5/my/new")
    r = await h5.client.post("/h5/my/new", data={"csrf_token": csrf_of(page.text), "subject": "退款",
                                                 "description": "订单 2026112500777 退款没到账", "order_no": "",
                                                 "consent": "1"},
                             files={"photos": ("receipt.png", PNG, "image/png")})
    ticket = await Ticket.get()
    assert r.headers["location"] == f"/h5/my/tickets/{ticket.number}?notice=created"
    owner = await customers.find_by_identity(kind="mp_openid", scope="default", value="oNew")
    assert owner is not None and ticket.customer_id == owner.id  # type: ignore[attr-defined]
    assert (ticket.subject, ticket.order_no, ticket.custom_fields["source"]) == ("退款", "2026112500777", "h5")
    assert (await Message.get(ticket_id=ticket.id)).media[0]["content_type"] == "image/png"
    bad = await h5.client.post("/h5/my/new", data={"csrf_token": csrf_of(page.text), "description": "x",
                                                   "consent": "1"},
                               files={"photos": ("evil.png", b"<svg onload=alert(1)>", "image/png")})
    assert bad.status_code == 422 and "只能上传" in bad.text
