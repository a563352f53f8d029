"""Assistance on a ticket: suggested category and priority (learned from the desk's closed tickets), similar
resolved tickets with their solutions, an extractive summary, and an emotion hint with a suggested tone.

Nothing here computes a sentence vector: the job ``assist_embed_tickets`` stores one per ticket (re-embedded only
when the ticket's text changes), ``assist_build_index`` keeps the nearest-neighbour index of resolved tickets, and
``assist_train`` refits the classifiers. A page or API read uses what is stored (a ticket whose vector is not there
yet gets lexical-only suggestions and no similar tickets until the job has run).

Suggestions never change a ticket by themselves: routing rules decide at intake, and a suggestion is applied only
when a person accepts it (``decide``), through the ticket service with the version they saw. Every suggestion shown
is a row, and accepting or dismissing it is recorded, so ``accuracy`` can report how often staff agreed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tortoise.exceptions import IntegrityError

from app import idle
from app import queue as jobqueue
from app.assist import text as atext
from app.assist.models import AssistModel, Suggestion, TicketVector
from app.conversations.config import load_rules
from app.conversations.extract import extract
from app.conversations.models import Message
from app.errors import NotFound, ValidationFailed
from app.kb import ann, understanding
from app.kb import search as kbsearch
from app.kb.service import strip_customer_details
from app.logs import get_logger
from app.security.scope import Actor
from app.settings import get_settings
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.tickets.service import PRIORITIES, PRIORITY_LABELS
from app.timeutil import utcnow

log = get_logger(__name__)

KINDS = ("category", "priority", "similar", "summary", "emotion")
KIND_LABELS = {"category": "分类", "priority": "优先级", "similar": "相似工单", "summary": "摘要", "emotion": "情绪"}
DECISIONS = ("accepted", "dismissed")
#: below this a category or priority suggestion is not shown (a guess helps nobody); eight categories make 0.35 a
#: clear favourite (a new phrasing of a known problem scored 0.36 against 0.24 for the runner-up)
MIN_CONFIDENCE = 0.35
#: similar tickets shown, and the lowest fused similarity that counts as similar
SIMILAR_K = 3
SIMILAR_FLOOR = 0.35
#: tickets embedded per job run, and per model call
EMBED_LIMIT = 512
EMBED_BATCH = 16
#: the text of a ticket that is embedded and classified
TEXT_CHARS = 500
#: tickets a classifier needs before it is trained, and the held-out share (the newest tickets)
MIN_TRAIN = 20
HOLD_OUT = 0.2
RESOLVED = ("resolved", "closed")


def ticket_text(ticket: Ticket) -> str:
    """What a ticket is about: subject and description."""
    return f"{ticket.subject}\n{ticket.description}".strip()[:TEXT_CHARS]


def text_digest(*, model: str, text: str) -> str:
    """What a stored ticket vector was computed from."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


# ---- vectors (jobs only) -----------------------------------------------------------------------------------------


#: how long the embedding job waits before looking for never-embedded tickets again after finding none
BACKFILL_PAUSE = 3600.0
_backfill: dict[str, float] = {"next": 0.0}


