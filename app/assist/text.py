"""The pure parts of ticket assistance: lexical features, the classifier's arithmetic, the extractive summary and
the emotion hint. No database, no model loading: the service feeds them stored vectors and texts.

Features of a ticket text: jieba words (2+ characters) and character bigrams of the normalised text, hashed into
``HASH_FEATURES`` columns (sublinear counts, L2-normalised), beside the sentence vector when there is one. Hashing
keeps the model a plain matrix of numbers (stored in the database, never pickled) and lets the "why" of a
suggestion name the words that pushed it: each token's column is known.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.utils import murmurhash3_32

from app.conversations.config import ConversionRules
from app.conversations.extract import extract
from app.kb import search as kbsearch
from app.kb import sentiment

#: hashed lexical columns
HASH_FEATURES = 1 << 14
#: how much the sentence vector counts beside the (unit-length) lexical part
DENSE_WEIGHT = 1.0


def tokens(text: str) -> list[str]:
    """Words of two or more characters and character bigrams of a normalised text."""
    norm = kbsearch.normalize(text)
    if not norm:
        return []
    out = [f"w:{w}" for w in kbsearch.words(norm) if len(w) >= 2]
    out += [f"c:{norm[i:i + 2]}" for i in range(len(norm) - 1)]
    return out


def column(token: str, *, size: int = HASH_FEATURES) -> int:
    """The hashed column of a token."""
    return int(murmurhash3_32(token, seed=0, positive=True)) % size


def lexical_row(text: str, *, size: int = HASH_FEATURES) -> dict[int, float]:
    """Sparse L2-normalised sublinear counts of a text's tokens by column."""
    counts: Counter[int] = Counter(column(t, size=size) for t in tokens(text))
    row = {c: 1.0 + math.log(n) for c, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in row.values())) or 1.0
    return {c: v / norm for c, v in row.items()}


def features(texts: Sequence[str], vectors: Sequence[np.ndarray | None], *, dense_dim: int,
             size: int = HASH_FEATURES) -> sparse.csr_matrix:
    """A sparse (texts x (size + dense_dim)) float32 matrix: hashed lexical part, then the sentence vector (left
    empty where a text has none)."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, text in enumerate(texts):
        for c, v in lexical_row(text, size=size).items():
            rows.append(i)
            cols.append(c)
            vals.append(v)
        vec = vectors[i] if i < len(vectors) else None
        if vec is not None and dense_dim:
            dense = DENSE_WEIGHT * np.asarray(vec, dtype=np.float32)[:dense_dim]
            rows.extend([i] * len(dense))
            cols.extend(range(size, size + len(dense)))
            vals.extend(dense.tolist())
    return sparse.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)),
                             shape=(len(texts), size + dense_dim), dtype=np.float32)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    #: the words that pushed the prediction most (matched phrases), best first
    phrases: tuple[str, ...]
    #: every class with its probability, best first
    ranking: tuple[tuple[str, float], ...] = ()


def predict(*, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, text: str,
            vector: np.ndarray | None, size: int = HASH_FEATURES) -> Prediction:
    """Softmax over a linear model's classes for one text, with the words that favoured the winner."""
    dense_dim = coef.shape[1] - size
    lexical = lexical_row(text, size=size)
    logits = np.asarray(intercept, dtype=np.float64).copy()
    for c, v in lexical.items():
        logits += coef[:, c] * v
    if vector is not None and dense_dim:
        logits += coef[:, size:] @ (DENSE_WEIGHT * np.asarray(vector, dtype=np.float32)[:dense_dim])
    if len(classes) == 2 and coef.shape[0] == 1:  # scikit-learn's binary form: one row for classes[1]
        logits = np.array([0.0, float(logits[0])])
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    best = int(order[0])
    row = coef[best] if coef.shape[0] > 1 else (coef[0] if best == 1 else -coef[0])
    pushes: dict[str, float] = {}
    for tok in tokens(text):
        c = column(tok, size=size)
        push = float(row[c]) * lexical.get(c, 0.0)
        word = tok[2:]
        # digits (order numbers, phones) say nothing a person could check
        if push > 0 and not any(ch.isdigit() for ch in word):
            # a whole word reads better than a character pair: pairs count for half
            pushes[word] = max(pushes.get(word, 0.0), push if tok.startswith("w:") else push / 2)
    phrases = _phrases(pushes)
    return Prediction(label=str(classes[best]), confidence=round(float(probs[best]), 4), phrases=phrases,
                      ranking=tuple((str(classes[int(i)]), round(float(probs[int(i)]), 4)) for i in order))


def _phrases(pushes: dict[str, float], *, limit: int = 3) -> tuple[str, ...]:
    """The strongest words, a bigram left out when a chosen word contains it."""
    chosen: list[str] = []
    for word, _ in sorted(pushes.items(), key=lambda kv: (-kv[1], kv[0])):
        if any(word in c or c in word for c in chosen):
            continue
        chosen.append(word)
        if len(chosen) == limit:
            break
    return tuple(chosen)


# ---- extractive summary ------------------------------------------------------------------------------------------

