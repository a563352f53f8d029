from __future__ import annotations

from typing import Any

import pytest

from app.conversations.models import Message
from app.errors import PermissionDenied, ValidationFailed
from app.kb import service as kb
from app.kb.models import ArticleVersion
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets import states
from tests import factories


async def test_every_edit_is_a_version_and_stale_edits_are_refused(db: None) -> None:
    a = await kb.create(actor=SYSTEM, title="如何申请退款", body="旧答案", questions=["退钱", "退钱", " "])
    assert (a.status, a.version, a.questions) == ("draft", 1, ["退钱"])
    a = await kb.update(actor=SYSTEM, article_id=a.id, expected_version=1, changes={"body": "新答案"})
    assert a.version == 2
    with pytest.raises(ValidationFailed) as err:
        await kb.update(actor=SYSTEM, article_id=a.id, expected_version=1, changes={"body": "x"})
    assert err.value.code == "version_conflict"
    a = await kb.restore(actor=SYSTEM, article_id=a.id, version=1)
    versions = await ArticleVersion.filter(article_id=a.id).order_by("version")
    assert [(v.version, v.snapshot["body"], v.note) for v in versions] == [
        (1, "旧答案", "创建"), (2, "新答案", "修改 body"), (3, "旧答案", "恢复到第 1 版")]


async def test_agents_write_drafts_but_only_leads_publish(db: None) -> None:
    org = await factories.org()
    agent = await factories.actor(org["people"]["agent"])
    lead = await factories.actor(org["people"]["lead"])
    a = await kb.create(actor=agent, title="发票怎么开")
    assert a.owner_id == org["people"]["agent"].id  # type: ignore[attr-defined]
    with pytest.raises(PermissionDenied):
        await kb.set_status(actor=agent, article_id=a.id, status="published")
    assert (await kb.set_status(actor=lead, article_id=a.id, status="published")).status == "published"


async def test_markdown_and_csv_round_trip(articles: list[Any]) -> None:
    md = kb.export_markdown(articles[:2])
    parsed = kb.parse_markdown(md)
    assert [(p["title"], p["questions"], p["status"]) for p in parsed] == [
        ("如何申请退款", ["怎么退钱", "退款流程是什么", "我想把钱退回来"], "published"),
        ("忘记登录密码怎么办", ["密码忘了", "登录不上去了怎么找回密码", "重置密码"], "published")]
    assert parsed[0]["body"] == articles[0].body
    rows = kb.parse_csv(kb.export_csv(articles[:2]))
    assert rows[1]["questions"] == "密码忘了|登录不上去了怎么找回密码|重置密码"
    new_md = "---\ntitle: 积分过期吗\nquestions: [积分有效期]\n---\n积分一年有效。\n"
    counts = await kb.import_articles(actor=SYSTEM, items=[*kb.parse_markdown(new_md), {**rows[0], "body": "改"}])
    assert counts == {"created": 1, "updated": 1}
    assert (await kb.get(article_id=articles[0].id)).body == "改"
    created = (await kb.list_articles(q="积分过期"))[0]
    assert (created.status, created.questions, created.body) == ("draft", ["积分有效期"], "积分一年有效。")


def test_markdown_without_front_matter_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        kb.parse_markdown("# 只是标题\n正文")


def test_customer_details_are_stripped() -> None:
    text = "王小明的手机 138 1234 5678，邮箱 wxm@example.com，订单 2026112500001 没退款"
    assert kb.strip_customer_details(text, names=("王小明",)) == \
        "客户的手机 ［已隐去］，邮箱 ［已隐去］，订单 ［已隐去］ 没退款"


async def test_a_resolved_ticket_becomes_a_draft_without_customer_details(db: None) -> None:
    customer = await factories.customer(name="王小明", phone="13812345678")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="订单 2026112500001 退款没到账",
                                  category="退款")
    await Message.create(ticket_id=ticket.id, customer_id=customer.id, direction="in", author_kind="customer",
                         text="王小明这边退款三天了还没到，电话13812345678")
    await tickets.reply(actor=SYSTEM, ticket_id=ticket.id, text="退款已原路退回，银行卡 1-3 个工作日到账。")
    with pytest.raises(ValidationFailed):
        await kb.draft_from_ticket(actor=SYSTEM, ticket_id=ticket.id)
    fresh = await tickets.get(actor=SYSTEM, ticket_id=ticket.id)
    await states.transition(ticket_id=ticket.id, to="resolved", expected_version=fresh.version, actor=SYSTEM)
    article = await kb.draft_from_ticket(actor=SYSTEM, ticket_id=ticket.id)
    assert (article.status, article.title, article.category, article.source_ticket_id) == (
        "draft", "订单 ［已隐去］ 退款没到账", "退款", ticket.id)
    assert article.questions == ["客户这边退款三天了还没到，电话［已隐去］"]
    assert article.body == "退款已原路退回，银行卡 1-3 个工作日到账。"


async def test_knowledge_gaps_group_similar_unanswered_questions(db: None) -> None:
    for text, outcome in [("怎么修改收货地址", "no_match"), ("收货地址怎么改", "no_match"),
                          ("修改收货地址", "handoff"), ("能开发票吗", "answered"), ("支持花呗分期吗", "no_match")]:
        await kb.record_query(channel="wecom_kf", customer_id=None, text=text, best_article_id=None, score=0.0,
                              outcome=outcome)
    gaps = await kb.knowledge_gaps()
    assert [(g["question"], g["count"]) for g in gaps] == [("怎么修改收货地址", 3), ("支持花呗分期吗", 1)]
    assert gaps[0]["examples"] == ["怎么修改收货地址", "收货地址怎么改", "修改收货地址"]
