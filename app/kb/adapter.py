"""Learning from the desk's own data: a linear adapter on top of the frozen sentence vectors (`gongdan kb train`).

Confirmed pairs, each a question and the text it belongs with:

* an article's alternative phrasings with its title (the knowledge base itself),
* questions the bot answered and an agent or the customer confirmed (or an agent corrected: the right article),
* a customer's pick from the bot's menu,
* tickets an agent merged as duplicates (subject with the surviving ticket's subject).

The adapter is ``f(x) = normalise(x W)`` with ``W`` starting at the identity, fitted with the in-batch contrastive
loss (InfoNCE, both directions) plus a pull towards the identity, in numpy on one CPU thread: a few thousand pairs
train in well under a minute. A fifth of the groups (by a hash of the group, so the split is stable) is held out:
the adapter is kept (stored active, and used by app.kb.understanding) only when its top-1 on the held-out questions
beats the plain model's. Reported either way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.kb.models import Article, BotQuery, EmbeddingAdapter
from app.logs import get_logger
from app.tickets.models import Ticket

log = get_logger(__name__)

HOLD_OUT = 0.2
MIN_PAIRS = 40
TEMPERATURE = 0.05
#: pull of W towards the identity (the adapter should bend the model, not replace it)
REGULARISE = 1e-3


@dataclass(frozen=True)
class Pair:
    question: str
    target: str
    #: which thing the pair is about (an article id, a ticket id): the held-out split and the evaluation use it
    group: str


async def collect_pairs() -> list[Pair]:
    """Every confirmed pair the desk has (duplicates dropped)."""
    pairs: list[Pair] = []
    titles: dict[int, str] = {}
    for a in await Article.filter(status="published"):
        titles[a.id] = a.title
        for q in a.questions or []:
            if q.strip() and q != a.title:
                pairs.append(Pair(q, a.title, f"a{a.id}"))
    rows = await BotQuery.filter(verdict__isnull=False).values_list("text", "verdict", "best_article_id",
                                                                    "correct_article_id")
    for text, verdict, best, correct in rows:
        article = best if verdict == "right" else correct
        if article is not None and int(article) in titles:
            pairs.append(Pair(str(text), titles[int(article)], f"a{article}"))
    merged = await Ticket.filter(merged_into_id__isnull=False).values_list("subject", "merged_into__subject",
                                                                           "merged_into_id")
    for subject, target, target_id in merged:
        if subject and target:
            pairs.append(Pair(str(subject), str(target), f"t{target_id}"))
    return list(dict.fromkeys(pairs))


def held_out(group: str) -> bool:
    """Whether a group's pairs are held out (a stable hash, the same on every run)."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HOLD_OUT


def _normalise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    return x / norms, norms