async def embed_tickets(*, embedder: understanding.Embedder | None = None, limit: int = EMBED_LIMIT) -> int:
    """Job: store vectors of tickets whose text (or the model) changed since they were embedded; returns how many.

    Continues from the newest ticket update already seen, so a run reads only tickets touched since; a ticket
    touched without a text change keeps its vector (the digest matches). Idempotent."""
    embedder = embedder or understanding.get_embedder()
    if embedder is None:
        return 0
    newest = await TicketVector.all().order_by("-ticket_updated_at").first()
    query = Ticket.all()
    if newest is not None:
        query = query.filter(updated_at__gte=newest.ticket_updated_at)
    rows = list(await query.order_by("updated_at", "id").limit(limit))
    if len(rows) < limit and time.monotonic() >= _backfill["next"]:
        # tickets older than the watermark that were never embedded (the model was off, or arrived later): the
        # newest first, a batch per run; once none is left the (full-table) look is made hourly only
        seen = {t.id for t in rows}
        missing = await Ticket.filter(assist_vector__id__isnull=True).order_by("-id").limit(limit - len(rows))
        rows += [t for t in missing if t.id not in seen]
        if not missing:
            _backfill["next"] = time.monotonic() + BACKFILL_PAUSE
    stored = {v.ticket_id: v for v in await TicketVector.filter(  # type: ignore[attr-defined]
        ticket_id__in=[t.id for t in rows])}
    todo: list[tuple[Ticket, str, str]] = []
    touched: list[tuple[TicketVector, Ticket]] = []
    for ticket in rows:
        content = ticket_text(ticket)
        key = text_digest(model=embedder.name, text=content)
        have = stored.get(ticket.id)
        if have is None or have.digest != key:
            todo.append((ticket, content, key))
        elif have.ticket_updated_at != ticket.updated_at:
            touched.append((have, ticket))
    done = 0
    for start in range(0, len(todo), EMBED_BATCH):
        if idle.busy() or (start and await jobqueue.intake_backed_up()):
            # the machine is busy (the idle thread is still on an earlier batch) or customers' messages are
            # queueing: the next run goes on from the watermark this one leaves
            break
        batch = todo[start:start + EMBED_BATCH]
        vectors = await idle.run(embedder.embed, [c for _, c, _ in batch])
        for (ticket, _, key), vec in zip(batch, vectors, strict=True):
            await TicketVector.update_or_create(
                defaults={"model": embedder.name, "digest": key, "dim": embedder.dim,
                          "vector": understanding.to_text(vec.reshape(1, -1)),
                          "ticket_updated_at": ticket.updated_at}, ticket_id=ticket.id)
        done += len(batch)
    # a run cut short must not move the watermark past a ticket it left: only the touched rows up to the first one
    # left (the next run reads from the watermark on, ties included)
    upto = min((t.updated_at for t, _, _ in todo[done:]), default=None)
    for have, ticket in touched:
        if upto is None or ticket.updated_at <= upto:
            await TicketVector.filter(id=have.id).update(ticket_updated_at=ticket.updated_at)
    if done:
        log.info("assist.tickets_embedded", count=done, left=len(todo) - done, model=embedder.name)
    return done


async def stored_vector(*, ticket: Ticket) -> np.ndarray | None:
    """The ticket's stored vector if it matches its current text and the model in force, else None."""
    embedder = understanding.get_embedder()
    if embedder is None:
        return None
    row = await TicketVector.get_or_none(ticket_id=ticket.id)
    if row is None or row.digest != text_digest(model=embedder.name, text=ticket_text(ticket)):
        return None
    vec: np.ndarray = understanding.from_text(row.vector, dim=row.dim)[0]
    return vec


async def ticket_vectors(*, ticket_ids: list[int]) -> dict[int, np.ndarray]:
    """The stored vectors of these tickets made by the model in force (tickets without one are left out)."""
    embedder = understanding.get_embedder()
    if embedder is None or not ticket_ids:
        return {}
    rows = await TicketVector.filter(ticket_id__in=ticket_ids, model=embedder.name).values_list(
        "ticket_id", "vector", "dim")
    return {int(tid): understanding.from_text(str(raw), dim=int(dim))[0] for tid, raw, dim in rows}


# ---- the nearest-neighbour index of resolved tickets ------------------------------------------------------------

_index: dict[str, Any] = {"stamp": None, "index": None, "checked": 0.0}
#: how often a process looks for a newer index (file or rows)
INDEX_CHECK_SECONDS = 30.0


def index_path() -> Path:
    """Where the job keeps the index of resolved tickets."""
    return get_settings().data_dir / "assist" / "tickets.npz"


#: vectors read per query when the index is built (a million base64 rows at once would not fit comfortably)
READ_BATCH = 20_000


