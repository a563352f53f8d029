"""One rating per ticket: the later rating replaces the earlier, both kept; an agent's figures come from them."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.security.scope import SYSTEM
from app.staff.models import Staff
from app.tickets import ratings, states
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent, TicketRating
from tests import factories


async def _resolved(assignee: Staff | None = None) -> Ticket:
    customer = await factories.customer()
    t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款没到账",
                             assignee_id=assignee.id if assignee else None)
    return await states.transition(ticket_id=t.id, to="resolved", expected_version=t.version, actor=SYSTEM)


async def test_a_chat_rating_and_a_page_rating_are_one_rating_with_history(db: None) -> None:
    # observation 6: 5 in the 微信客服 chat, then 2 on the H5 page - two ratings nobody could see
    data = await factories.org()
    agent = data["people"]["agent"]
    t = await _resolved(agent)
    await ratings.record_rating(ticket_id=t.id, score=5, comment="", channel="wecom_kf", source="bot_survey",
                                ref="survey:1")
    await ratings.record_rating(ticket_id=t.id, score=5, comment="处理很快", channel="wecom_kf",
                                source="bot_survey", ref="survey:1")  # the survey's comment follows its score
    await ratings.record_rating(ticket_id=t.id, score=2, comment="其实没解决", channel="h5", source="h5_page")
    rating = await TicketRating.get(ticket_id=t.id)
    assert (rating.score, rating.comment, rating.channel, rating.source, rating.staff_id) == (  # type: ignore[attr-defined]
        2, "其实没解决", "h5", "h5_page", agent.id)
    assert [(h["score"], h["comment"], h["channel"], h["source"], h["staff_id"]) for h in rating.history] == [
        (5, "处理很快", "wecom_kf", "bot_survey", agent.id)]
    assert await TicketRating.all().count() == 1
    events = await TicketEvent.filter(ticket_id=t.id, kind="rated").order_by("id")
    assert [(e.actor_kind, e.new, e.data["source"], e.data["replaced"]) for e in events] == [
        ("customer", "5", "bot_survey", None), ("customer", "2", "h5_page", 5)]


async def test_a_bad_score_changes_nothing(db: None) -> None:
    t = await _resolved()
    for score in (0, 6):
        with pytest.raises(ValidationFailed) as exc:
            await ratings.record_rating(ticket_id=t.id, score=score, comment="", channel="h5", source="h5_page")
        assert exc.value.message == "评分必须是 1 到 5 分。"
    assert not await TicketRating.exists()
    assert not await TicketEvent.filter(kind="rated").exists()


async def test_the_rating_counts_for_the_agent_and_the_summary_is_current_ratings_only(db: None) -> None:
    data = await factories.org()
    agent, other = data["people"]["agent"], data["people"]["tech"]
    first, second, third = await _resolved(agent), await _resolved(agent), await _resolved(other)
    await ratings.record_rating(ticket_id=first.id, score=1, comment="", channel="h5", source="h5_page")
    await ratings.record_rating(ticket_id=first.id, score=4, comment="", channel="h5", source="h5_page")
    await ratings.record_rating(ticket_id=second.id, score=3, comment="", channel="h5", source="h5_page")
    await ratings.record_rating(ticket_id=third.id, score=5, comment="", channel="h5", source="h5_page")
    summary = await ratings.staff_summary(staff_id=agent.id)
    assert (summary.count, summary.average, summary.satisfied_share) == (2, 3.5, 0.5)
    empty = await ratings.staff_summary(staff_id=data["people"]["lead"].id)
    assert (empty.count, empty.average, empty.satisfied_share) == (0, None, None)
    assert await ratings.scores_for(ticket_ids=[first.id, second.id, 999]) == {first.id: 4, second.id: 3}
