from __future__ import annotations

from typing import Any

from app.kb import search as kbsearch
from app.kb import service as kb
from app.security.scope import SYSTEM


def test_normalize_drops_punctuation_and_width() -> None:
    assert kbsearch.normalize("  ＡＢＣ，退款？ ") == "abc退款"


def _matcher() -> kbsearch.Matcher:
    return kbsearch.Matcher([
        kbsearch.Doc(article_id=1, texts=("如何申请退款", "怎么退钱")),
        kbsearch.Doc(article_id=2, texts=("忘记登录密码怎么办", "密码忘了")),
        kbsearch.Doc(article_id=3, texts=("快递多久能到", "几天能收到货")),
    ])


def test_paraphrase_short_question_and_homophone_typo_find_the_article() -> None:
    m = _matcher()
    assert m.search("退钱", k=1)[0].article_id == 1
    assert m.search("我的密码忘记了", k=1)[0].article_id == 2
    # 退宽 is a homophone typo of 退款: only the pinyin view sees it
    hit = m.search("如何申请退宽", k=1)[0]
    assert hit.article_id == 1 and hit.matched == "如何申请退款"


def test_unrelated_text_finds_nothing_and_k_limits_articles() -> None:
    m = _matcher()
    assert m.search("ＸＹＺ", k=3) == []
    assert len(m.search("退款 密码 快递", k=2)) == 2
    assert len(m) == 3


def test_empty_matcher_answers_empty() -> None:
    assert kbsearch.Matcher([]).search("退款") == []


async def test_service_search_sees_only_published_and_follows_edits(articles: list[Any]) -> None:
    draft = await kb.create(actor=SYSTEM, title="退货地址在哪里", questions=["寄回地址"], status="draft")
    assert [r.article.id for r in await kb.search(query="寄回地址", k=1)] != [draft.id]
    await kb.set_status(actor=SYSTEM, article_id=draft.id, status="published")
    assert (await kb.search(query="寄回地址", k=1))[0].article.id == draft.id
    await kb.set_status(actor=SYSTEM, article_id=articles[0].id, status="retired")
    assert articles[0].id not in [r.article.id for r in await kb.search(query="如何申请退款", k=5)]