_SPLIT = re.compile(r"(?<=[。！？!?；;…])|\n+")
#: sentences that carry no content on their own
_FILLER = re.compile(
    r"^(你好|您好|在吗|在不在|hello|hi|喂|谢谢|好的|嗯+|哦+|人工|转人工|人工客服|客服|请问)"
    r"[啊呀吗呢！!？?。，,\s]*$", re.IGNORECASE)
_ADDRESS = re.compile(r"[省市区县镇路街道巷号栋楼室弄]")
SUMMARY_SENTENCES = 3
SUMMARY_CHARS = 160


@dataclass
class Summary:
    text: str
    sentences: list[str]
    #: extracted values of the whole conversation (order_no, phone, category keyword, address) and those the
    #: summary kept
    fields: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of the conversation's extracted fields the summary still carries (1.0 when there are none)."""
        return len(self.kept) / len(self.fields) if self.fields else 1.0


def sentences(texts: Sequence[str]) -> list[str]:
    """The conversation cut into sentences, fillers (greetings, 人工) left out."""
    out: list[str] = []
    for text in texts:
        for part in _SPLIT.split(text or ""):
            part = part.strip(" \t，,")
            if part and not _FILLER.match(part) and kbsearch.normalize(part):
                out.append(part)
    return out


def _bigrams(text: str) -> set[str]:
    norm = kbsearch.normalize(text)
    return {norm[i:i + 2] for i in range(len(norm) - 1)} or ({norm} if norm else set())


def summarize(texts: Sequence[str], *, rules: ConversionRules, max_sentences: int = SUMMARY_SENTENCES,
              max_chars: int = SUMMARY_CHARS) -> Summary:
    """An extractive summary of a customer's messages: the sentences that carry the extracted fields first, then
    those closest to the conversation's centre, in their original order; near-duplicates dropped."""
    parts = sentences(texts)
    whole = "\n".join(texts)
    found = extract(whole, rules)
    fields: dict[str, str] = {}
    if found.order_no:
        fields["order_no"] = found.order_no
    if found.phone:
        fields["phone"] = found.phone
    if found.matched_keywords:
        fields["category"] = found.matched_keywords[0]
    address = next((p for p in parts if len(p) >= 6 and len(_ADDRESS.findall(p)) >= 2), None)
    if address:
        fields["address"] = address
    if not parts:
        return Summary(text="", sentences=[], fields=fields)
    centre: Counter[str] = Counter()
    grams = [_bigrams(p) for p in parts]
    for g in grams:
        centre.update(g)
    scores: list[float] = []
    for i, (part, g) in enumerate(zip(parts, grams, strict=True)):
        score = sum(centre[b] - 1 for b in g) / (len(g) ** 0.5 if g else 1.0)
        score = score / max(1.0, max(centre.values()))
        if any(v in part for v in fields.values()):
            score += 10.0
        if sentiment.anger_phrases(part) or sentiment.anxiety_phrases(part):
            score += 0.5
        if i == 0:
            score += 0.3
        scores.append(score)
    chosen: list[int] = []
    length = 0
    for i in sorted(range(len(parts)), key=lambda j: (-scores[j], j)):
        if len(chosen) == max_sentences:
            break
        if any(len(grams[i] & grams[j]) / max(1, len(grams[i] | grams[j])) > 0.6 for j in chosen):
            continue
        if chosen and length + len(parts[i]) > max_chars:
            continue
        chosen.append(i)
        length += len(parts[i])
    picked = [parts[i] for i in sorted(chosen)]
    text = "；".join(p.rstrip("。；;") for p in picked)
    if len(text) > max_chars:
        text = text[:max_chars - 1] + "…"
    kept = [k for k, v in fields.items() if v in text]
    return Summary(text=text, sentences=picked, fields=fields, kept=kept)


# ---- emotion -----------------------------------------------------------------------------------------------------

TONES = {
    "anger": "客户情绪激动：先真诚致歉、承认问题，不辩解；给出明确的处理办法和完成时间，必要时主动升级处理。",
    "anxiety": "客户比较着急：先安抚，说明目前进度和下一步的具体时间，避免“尽快”“稍等”这类模糊说法。",
}
EMOTION_LABELS = {"anger": "愤怒/不满", "anxiety": "焦虑/着急"}


@dataclass(frozen=True)
class Emotion:
    #: anger | anxiety
    kind: str
    confidence: float
    phrases: tuple[str, ...]
    tone: str


def emotion(texts: Sequence[str]) -> Emotion | None:
    """Anger (the bot's lexicon, app.kb.sentiment) or anxiety in a customer's messages, with the words that show it
    and a suggested tone; None when neither shows."""
    whole = "\n".join(texts)
    score = sentiment.anger_score(whole)
    if score >= sentiment.CUT_OFF:
        phrases = tuple(dict.fromkeys(sentiment.anger_phrases(whole)))[:5]
        return Emotion(kind="anger", confidence=round(min(1.0, score / 2.0), 2), phrases=phrases,
                       tone=TONES["anger"])
    worried = tuple(dict.fromkeys(sentiment.anxiety_phrases(whole)))
    if worried:
        return Emotion(kind="anxiety", confidence=round(min(1.0, 0.4 + 0.2 * len(worried)), 2),
                       phrases=worried[:5], tone=TONES["anxiety"])
    return None
