"""The API side of closing (a close needs "confirm": true) and of ratings (detail, list, the agent's figures)."""

from __future__ import annotations

from typing import Any

import httpx

from app.conversations.models import Message
from app.security.scope import SYSTEM
from app.tickets import closing, ratings, states
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from tests import factories


async def _setup() -> dict[str, Any]:
    data = await factories.org()
    agent = data["people"]["agent"]
    data["h"] = {"Authorization": f"Bearer {await factories.token(agent)}"}
    customer = await factories.customer()
    data["ticket"] = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款没到账",
                                          group_id=data["groups"]["service"].id, assignee_id=agent.id)
    return data


async def test_closing_without_confirmation_is_refused_and_changes_nothing(api: httpx.AsyncClient) -> None:
    # observation 7: an agent closed a new ticket in one step
    data = await _setup()
    t: Ticket = data["ticket"]
    r = await api.patch(f"/api/v1/tickets/{t.id}", headers=data["h"], json={"version": t.version, "status": "closed"})
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "confirmation_required", "message": closing.UNANSWERED_WARNING + closing.CONFIRM_HINT,
        "details": {"warning": "unanswered", "status": "new", "confirm_field": "confirm"}}
    assert (await Ticket.get(id=t.id)).status == "new"
    assert not await TicketEvent.filter(ticket_id=t.id, kind="status_changed").exists()
    r = await api.post(f"/api/v1/tickets/{t.id}/messages", headers=data["h"],
                       json={"text": "已处理", "status": "closed"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "confirmation_required")
    assert not await Message.filter(ticket_id=t.id).exists()
    r = await api.patch(f"/api/v1/tickets/{t.id}", headers=data["h"],
                        json={"version": t.version, "status": "closed", "confirm": True, "reason": "重复工单"})
    assert (r.status_code, r.json()["status"]) == (200, "closed")


async def test_a_close_after_a_reply_asks_the_plain_question(api: httpx.AsyncClient) -> None:
    data = await _setup()
    t: Ticket = data["ticket"]
    await tickets.reply(actor=SYSTEM, ticket_id=t.id, text="已为您退款")
    t = await Ticket.get(id=t.id)
    r = await api.patch(f"/api/v1/tickets/{t.id}", headers=data["h"], json={"version": t.version, "status": "closed"})
    assert (r.status_code, r.json()["error"]["message"], r.json()["error"]["details"]["warning"]) == (
        409, closing.CLOSE_WARNING + closing.CONFIRM_HINT, "close")
    r = await api.patch(f"/api/v1/tickets/{t.id}", headers=data["h"], json={"version": t.version, "status": "resolved"})
    assert (r.status_code, r.json()["status"]) == (200, "resolved")  # resolving asks the customer, no extra step


async def test_staff_see_the_rating_in_detail_list_and_their_figures(api: httpx.AsyncClient) -> None:
    data = await _setup()
    t: Ticket = data["ticket"]
    t = await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=SYSTEM)
    await ratings.record_rating(ticket_id=t.id, score=5, comment="很好，电话 13812345678", channel="wecom_kf",
                                source="bot_survey")
    await ratings.record_rating(ticket_id=t.id, score=2, comment="其实没解决", channel="h5", source="h5_page")
    r = await api.get(f"/api/v1/tickets/{t.id}", headers=data["h"])
    rating = r.json()["rating"]
    agent_id = data["people"]["agent"].id
    assert {k: rating[k] for k in ("score", "comment", "channel", "source", "source_label", "staff_id")} == {
        "score": 2, "comment": "其实没解决", "channel": "h5", "source": "h5_page", "source_label": "网页评价",
        "staff_id": agent_id}
    assert [(h["score"], h["comment"], h["source"]) for h in rating["history"]] == [
        (5, "很好，电话 138****5678", "bot_survey")]  # an agent without the reveal right sees phones masked
    items = (await api.get("/api/v1/tickets", headers=data["h"])).json()["items"]
    assert [(i["id"], i["rating"]) for i in items] == [(t.id, 2)]
    r = await api.get("/api/v1/staff/me/stats", headers=data["h"])
    assert r.status_code == 200
    assert r.json() == {"staff_id": agent_id, "ratings": {"count": 1, "average": 2.0, "satisfied_share": 0.0}}
