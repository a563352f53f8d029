"""Measure the knowledge-base matcher and the anger check on outside data (never shipped, never in unit tests).

    python -m bench.kb_eval [--data ../shared/data] [--seed 0] [--quick]

FAQ matching (ATEC 2018 question pairs, ``atec/atec_nlp_sim_train.csv``): the label-1 pairs are linked into
paraphrase groups. With the seed, one question of each group becomes the article and another the customer's
question. The groups are shuffled and split in half: **dev** (used to choose the ranker, its weights and the
confidence thresholds) and **test** (reported). The index always holds every group's article, so each question
competes with all 8,455 articles. Reported per ranker: top-1 and top-3 accuracy, the coverage at 90% precision
(the confidence threshold is chosen on dev, then applied to test: the share of test questions the bot would
answer itself and the precision it reaches there), and the bot's hand-off rate under the production policy
(answer above the threshold, a top-3 menu above KB_MENU_THRESHOLD, otherwise no match; a question is handed off
unless it is answered correctly or the right article is in the menu). A second, smaller index (300 articles of
test groups) shows the same figures at a realistic knowledge-base size. Rankers compared in the same run:

* ``baseline``: character 1-2-gram TF-IDF cosine (scikit-learn), the plain reference;
* ``bm25-jieba``: BM25 (bm25s) over jieba words;
* ``lsa``: the baseline projected on 256 LSA dimensions fitted on the articles and the dev questions;
* ``gongdan``: the production matcher (app.kb.search.Matcher: jieba words + characters + pinyin, fused).

Anger check (waimai_10k reviews; negative = 0 counts as the complaint class): macro-F1 of the production lexicon
(app.kb.sentiment) on the whole set and on a held-out half, next to a majority-class baseline and a supervised
scikit-learn reference (character 1-3-gram TF-IDF + logistic regression trained on the other half).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.kb import sentiment
from app.kb.config import load_bot_config
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


def evaluate(scores: np.ndarray, dev: np.ndarray, test: np.ndarray, menu_threshold: float,
             answer_margin: float) -> dict[str, Any]:
    """Top-k accuracy on test, coverage at 90% precision (threshold from dev), and the bot's hand-off rate.

    Two confidences are tried on dev, the best score and its margin over the runner-up; the one that covers more
    dev questions at 90% precision is used on test.
    """
    gold = np.arange(scores.shape[0])
    top3 = np.argsort(-scores, axis=1)[:, :3]
    best = scores[gold, top3[:, 0]]
    margin = best - scores[gold, top3[:, 1]]
    correct = top3[:, 0] == gold
    in_top3 = (top3 == gold[:, None]).any(axis=1)
    choice: tuple[str, np.ndarray, float | None] = ("score", best, None)
    dev_cover = -1.0
    for name, conf in (("score", best), ("margin", margin)):
        t = threshold_for_precision(conf[dev], correct[dev], PRECISION_TARGET)
        cover = float((conf[dev] >= t).mean()) if t is not None else 0.0
        if cover > dev_cover:
            choice, dev_cover = (name, conf, t), cover
    name, conf, threshold = choice
    answered = conf[test] >= threshold if threshold is not None else np.zeros(len(test), dtype=bool)
    answered_precision = float(correct[test][answered].mean()) if answered.any() else float("nan")
    menu = (~answered) & (best[test] >= menu_threshold)
    resolved = (answered & correct[test]) | (menu & in_top3[test])
    # the shipped policy: answer on the configured margin, menu above the menu threshold
    shipped_answer = margin[test] >= answer_margin
    shipped_menu = (~shipped_answer) & (best[test] >= menu_threshold)
    shipped = (shipped_answer & correct[test]) | (shipped_menu & in_top3[test])
    return {
        "top1": float(correct[test].mean()),
        "top3": float(in_top3[test].mean()),
        "confidence": name if threshold is not None else "-",
        "threshold": threshold,
        "coverage": float(answered.mean()),
        "answered_precision": answered_precision,
        "menu_share": float(menu.mean()),
        "handoff_rate": float(1.0 - resolved.mean()),
        "shipped_answered": float(shipped_answer.mean()),
        "shipped_precision": float(correct[test][shipped_answer].mean()) if shipped_answer.any() else float("nan"),
        "shipped_handoff": float(1.0 - shipped.mean()),
    }


def run_matching(data: Path, seed: int, quick: bool) -> None:
    groups = load_groups(data / "atec" / "atec_nlp_sim_train.csv")
    articles, questions, dev, test = make_protocol(groups, seed)
    if quick:
        keep = 2000
        articles, questions = articles[:keep], questions[:keep]
        dev, test = np.arange(0, keep // 2), np.arange(keep // 2, keep)
    cfg = load_bot_config()
    menu_threshold = cfg.menu_threshold
    print(f"ATEC paraphrase groups: {len(groups)}; index: {len(articles)} articles; dev {len(dev)} / test "
          f"{len(test)} questions (seed {seed}); precision target {PRECISION_TARGET:.0%}; "
          f"shipped policy: answer margin {cfg.answer_margin}, menu threshold {menu_threshold}")
    small = np.sort(np.random.default_rng(seed).choice(test, size=min(300, len(test)), replace=False))
    small_dev = np.sort(np.random.default_rng(seed + 1).choice(dev, size=min(300, len(dev)), replace=False))
    header = f"{'ranker':12s} {'index':>6s} {'top1':>6s} {'top3':>6s} {'thresh':>8s} {'cover@90':>9s} " \
             f"{'prec':>6s} {'menu':>6s} {'handoff':>8s} {'shipped: answered':>18s} {'prec':>6s} {'handoff':>8s} " \
             f"{'secs':>6s}"
    print(header)
    for name, ranker in RANKERS.items():
        started = time.perf_counter()
        scores = ranker(articles, questions, dev)
        elapsed = time.perf_counter() - started
        _print_row(name, len(articles), evaluate(scores, dev, test, menu_threshold, cfg.answer_margin), elapsed)
        # the small index: 300 dev and 300 test articles, asked with their own groups' questions
        both = np.concatenate([small_dev, small])
        sub = scores[np.ix_(both, both)]
        result = evaluate(sub, np.arange(len(small_dev)), np.arange(len(small_dev), len(both)), menu_threshold,
                          cfg.answer_margin)
        _print_row(name, len(both), result, elapsed)
    _latency(articles, questions)


def _print_row(name: str, size: int, r: dict[str, Any], elapsed: float) -> None:
    thresh = "-" if r["threshold"] is None else f"{r['confidence'][0]}>{r['threshold']:.2f}"
    print(f"{name:12s} {size:6d} {r['top1']:6.3f} {r['top3']:6.3f} {thresh:>8s} {r['coverage']:9.3f} "
          f"{r['answered_precision']:6.3f} {r['menu_share']:6.3f} {r['handoff_rate']:8.3f} "
          f"{r['shipped_answered']:18.3f} "
          f"{r['shipped_precision']:6.3f} {r['shipped_handoff']:8.3f} {elapsed:6.1f}")


def _latency(articles: list[str], questions: list[str]) -> None:
    started = time.perf_counter()
    matcher = Matcher([Doc(article_id=i, texts=(a,)) for i, a in enumerate(articles)])
    built = time.perf_counter() - started
    sample = questions[:500]
    started = time.perf_counter()
    for q in sample:
        matcher.search(q, k=3)
    per_query = (time.perf_counter() - started) / len(sample)
    print(f"gongdan matcher: index of {len(articles)} articles built in {built:.2f} s; "
          f"one search {per_query * 1000:.2f} ms (mean of {len(sample)}, one thread)")


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
    args = parser.parse_args(argv)
    if not (args.data / "atec").is_dir():
        print(f"no evaluation data at {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    run_matching(args.data, args.seed, args.quick)
    run_anger(args.data, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
