"""`gongdan kb train`: confirmed pairs from the desk, an adapter kept only when it beats the plain model."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.kb import adapter, understanding
from app.kb.models import BotQuery, EmbeddingAdapter
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests import factories


def _rows(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_the_adapter_learns_a_map_the_plain_model_misses() -> None:
    rng = np.random.default_rng(0)
    n, signal, nuisance = 240, 6, 10
    meaning = rng.standard_normal((n, signal))
    # a question and its target share their meaning; each also carries loud words that say nothing (nuisance)
    targets = _rows(np.hstack([meaning, 1.2 * rng.standard_normal((n, nuisance))]))
    questions = _rows(np.hstack([meaning + 0.2 * rng.standard_normal((n, signal)),
                                 1.2 * rng.standard_normal((n, nuisance))]))
    groups = [str(i) for i in range(n)]
    w = adapter.fit(questions[:200], targets[:200], epochs=60)
    before = adapter.top1(questions[200:], groups[200:], targets, groups)
    after = adapter.top1(questions[200:], groups[200:], targets, groups, w)
    assert before < 0.6 and after >= 0.9, (before, after)
    assert np.allclose(np.linalg.norm(adapter.apply(w, questions[:3]), axis=1), 1.0, atol=1e-5)


def test_the_held_out_split_is_stable() -> None:
    picks = [adapter.held_out(f"a{i}") for i in range(1000)]
    assert picks == [adapter.held_out(f"a{i}") for i in range(1000)]
    assert 150 < sum(picks) < 250


async def test_pairs_come_from_phrasings_labelled_answers_and_merged_duplicates(db: None,
                                                                                articles: list[Any]) -> None:
    refund, password = articles[0], articles[1]
    await BotQuery.create(text="钱能退回来吗", best_article_id=refund.id, score=0.9, outcome="answered",
                          verdict="right", verdict_source="customer")
    await BotQuery.create(text="账号进不去", best_article_id=refund.id, score=0.5, outcome="menu", verdict="wrong",
                          verdict_source="agent", correct_article_id=password.id)
    await BotQuery.create(text="没人确认", best_article_id=refund.id, score=0.5, outcome="answered")
    customer = await factories.customer()
    kept = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="空调不制冷")
    dup = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="空调不凉了")
    await Ticket.filter(id=dup.id).update(merged_into_id=kept.id)
    pairs = await adapter.collect_pairs()
    assert adapter.Pair("怎么退钱", "如何申请退款", f"a{refund.id}") in pairs
    assert adapter.Pair("钱能退回来吗", "如何申请退款", f"a{refund.id}") in pairs
    assert adapter.Pair("账号进不去", "忘记登录密码怎么办", f"a{password.id}") in pairs
    assert adapter.Pair("空调不凉了", "空调不制冷", f"t{kept.id}") in pairs
    assert not any(p.question == "没人确认" for p in pairs)
    # 14 phrasings of the five articles, two labelled answers, one merge
    assert len(pairs) == 17


async def test_too_few_pairs_train_nothing(db: None, articles: list[Any]) -> None:
    class Flat:
        name, dim = "flat", 4

        def embed(self, texts: Any) -> np.ndarray:
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    report = await adapter.train(embedder=Flat())
    assert (report.kept, report.adapter_id, report.problem) == (False, None, "确认过的问答对只有 14 个，至少需要 40 个")
    assert await EmbeddingAdapter.all().count() == 0


async def test_an_active_adapter_is_used_on_top_of_the_model(db: None) -> None:
    class Identity:
        name, dim = "id-model", 2

        def embed(self, texts: Any) -> np.ndarray:
            return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))

    understanding.set_embedder(Identity())
    swap = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    import base64

    row = await EmbeddingAdapter.create(base_model="id-model", dim=2, weights=base64.b64encode(
        swap.astype("<f4").tobytes()).decode(), pairs=50, held_out=10, before=0.5, after=0.7, active=True)
    await understanding.refresh_adapter()
    model = understanding.get_embedder()
    assert model is not None and model.name == f"id-model+adapter{row.id}"
    assert np.allclose(model.embed(["x"]), [[0.0, 1.0]])
    assert understanding.base_embedder() is not None and understanding.base_embedder().name == "id-model"  # type: ignore[union-attr]
    understanding.reset()
