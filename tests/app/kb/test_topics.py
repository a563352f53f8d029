"""Hot topics and knowledge gaps: recent questions and tickets without a good article, clustered, ranked by volume
and growth; a draft article from a topic's best-resolved tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from app.conversations.models import Message
from app.errors import NotFound, ValidationFailed
from app.kb import topics
from app.kb.models import BotQuery
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketRating
from app.timeutil import utcnow
from tests import factories


def test_cluster_groups_similar_texts_and_keeps_the_first_as_leader() -> None:
    texts = ["优惠券怎么用不了", "优惠券用不了", "会员卡怎么注销", "优惠券怎么用不了", "注销会员卡"]
    assert topics.cluster(texts) == [[0, 1, 3], [2, 4]]
    assert topics.cluster([]) == []


def test_a_pair_with_two_vectors_is_scored_fused_and_any_other_pair_lexically() -> None:
    texts = ["优惠券怎么用不了", "折扣码无法使用", "会员卡怎么注销"]
    same = np.array([1.0, 0.0], dtype=np.float32)
    # lexically apart: three topics
    assert topics.cluster(texts) == [[0], [1], [2]]
    # the stored vectors say the first two mean the same: fused 0.2 * lexical + 0.8 * 1.0 joins them
    assert topics.cluster(texts, vectors=[same, same * 3, None]) == [[0, 1], [2]]
    # one side without a vector stays lexical: the second text has none
    other = np.array([0.0, 1.0], dtype=np.float32)
    assert topics.cluster(texts, vectors=[same, None, other]) == [[0], [1], [2]]
    # vectors far apart (cosine below the floor) keep lexical twins apart
    twins = ["优惠券怎么用不了", "优惠券怎么用不了呢"]
    assert topics.cluster(twins) == [[0, 1]]
    assert topics.cluster(twins, vectors=[same, other]) == [[0], [1]]


async def test_hot_topics_join_tickets_by_their_stored_vectors(db: None) -> None:
    customer = await factories.customer()
    a = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="优惠券怎么用不了")
    b = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="折扣码无法使用")
    seen: list[list[int]] = []

    async def vectors_for(*, ticket_ids: list[int]) -> dict[int, np.ndarray]:
        seen.append(sorted(ticket_ids))
        return {a.id: np.array([1.0, 0.0], dtype=np.float32), b.id: np.array([1.0, 0.0], dtype=np.float32)}

    assert [t["tickets"] for t in await topics.hot_topics(days=7)] == [1, 1]
    found = await topics.hot_topics(days=7, vectors_for=vectors_for)
    assert [(t["count"], t["tickets"]) for t in found] == [(2, 2)]
    assert seen == [sorted([a.id, b.id])]


async def _ask(text: str, *, days_ago: float = 0, outcome: str = "no_match") -> None:
    row = await BotQuery.create(text=text, outcome=outcome, score=0.1)
    await BotQuery.filter(id=row.id).update(created_at=utcnow() - timedelta(days=days_ago))


async def test_hot_topics_rank_by_volume_then_growth_and_skip_what_an_article_answers(
        db: None, articles: list[Any]) -> None:
    for _ in range(3):
        await _ask("优惠券怎么用不了")
    await _ask("优惠券用不了", days_ago=10)
    for _ in range(2):
        await _ask("会员卡怎么注销")
    await _ask("会员卡如何注销")
    # answered by the published article 忘记登录密码怎么办: not a gap
    for _ in range(5):
        await _ask("密码忘了")
    # an old topic that has gone quiet
    await _ask("积分商城打不开", days_ago=9)
    customer = await factories.customer()
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="优惠券怎么用不了")
    await Ticket.filter(id=ticket.id).update(status="resolved")
    found = await topics.hot_topics(days=7)
    assert [(t["label"], t["count"], t["previous"], t["growth"], t["questions"], t["tickets"]) for t in found] == [
        ("优惠券怎么用不了", 4, 1, 3.0, 4, 1), ("会员卡怎么注销", 3, 0, 3.0, 3, 0)]
    assert found[0]["examples"] == ["优惠券怎么用不了", "优惠券用不了"]
    assert found[0]["ticket_ids"] == [ticket.id]
    with pytest.raises(ValidationFailed):
        await topics.hot_topics(days=0)


async def test_a_draft_article_from_the_best_rated_resolved_tickets(db: None) -> None:
    customer = await factories.customer(name="张三")
    made = []
    for subject, reply, score in [("优惠券怎么用不了", "请在结算页勾选优惠券，张三。", 3),
                                  ("优惠券用不了 13812345678", "优惠券需满 100 元可用。", 5)]:
        t = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=subject)
        await Message.create(ticket_id=t.id, customer_id=customer.id, direction="out", author_kind="staff",
                             text=reply)
        await Ticket.filter(id=t.id).update(status="closed")
        await TicketRating.create(ticket_id=t.id, score=score, source="h5", at=utcnow())
        made.append(t)
    open_one = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="未解决的")
    article = await topics.draft_from_tickets(actor=SYSTEM, ticket_ids=[t.id for t in made] + [open_one.id])
    assert (article.status, article.title, article.source_ticket_id) == ("draft", "优惠券用不了 ［已隐去］", made[1].id)
    assert article.questions == ["优惠券怎么用不了"]
    assert article.body == "优惠券需满 100 元可用。\n\n请在结算页勾选优惠券，客户。"
    with pytest.raises(NotFound):
        await topics.draft_from_tickets(actor=SYSTEM, ticket_ids=[open_one.id])