async def _resolved_vectors(model: str) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(await TicketVector.filter(model=model, ticket__status__in=RESOLVED).order_by(
        "ticket_id").values_list("ticket_id", flat=True), dtype=np.int64)
    if not len(ids):
        return ids, np.zeros((0, 0), dtype=np.float32)
    first = await TicketVector.get(ticket_id=int(ids[0]))
    matrix = np.zeros((len(ids), first.dim), dtype=np.float32)
    for start in range(0, len(ids), READ_BATCH):
        chunk = [int(i) for i in ids[start:start + READ_BATCH]]
        rows = dict(await TicketVector.filter(ticket_id__in=chunk).values_list("ticket_id", "vector"))
        for offset, tid in enumerate(chunk):
            matrix[start + offset] = understanding.from_text(str(rows[tid]), dim=first.dim)[0]
    return ids, matrix


async def _stamp(model: str) -> tuple[Any, ...]:
    last = await TicketVector.filter(model=model).order_by("-updated_at").first()
    count = await TicketVector.filter(model=model, ticket__status__in=RESOLVED).count()
    return model, count, last.updated_at.isoformat() if last else ""


async def build_index() -> int:
    """Job: rebuild the index of resolved tickets' vectors and save it, when the vectors changed; returns its size
    (0 when nothing changed or there is no model)."""
    embedder = understanding.get_embedder()
    if embedder is None:
        return 0
    stamp = await _stamp(embedder.name)
    path = index_path()
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and json.loads(meta.read_text()).get("stamp") == list(stamp):
        return 0
    ids, matrix = await _resolved_vectors(embedder.name)
    if not len(ids):
        return 0
    index = await idle.run(ann.VectorIndex.build, ids, matrix)
    await idle.run(index.save, path)
    meta.write_text(json.dumps({"stamp": list(stamp), "size": len(ids), "kind": index.kind}))
    log.info("assist.index_built", size=len(ids), kind=index.kind)
    return len(ids)


async def ticket_index() -> ann.VectorIndex | None:
    """The index of resolved tickets: the job's file when there is one, else (small desks) built from the rows."""
    embedder = understanding.get_embedder()
    if embedder is None:
        return None
    now = time.monotonic()
    if _index["stamp"] is not None and now - _index["checked"] < INDEX_CHECK_SECONDS:
        found: ann.VectorIndex | None = _index["index"]
        return found
    _index["checked"] = now
    path = index_path()
    if path.exists():
        stamp: Any = ("file", path.stat().st_mtime_ns)
        if _index["stamp"] != stamp:
            _index["index"] = await asyncio.to_thread(ann.VectorIndex.load, path)
            _index["stamp"] = stamp
    else:
        stamp = await _stamp(embedder.name)
        if _index["stamp"] != stamp:
            if stamp[1] > ann.EXACT_BELOW:
                # too many to build on a request: the job writes the file (until then, no similar tickets)
                log.warning("assist.index_missing", vectors=stamp[1])
                _index.update(index=None, stamp=stamp)
                return None
            ids, matrix = await _resolved_vectors(embedder.name)
            _index["index"] = ann.VectorIndex.build(ids, matrix) if len(ids) else None
            _index["stamp"] = stamp
    cached: ann.VectorIndex | None = _index["index"]
    return cached


def forget_index() -> None:
    """Drop the process's copy of the index and the backfill pause (tests; a new data directory)."""
    _index.update(stamp=None, index=None, checked=0.0)
    _backfill["next"] = 0.0


# ---- classifiers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classifier:
    model_id: int
    kind: str
    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    size: int
    embedder: str

    def predict(self, text: str, vector: np.ndarray | None) -> atext.Prediction:
        """The most likely class for a ticket text (vector None: lexical features only)."""
        return atext.predict(classes=self.classes, coef=self.coef, intercept=self.intercept, text=text,
                             vector=vector, size=self.size)


def _pack(coef: np.ndarray, intercept: np.ndarray) -> str:
    # the weights in the same float32 text form as the vectors: one row, the coefficients then the intercepts
    return understanding.to_text(np.concatenate([np.ravel(coef), np.ravel(intercept)]))


