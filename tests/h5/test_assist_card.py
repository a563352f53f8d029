"""The 智能助手 card on the staff ticket page: suggestions with their reasons, 采纳/忽略 recorded, the bot's earlier
answer confirmed by the agent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.assist import service as assist
from app.assist.models import Suggestion
from app.customers import service as customers
from app.kb import understanding
from app.kb.models import Article, BotQuery
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.app.assist.conftest import DESK, BagEmbedder, close_ticket
from tests.h5.conftest import H5, csrf_of


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    understanding.set_embedder(BagEmbedder())
    assist.forget_index()
    assist._classifiers.clear()
    yield
    understanding.reset()
    assist.forget_index()
    assist._classifiers.clear()


async def test_the_card_shows_why_and_records_what_the_agent_did(h5: H5) -> None:
    customer = await customers.create(name="王先生")
    group = await SkillGroup.get(name="一线客服组")
    for subject, category, priority, reply in DESK * 2:
        closed = await close_ticket(customer.id, subject, category, priority, reply)
        await Ticket.filter(id=closed.id).update(group_id=group.id)
    lina = await Staff.get(userid="lina")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="我的退款怎么还没到账，你们太过分了",
                                  group_id=group.id, assignee_id=lina.id)
    article = await Article.create(title="如何申请退款", body="在订单页申请。", status="published")
    query = await BotQuery.create(customer_id=customer.id, text="退款多久到账", best_article_id=article.id, score=0.9,
                                  outcome="answered")
    await assist.embed_tickets()
    await assist.train(kind="category")
    await h5.login_staff("lina")
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}")).text
    card = html[html.index('id="assist"'):html.index('aria-label="时间线"')]
    assert "建议分类：<strong>退款</strong>" in card and "匹配词：退款" in card
    assert "客户情绪：<strong>愤怒/不满</strong>" in card and "建议语气：客户情绪激动" in card
    assert "相似的已解决工单" in card and "解决办法：" in card
    assert "“退款多久到账” → 如何申请退款" in card and "答对了" in card
    suggestion = await Suggestion.get(ticket_id=ticket.id, kind="category")
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/assist", data={
        "csrf_token": csrf_of(html), "suggestion_id": str(suggestion.id), "decision": "accepted"})
    assert r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=assist_accepted#assist"
    assert (await Ticket.get(id=ticket.id)).category == "退款"
    assert (await Suggestion.get(id=suggestion.id)).status == "accepted"
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/bot-verdict", data={
        "csrf_token": csrf_of(html), "query_id": str(query.id), "verdict": "right"})
    assert r.headers["location"] == f"/h5/tickets/{ticket.number}?notice=bot_verdict#assist"
    assert (await BotQuery.get(id=query.id)).verdict == "right"
    html = (await h5.client.get(f"/h5/tickets/{ticket.number}?notice=bot_verdict")).text
    assert "已确认答对" in html and "已记录机器人回答的对错" in html
    # a suggestion of another ticket is not reachable through this one
    other = await Suggestion.create(ticket_id=ticket.id - 1, kind="category", value="发票")
    r = await h5.client.post(f"/h5/tickets/{ticket.number}/assist", data={
        "csrf_token": csrf_of(html), "suggestion_id": str(other.id), "decision": "accepted"})
    assert r.status_code == 404
    # applied: the ticket now says 退款, so there is nothing left to suggest
    assert "建议分类" not in html