def apply(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Adapted, L2-normalised rows."""
    out, _ = _normalise(np.asarray(x, dtype=np.float32) @ w)
    return out.astype(np.float32)


def fit(questions: np.ndarray, targets: np.ndarray, *, epochs: int = 30, batch: int = 64, lr: float = 0.05,
        seed: int = 0) -> np.ndarray:
    """W (dim x dim) fitted with the symmetric in-batch contrastive loss, plain SGD with momentum."""
    rng = np.random.default_rng(seed)
    dim = questions.shape[1]
    w = np.eye(dim, dtype=np.float64)
    velocity = np.zeros_like(w)
    n = len(questions)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - 1, batch):
            idx = order[start:start + batch]
            if len(idx) < 2:
                continue
            q, t = questions[idx].astype(np.float64), targets[idx].astype(np.float64)
            u, v = q @ w, t @ w
            uh, un = _normalise(u)
            vh, vn = _normalise(v)
            s = uh @ vh.T / TEMPERATURE
            p_rows = np.exp(s - s.max(axis=1, keepdims=True))
            p_rows /= p_rows.sum(axis=1, keepdims=True)
            p_cols = np.exp(s - s.max(axis=0, keepdims=True))
            p_cols /= p_cols.sum(axis=0, keepdims=True)
            eye = np.eye(len(idx))
            ds = ((p_rows - eye) + (p_cols - eye)) / (2 * len(idx))
            duh = ds @ vh / TEMPERATURE
            dvh = ds.T @ uh / TEMPERATURE
            du = (duh - uh * (duh * uh).sum(axis=1, keepdims=True)) / un
            dv = (dvh - vh * (dvh * vh).sum(axis=1, keepdims=True)) / vn
            grad = q.T @ du + t.T @ dv + 2 * REGULARISE * (w - np.eye(dim))
            velocity = 0.9 * velocity - lr * grad
            w += velocity
    return w.astype(np.float32)


def top1(questions: np.ndarray, groups: Sequence[str], candidates: np.ndarray, candidate_groups: Sequence[str],
         w: np.ndarray | None = None) -> float:
    """Share of questions whose nearest candidate text belongs to their group."""
    if not len(questions):
        return 0.0
    q = apply(w, questions) if w is not None else questions
    c = apply(w, candidates) if w is not None else candidates
    best = np.argmax(q @ c.T, axis=1)
    return float(np.mean([candidate_groups[int(b)] == g for b, g in zip(best, groups, strict=True)]))


@dataclass(frozen=True)
class TrainReport:
    pairs: int
    held_out: int
    before: float
    after: float
    kept: bool
    adapter_id: int | None
    problem: str = ""


async def train(*, embedder: object | None = None, store: bool = True) -> TrainReport:
    """Fit an adapter on the confirmed pairs; keep it only if it beats the plain model on the held-out groups."""
    from app.kb import understanding

    model = embedder if embedder is not None else understanding.base_embedder()
    if model is None:
        return TrainReport(0, 0, 0.0, 0.0, False, None, "句向量模型不可用，无法训练")
    pairs = await collect_pairs()
    test = [p for p in pairs if held_out(p.group)]
    train_pairs = [p for p in pairs if not held_out(p.group)]
    if len(train_pairs) < MIN_PAIRS or not test:
        return TrainReport(len(pairs), len(test), 0.0, 0.0, False, None,
                           f"确认过的问答对只有 {len(pairs)} 个，至少需要 {MIN_PAIRS} 个")
    texts = sorted({t for p in pairs for t in (p.question, p.target)})
    vectors = await asyncio.to_thread(model.embed, texts)  # type: ignore[attr-defined]
    row = {t: i for i, t in enumerate(texts)}
    q_train = vectors[[row[p.question] for p in train_pairs]]
    t_train = vectors[[row[p.target] for p in train_pairs]]
    w = await asyncio.to_thread(fit, q_train, t_train)
    # candidates: every target text of every group, the held-out questions ranked against all of them
    candidates = sorted({(p.target, p.group) for p in pairs})
    c_vec = vectors[[row[t] for t, _ in candidates]]
    c_groups = [g for _, g in candidates]
    q_test = vectors[[row[p.question] for p in test]]
    groups = [p.group for p in test]
    before = top1(q_test, groups, c_vec, c_groups)
    after = top1(q_test, groups, c_vec, c_groups, w)
    kept = after > before
    adapter_id = None
    if store:
        row_ = await EmbeddingAdapter.create(
            base_model=str(model.name), dim=int(w.shape[0]),  # type: ignore[attr-defined]
            weights=understanding.to_text(w),
            pairs=len(train_pairs), held_out=len(test), before=before, after=after, active=kept)
        adapter_id = row_.id
        if kept:
            await EmbeddingAdapter.filter(active=True).exclude(id=row_.id).update(active=False)
            understanding.use_adapter(adapter_id=row_.id, weights=w)
    log.info("kb.adapter_trained", pairs=len(train_pairs), held_out=len(test), before=round(before, 3),
             after=round(after, 3), kept=kept)
    return TrainReport(len(train_pairs), len(test), before, after, kept, adapter_id)


def weights_of(row: EmbeddingAdapter) -> np.ndarray:
    """The stored W of an adapter."""
    from app.kb import understanding

    return understanding.from_text(row.weights, dim=row.dim)