def _unpack(raw: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    flat = understanding.from_text(raw, dim=rows * (cols + 1))[0]
    return flat[:rows * cols].reshape(rows, cols), flat[rows * cols:]


_classifiers: dict[str, Any] = {}


async def classifier(*, kind: str) -> Classifier | None:
    """The active classifier of a kind (category, priority), cached per process until a newer one is active."""
    row = await AssistModel.filter(kind=kind, active=True).order_by("-id").first()
    if row is None:
        return None
    cached: Classifier | None = _classifiers.get(kind)
    if cached is not None and cached.model_id == row.id:
        return cached
    size = int(row.params.get("hash_features", atext.HASH_FEATURES))
    cols = size + int(row.params.get("dense_dim", 0))
    rows = 1 if len(row.classes) == 2 else len(row.classes)
    coef, intercept = _unpack(row.weights, rows, cols)
    made = Classifier(model_id=row.id, kind=kind, classes=tuple(row.classes), coef=coef, intercept=intercept,
                      size=size, embedder=str(row.params.get("embedder", "")))
    _classifiers[kind] = made
    return made


def label_of(ticket: Ticket, kind: str) -> str:
    """The ticket's current value of a classified field."""
    return str(ticket.category if kind == "category" else ticket.priority)


def baseline(kind: str, texts: list[str], train_labels: list[str]) -> list[str]:
    """What the desk would guess without a model: the routing keywords' category; the most common priority."""
    if kind == "category":
        rules = load_rules()
        return [extract(t, rules).category for t in texts]
    common = max(set(train_labels), key=lambda x: (train_labels.count(x), x)) if train_labels else "normal"
    return [common] * len(texts)


def fit(*, kind: str, texts: list[str], vectors: list[np.ndarray | None], labels: list[str], dense_dim: int,
        c: float = 4.0) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Fit the multinomial logistic regression of a kind: (classes, coef, intercept)."""
    from sklearn.linear_model import LogisticRegression

    x = atext.features(texts, vectors, dense_dim=dense_dim)
    model = LogisticRegression(C=c, max_iter=500)
    model.fit(x, labels)
    return tuple(str(k) for k in model.classes_), model.coef_.astype(np.float32), model.intercept_.astype(np.float32)


@dataclass(frozen=True)
class TrainReport:
    kind: str
    trained_on: int
    held_out: int
    accuracy: float
    baseline_accuracy: float
    active: bool
    model_id: int | None


async def train(*, kind: str, limit: int = 20000) -> TrainReport:
    """Fit a classifier on the newest closed and resolved tickets; measure it on the newest HOLD_OUT share against
    the baseline; store it, active only when it is at least as accurate as the baseline."""
    if kind not in ("category", "priority"):
        raise ValidationFailed("kind 必须是 category 或 priority", code="invalid_kind")
    rows = list(reversed(await Ticket.filter(status__in=RESOLVED).exclude(
        **({"category": ""} if kind == "category" else {})).order_by("-id").limit(limit)))
    labels = [label_of(t, kind) for t in rows]
    if len(rows) < MIN_TRAIN or len(set(labels)) < 2:
        return TrainReport(kind, len(rows), 0, 0.0, 0.0, False, None)
    embedder = understanding.get_embedder()
    vectors: list[np.ndarray | None] = [None] * len(rows)
    dense_dim = 0
    if embedder is not None:
        dense_dim = embedder.dim
        by_id = {v.ticket_id: v for v in await TicketVector.filter(  # type: ignore[attr-defined]
            ticket_id__in=[t.id for t in rows], model=embedder.name)}
        for i, t in enumerate(rows):
            v = by_id.get(t.id)
            if v is not None and v.digest == text_digest(model=embedder.name, text=ticket_text(t)):
                vectors[i] = understanding.from_text(v.vector, dim=v.dim)[0]
    texts = [ticket_text(t) for t in rows]
    cut = len(rows) - max(1, int(len(rows) * HOLD_OUT))
    accuracy, base_acc = await idle.run(
        _held_out, kind, texts, vectors, labels, cut, dense_dim)
    classes, coef, intercept = await idle.run(
        fit, kind=kind, texts=texts, vectors=vectors, labels=labels, dense_dim=dense_dim)
    active = accuracy >= base_acc
    row = await AssistModel.create(
        kind=kind, classes=list(classes), weights=_pack(coef, intercept), trained_on=len(rows),
        held_out=len(rows) - cut, accuracy=accuracy, baseline_accuracy=base_acc, active=active,
        params={"hash_features": atext.HASH_FEATURES, "dense_dim": dense_dim,
                "embedder": embedder.name if embedder else ""})
    if active:
        await AssistModel.filter(kind=kind, active=True).exclude(id=row.id).update(active=False)
    log.info("assist.trained", kind=kind, tickets=len(rows), accuracy=round(accuracy, 3),
             baseline=round(base_acc, 3), active=active)
    return TrainReport(kind, len(rows), len(rows) - cut, accuracy, base_acc, active, row.id)


def _held_out(kind: str, texts: list[str], vectors: list[np.ndarray | None], labels: list[str], cut: int,
              dense_dim: int) -> tuple[float, float]:
    """Accuracy of a model fitted on the older tickets, and of the baseline, on the newest ones."""
    test_labels = labels[cut:]
    guesses = baseline(kind, texts[cut:], labels[:cut])
    base_acc = float(np.mean([g == y for g, y in zip(guesses, test_labels, strict=True)]))
    if len(set(labels[:cut])) < 2:
        return 0.0, base_acc
    classes, coef, intercept = fit(kind=kind, texts=texts[:cut], vectors=vectors[:cut], labels=labels[:cut],
                                   dense_dim=dense_dim)
    hits = [atext.predict(classes=classes, coef=coef, intercept=intercept, text=t, vector=v).label == y
            for t, v, y in zip(texts[cut:], vectors[cut:], test_labels, strict=True)]
    return float(np.mean(hits)), base_acc


# ---- suggestions on a ticket ---------------------------------------------------------------------------------


async def _customer_texts(ticket: Ticket) -> list[str]:
    rows = await Message.filter(ticket_id=ticket.id, direction="in").order_by("id").limit(200).values_list(
        "text", flat=True)
    texts = [str(t) for t in rows if t]
    return texts or [t for t in (ticket.subject, ticket.description) if t]


async def _record(ticket: Ticket, *, kind: str, value: str, confidence: float, reasons: list[str],
                  source: str) -> Suggestion:
    """The suggestion row of (ticket, kind, value): created when first shown; its reasons kept current."""
    row = await Suggestion.get_or_none(ticket_id=ticket.id, kind=kind, value=value[:64])
    if row is None:
        try:
            return await Suggestion.create(ticket_id=ticket.id, kind=kind, value=value[:64], confidence=confidence,
                                           reasons=reasons, source=source[:64])
        except IntegrityError:  # the same page shown twice at once: the other request wrote it
            return await Suggestion.get(ticket_id=ticket.id, kind=kind, value=value[:64])
    if row.status == "shown" and (row.reasons != reasons or abs(row.confidence - confidence) > 1e-6):
        row.reasons, row.confidence = reasons, confidence
        await row.save(update_fields=["reasons", "confidence"])
    return row


def _view(row: Suggestion, **extra: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "value": row.value, "confidence": round(row.confidence, 4),
            "reasons": list(row.reasons), "source": row.source, "status": row.status, **extra}


async def _classified(ticket: Ticket, kind: str, vector: np.ndarray | None,
                      similar: list[dict[str, Any]]) -> dict[str, Any] | None:
    model = await classifier(kind=kind)
    if model is None:
        return None
    # a model trained with vectors of another embedder (or none) reads the lexical part only
    embedder = understanding.get_embedder()
    usable = vector if embedder is not None and model.embedder == embedder.name else None
    guess = model.predict(ticket_text(ticket), usable)
    current = label_of(ticket, kind)
    if guess.confidence < MIN_CONFIDENCE or guess.label == current:
        return None
    label = PRIORITY_LABELS.get(guess.label, guess.label) if kind == "priority" else guess.label
    reasons = [f"匹配词：{'、'.join(guess.phrases)}"] if guess.phrases else []
    agreeing = [s["number"] for s in similar if s.get(kind) == guess.label]
    if agreeing:
        reasons.append(f"相似工单 {'、'.join(agreeing)} 也是“{label}”")
    reasons.append(f"由 {model.kind} 模型 #{model.model_id} 根据已关闭工单学习得出")
    row = await _record(ticket, kind=kind, value=guess.label, confidence=guess.confidence, reasons=reasons,
                        source=f"{kind}-{model.model_id}")
    return _view(row, label=label, current=current)


async def similar_tickets(*, actor: Actor, ticket: Ticket, vector: np.ndarray | None,
                          k: int = SIMILAR_K) -> list[dict[str, Any]]:
    """Resolved tickets in the caller's scope most like this one, with the last staff reply as their solution."""
    ids: list[int] = []
    scores: dict[int, float] = {}
    index = await ticket_index() if vector is not None else None
    if index is not None and vector is not None and len(index):
        found, sims = index.search(vector.reshape(1, -1), k=k * 8 + 1)
        for tid, sim in zip(found[0], sims[0], strict=True):
            score = float(understanding.rescale(np.array([sim]))[0])
            if tid > 0 and int(tid) != ticket.id and score >= SIMILAR_FLOOR:
                ids.append(int(tid))
                scores[int(tid)] = score
    elif understanding.get_embedder() is None:
        ids, scores = await _lexical_similar(ticket)
    if not ids:
        return []
    allowed = {t.id: t for t in await Ticket.filter(actor.ticket_filter(), id__in=ids, status__in=RESOLVED)}
    chosen = [allowed[i] for i in ids if i in allowed][:k]
    out: list[dict[str, Any]] = []
    for other in chosen:
        reply = await Message.filter(ticket_id=other.id, direction="out", author_kind="staff").order_by(
            "-id").first()
        solution = strip_customer_details(reply.text).strip()[:300] if reply and reply.text else ""
        out.append({"ticket_id": other.id, "number": other.number, "subject": other.subject,
                    "category": other.category, "priority": other.priority, "score": round(scores[other.id], 4),
                    "solution": solution})
    return out


async def _lexical_similar(ticket: Ticket, *, pool: int = 2000) -> tuple[list[int], dict[int, float]]:
    """Without the sentence model: the lexical matcher over the newest resolved tickets."""
    rows = await Ticket.filter(status__in=RESOLVED).exclude(id=ticket.id).order_by("-id").limit(pool)
    if not rows:
        return [], {}
    matcher = kbsearch.Matcher([kbsearch.Doc(article_id=t.id, texts=(ticket_text(t),)) for t in rows])
    hits = matcher.search(ticket_text(ticket), k=SIMILAR_K * 8)
    good = [h for h in hits if h.score >= SIMILAR_FLOOR]
    return [h.article_id for h in good], {h.article_id: h.score for h in good}


async def suggestions(*, actor: Actor, ticket_id: int) -> dict[str, Any]:
    """Everything assistance offers on one ticket in the caller's scope, each suggestion with its why."""
    ticket = await tickets.get(actor=actor, ticket_id=ticket_id)
    vector = await stored_vector(ticket=ticket)
    similar = await similar_tickets(actor=actor, ticket=ticket, vector=vector)
    similar_rows = []
    for s in similar:
        row = await _record(ticket, kind="similar", value=str(s["ticket_id"]), confidence=s["score"],
                            reasons=[f"语义相似度 {s['score']:.2f}"], source="ann")
        similar_rows.append(_view(row, **s))
    texts = await _customer_texts(ticket)
    summary = atext.summarize(texts, rules=load_rules())
    summary_view = None
    if summary.text:
        kept = "、".join(FIELD_LABELS.get(k, k) for k in summary.kept)
        reasons = [f"摘自客户的 {len(summary.sentences)} 句话"] + ([f"保留了{kept}"] if kept else [])
        row = await _record(ticket, kind="summary", value=hashlib.sha256(summary.text.encode()).hexdigest()[:16],
                            confidence=round(summary.coverage, 4), reasons=reasons, source="extractive")
        summary_view = _view(row, text=summary.text)
    mood = atext.emotion(texts)
    emotion_view = None
    if mood is not None:
        row = await _record(ticket, kind="emotion", value=mood.kind, confidence=mood.confidence,
                            reasons=[f"关键词：{'、'.join(mood.phrases)}"], source="lexicon")
        emotion_view = _view(row, label=atext.EMOTION_LABELS[mood.kind], tone=mood.tone)
    return {
        "ticket_id": ticket.id,
        "vector_ready": vector is not None,
        "category": await _classified(ticket, "category", vector, similar),
        "priority": await _classified(ticket, "priority", vector, similar),
        "similar": similar_rows,
        "summary": summary_view,
        "emotion": emotion_view,
    }


FIELD_LABELS = {"order_no": "订单号", "phone": "电话", "category": "问题类型", "address": "地址"}


async def decide(*, actor: Actor, suggestion_id: int, decision: str) -> dict[str, Any]:
    """Record that staff accepted or dismissed a suggestion; accepting a category or priority applies it to the
    ticket (through the ticket service, audited, at the ticket's current version)."""
    if decision not in DECISIONS:
        raise ValidationFailed("decision 必须是 accepted 或 dismissed", code="invalid_decision")
    row = await Suggestion.get_or_none(id=suggestion_id)
    if row is None:
        raise NotFound("建议不存在")
    ticket = await tickets.get(actor=actor, ticket_id=row.ticket_id)  # type: ignore[attr-defined]
    if row.status != "shown":
        if row.status == decision:
            return _view(row)
        raise ValidationFailed("这条建议已经处理过了", code="already_decided", details={"status": row.status})
    if decision == "accepted" and row.kind in ("category", "priority") and label_of(ticket, row.kind) != row.value:
        if row.kind == "priority" and row.value not in PRIORITIES:
            raise ValidationFailed("无效的优先级建议", code="invalid_suggestion")
        await tickets.update(actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                             changes={row.kind: row.value, "reason": f"采纳智能建议（置信度 {row.confidence:.0%}）"})
    row.status, row.decided_at = decision, utcnow()
    row.decided_by_id = actor.staff_id  # type: ignore[attr-defined]
    await row.save(update_fields=["status", "decided_at", "decided_by_id"])
    return _view(row)


async def accuracy(*, since: datetime | None = None) -> dict[str, Any]:
    """Per kind of suggestion: how many were shown, accepted and dismissed, and the share accepted of those
    decided; the classifiers in force with their held-out accuracy beside the baseline's."""
    since = since or utcnow() - timedelta(days=30)
    out: dict[str, Any] = {"since": since.isoformat(), "kinds": {}, "models": []}
    for kind in KINDS:
        base = Suggestion.filter(kind=kind, created_at__gte=since)
        shown = await base.count()
        accepted = await base.filter(status="accepted").count()
        dismissed = await base.filter(status="dismissed").count()
        decided = accepted + dismissed
        out["kinds"][kind] = {"label": KIND_LABELS[kind], "shown": shown, "accepted": accepted,
                              "dismissed": dismissed,
                              "acceptance": round(accepted / decided, 4) if decided else None}
    for row in await AssistModel.filter(active=True).order_by("kind"):
        out["models"].append({"id": row.id, "kind": row.kind, "trained_on": row.trained_on,
                              "held_out": row.held_out, "accuracy": round(row.accuracy, 4),
                              "baseline_accuracy": round(row.baseline_accuracy, 4),
                              "created_at": row.created_at.isoformat()})
    return out
