"""Chinese question matching for the knowledge base: one matcher serves the bot, agents' quick replies and self-service.

Each article is indexed by its title and every question phrasing. A query is compared with each phrasing by the
cosine of three TF-IDF views built with scikit-learn, fused with fixed weights:

* words from jieba's segmentation (meaning-bearing units: 退款, 花呗, 还款),
* character 1-2-grams (robust to segmentation mistakes, short questions and most typos),
* pinyin syllables and syllable pairs from pypinyin (homophone typos: 花被 -> hua bei, 退宽 -> tui kuan).

An article scores the best of its phrasings. The choice of views and weights is measured, not assumed:
``python -m bench.kb_eval`` compares it with a plain character TF-IDF baseline, BM25 (bm25s) over jieba words and
LSA on the ATEC question-pair data, and reports top-1/top-3 accuracy and the coverage at 90% precision.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: the weights of the word, character and pinyin views (chosen on the dev split of bench/kb_eval.py)
WEIGHTS = (1.0, 1.0, 0.5)
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Doc:
    """What the matcher indexes for one article: its id and the texts that ask for it."""

    article_id: int
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    article_id: int
    #: fused cosine in [0, 1]
    score: float
    #: the phrasing that matched best
    matched: str


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, punctuation and spaces dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _PUNCT.sub("", text)


_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    import jieba

    # jieba logs its dictionary loading at INFO on the root of its own logger; keep it out of ours
    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    with _jieba_lock:
        tok.initialize()
    return tok


def words(text: str) -> list[str]:
    """jieba words of a normalised text."""
    return [w for w in _tokenizer().lcut(text) if w.strip()]


def chars(text: str) -> list[str]:
    """Character unigrams and bigrams."""
    return list(text) + [text[i:i + 2] for i in range(len(text) - 1)]


def pinyin(text: str) -> list[str]:
    """Toneless pinyin syllables and syllable pairs (characters without pinyin pass through)."""
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(text)
    return syllables + [f"{a}_{b}" for a, b in itertools.pairwise(syllables)]


VIEWS: tuple[Callable[[str], list[str]], ...] = (words, chars, pinyin)


class Matcher:
    """An in-memory index over article phrasings (rebuilt when the published articles change)."""

    def __init__(self, docs: Sequence[Doc], *, weights: tuple[float, ...] = WEIGHTS) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.weights = weights
        self.rows: list[tuple[int, str]] = []
        for doc in docs:
            seen: set[str] = set()
            for text in doc.texts:
                norm = normalize(text)
                if norm and norm not in seen:
                    seen.add(norm)
                    self.rows.append((doc.article_id, text))
        self._vectorizers: list[Any] = []
        self._matrices: list[Any] = []
        if not self.rows:
            return
        normed = [normalize(text) for _, text in self.rows]
        for view in VIEWS:
            vec = TfidfVectorizer(analyzer=view, sublinear_tf=True)
            self._matrices.append(vec.fit_transform(normed))
            self._vectorizers.append(vec)

    def __len__(self) -> int:
        return len({article_id for article_id, _ in self.rows})

    def score_matrix(self, queries: Sequence[str]) -> Any:
        """Fused cosine of each query with every indexed phrasing (numpy array, queries x phrasings)."""
        import numpy as np

        total = np.zeros((len(queries), len(self.rows)))
        if not self.rows:
            return total
        normed = [normalize(q) for q in queries]
        for weight, vec, matrix in zip(self.weights, self._vectorizers, self._matrices, strict=True):
            total += weight * (vec.transform(normed) @ matrix.T).toarray()
        return total / sum(self.weights)

    def row_scores(self, query: str) -> Any:
        """Fused cosine of one query with every indexed phrasing (a numpy vector)."""
        return self.score_matrix([query])[0]

    def search(self, query: str, *, k: int = 3) -> list[Hit]:
        """The k best articles for a question, best first (articles with no overlap at all are left out)."""
        scores = self.row_scores(query)
        best: dict[int, Hit] = {}
        for index in scores.argsort()[::-1]:
            score = float(scores[index])
            if score <= 0.0:
                break
            article_id, text = self.rows[int(index)]
            if article_id not in best:
                best[article_id] = Hit(article_id=article_id, score=round(score, 4), matched=text)
                if len(best) == k:
                    break
        return list(best.values())


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) rather than on the first customer's question."""
    _tokenizer()
