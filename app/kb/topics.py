"""Hot topics and knowledge gaps: clusters of recent customer questions (the bot's misses, menus and wrong answers)
and tickets that no published article answers well, ranked by volume and growth, each with a one-click draft
article from its best-resolved tickets.

Clustering never runs the sentence model at request time: it reads the stored texts and, where the caller hands
them in, the tickets' stored vectors (app.assist keeps them; the kb domain does not import it). Two texts that both
have a vector are compared the way the text-understanding service fuses its views (the lexical score and the
rescaled dense cosine, weighted by ``FUSION_WEIGHT``); any other pair by the lexical score alone. One pass of leader
clustering over at most ``MAX_ITEMS`` texts, newest first. A cluster is left out when a published article already
matches its lead text at ``GOOD_ARTICLE`` or better.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from app.conversations.models import Message
from app.customers.models import Customer
from app.errors import NotFound, ValidationFailed
from app.kb import search as kbsearch
from app.kb import understanding
from app.kb.models import Article, BotQuery
from app.kb.service import create, strip_customer_details
from app.security.scope import Actor
from app.tickets.models import Ticket, TicketRating
from app.timeutil import utcnow

#: the lexical similarity at which two texts are one topic
SIMILARITY = 0.45
#: a published article matching a topic's lead text this well answers it already (lexical score)
GOOD_ARTICLE = 0.6
MAX_ITEMS = 3000
RESOLVED = ("resolved", "closed")

#: the stored vectors of some tickets (app.assist.service.ticket_vectors), handed in by the caller
VectorsFor = Callable[..., Awaitable[dict[int, np.ndarray]]]


@dataclass
class _Item:
    text: str
    recent: bool
    ticket_id: int | None = None


async def _items(days: int) -> list[_Item]:
    now = utcnow()
    start, middle = now - timedelta(days=2 * days), now - timedelta(days=days)
    items: list[_Item] = []
    queries = await BotQuery.filter(created_at__gte=start).filter(
        outcome__in=["no_match", "handoff", "menu"]).order_by("-id").limit(MAX_ITEMS).values_list(
        "text", "created_at")
    wrong = await BotQuery.filter(created_at__gte=start, verdict="wrong", outcome="answered").order_by(
        "-id").limit(MAX_ITEMS).values_list("text", "created_at")
    for text, created in [*queries, *wrong]:
        if kbsearch.normalize(str(text)):
            items.append(_Item(text=str(text), recent=created >= middle))
    tickets = await Ticket.filter(created_at__gte=start).order_by("-id").limit(MAX_ITEMS).values_list(
        "id", "subject", "created_at")
    for tid, subject, created in tickets:
        if kbsearch.normalize(str(subject)):
            items.append(_Item(text=str(subject), recent=created >= middle, ticket_id=int(tid)))
    return items[:MAX_ITEMS]


def cluster(texts: list[str], *, similarity: float = SIMILARITY, vectors: Sequence[np.ndarray | None] | None = None,
            weight: float = understanding.FUSION_WEIGHT, floor: float = understanding.DENSE_FLOOR) -> list[list[int]]:
    """Leader clustering: each text joins the earlier leader it resembles best at `similarity` or more, else leads
    (a pair with two vectors is scored fused, any other pair lexically)."""
    if not texts:
        return []
    units: list[np.ndarray | None] = [None] * len(texts)
    for i, vec in enumerate(vectors or ()):
        if vec is not None and (length := float(np.linalg.norm(vec))) > 0:
            units[i] = vec / length
    matcher = kbsearch.Matcher([kbsearch.Doc(article_id=i, texts=(t,)) for i, t in enumerate(texts)])
    # duplicates collapse inside the matcher: map its rows back to texts
    col_of = {aid: c for c, (aid, _) in enumerate(matcher.rows)}
    scores = np.asarray(matcher.score_matrix(texts))
    leaders: list[int] = []
    groups: list[list[int]] = []
    norm = [kbsearch.normalize(t) for t in texts]
    first_of: dict[str, int] = {}
    for i in range(len(texts)):
        if norm[i] in first_of:
            groups[first_of[norm[i]]].append(i)
            continue
        best, best_score = -1, similarity
        for g, lead in enumerate(leaders):
            c = col_of.get(lead)
            s = float(scores[i, c]) if c is not None else 0.0
            a, b = units[i], units[lead]
            if a is not None and b is not None:
                dense = float(understanding.rescale(np.asarray(a @ b), floor=floor))
                s = (1.0 - weight) * s + weight * dense
            if s >= best_score:
                best, best_score = g, s
        if best < 0:
            leaders.append(i)
            groups.append([i])
            first_of[norm[i]] = len(groups) - 1
        else:
            groups[best].append(i)
            first_of.setdefault(norm[i], best)
    return groups


async def hot_topics(*, days: int = 7, limit: int = 20, vectors_for: VectorsFor | None = None) -> list[dict[str, Any]]:
    """Topics of the last `days` without a good article, most asked first, then fastest growing (against the
    `days` before); with `vectors_for`, tickets are compared by their stored vectors too."""
    if not 1 <= days <= 90:
        raise ValidationFailed("days 必须在 1 到 90 之间", code="invalid_parameter")
    items = await _items(days)
    stored: dict[int, np.ndarray] = {}
    if vectors_for is not None:
        stored = await vectors_for(ticket_ids=[it.ticket_id for it in items if it.ticket_id is not None])
    vectors = [stored.get(it.ticket_id) if it.ticket_id is not None else None for it in items]
    groups = cluster([it.text for it in items], vectors=vectors)
    index = await understanding.index()
    resolved = {t.id for t in await Ticket.filter(
        id__in=[it.ticket_id for it in items if it.ticket_id], status__in=RESOLVED)}
    out: list[dict[str, Any]] = []
    for members in groups:
        recent = sum(items[m].recent for m in members)
        if not recent:
            continue
        # the topic's words: its most frequent text (the first of equals)
        counts = Counter(kbsearch.normalize(items[m].text) for m in members)
        lead = next(items[m].text for m in members if counts[kbsearch.normalize(items[m].text)] == max(
            counts.values()))
        lead_vector = next((vectors[m] for m in members if items[m].text == lead and vectors[m] is not None), None)
        hits = index.search(lead, lead_vector, k=1) if index.lexical.rows else []
        if hits and hits[0].score >= GOOD_ARTICLE:
            continue
        previous = len(members) - recent
        unique = list(dict.fromkeys(items[m].text for m in members))
        examples = sorted(unique, key=lambda t: -counts[kbsearch.normalize(t)])[:5]
        ticket_ids = [int(tid) for m in members if (tid := items[m].ticket_id) is not None]
        out.append({"label": lead[:60], "count": recent, "previous": previous,
                    "growth": round((recent - previous) / max(1, previous), 4),
                    "questions": sum(items[m].ticket_id is None for m in members), "tickets": len(ticket_ids),
                    "examples": examples, "ticket_ids": [t for t in ticket_ids if t in resolved][:20],
                    "best_article": {"id": hits[0].article_id, "score": hits[0].score} if hits else None})
    out.sort(key=lambda t: (-t["count"], -t["growth"], t["label"]))
    return out[:max(1, min(limit, 100))]


async def draft_from_tickets(*, actor: Actor, ticket_ids: list[int], title: str | None = None) -> Article:
    """A draft article from a topic's resolved tickets: the best-rated first; their subjects as phrasings and
    their last staff replies as the answer, customer details removed."""
    rows = await Ticket.filter(actor.ticket_filter(), id__in=ticket_ids, status__in=RESOLVED)
    if not rows:
        raise NotFound("没有可用的已解决工单")
    ratings = {r.ticket_id: r.score for r in await TicketRating.filter(  # type: ignore[attr-defined]
        ticket_id__in=[t.id for t in rows])}
    rows.sort(key=lambda t: (-ratings.get(t.id, 0), -t.id))
    names = tuple(str(n) for n in await Customer.filter(
        id__in=[t.customer_id for t in rows]).values_list("name", flat=True) if n)  # type: ignore[attr-defined]
    answers: list[str] = []
    for t in rows[:5]:
        reply = await Message.filter(ticket_id=t.id, direction="out", author_kind="staff").order_by("-id").first()
        text = strip_customer_details(reply.text, names=names).strip() if reply and reply.text else ""
        if text and text not in answers:
            answers.append(text)
    phrasings = list(dict.fromkeys(strip_customer_details(t.subject, names=names).strip()
                                   for t in rows if t.subject.strip()))
    head = (title or "").strip() or phrasings[0] if phrasings else "未命名问题"
    return await create(actor=actor, title=head[:200], body="\n\n".join(answers) or "（请补充答案）",
                        questions=[p[:200] for p in phrasings if p != head][:10], category=rows[0].category,
                        status="draft", source_ticket_id=rows[0].id,
                        note=f"由热点问题的 {len(rows)} 张已解决工单生成")
