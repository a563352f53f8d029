"""Knowledge-base articles: create, edit (every edit a version), publish/retire, search, import/export, drafts from
tickets, and the knowledge-gap report built from the questions the bot could not answer.

Who may change what: agents create and edit drafts. A published (or retired) article is what customers read, so
an agent's edit of one does not change it: the edit is kept as the article's pending revision (``pending``), and
a lead or admin publishes it (``publish_pending``) or throws it away (``discard_pending``). Only leads and admins
publish, retire or return an article to draft.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from app.conversations.models import Message
from app.customers.models import Customer
from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.kb import search as kbsearch
from app.kb import understanding
from app.kb.models import Article, ArticleVersion, BotQuery
from app.security import pii
from app.security.scope import Actor
from app.staff.models import Staff
from app.tickets import service as tickets
from app.timeutil import utcnow
from app.uow import atomic

STATUSES = ("draft", "published", "retired")
#: the width of Article.category
CATEGORY_LENGTH = 32
STATUS_LABELS = {"draft": "草稿", "published": "已发布", "retired": "已下线"}
#: fields an edit may change
EDITABLE = ("title", "body", "questions", "tags", "category", "owner_id", "status")
CSV_COLUMNS = ("id", "title", "category", "tags", "questions", "status", "body")


@dataclass(frozen=True)
class SearchResult:
    article: Article
    score: float
    matched: str
    #: True when the score fuses the sentence model's view with the lexical one (app.kb.understanding)
    fused: bool = False


# ---- reading ---------------------------------------------------------------------------------------------------


async def get(*, article_id: int) -> Article:
    """Return one article or NotFound."""
    article = await Article.get_or_none(id=article_id)
    if article is None:
        raise NotFound("知识库文章不存在")
    return article


def status_filter(*, status: str | None) -> str | None:
    """A status to filter by (None for all); an unknown one is a 422, not a database error."""
    if status and status not in STATUSES:
        raise ValidationFailed(f"状态必须是 {'、'.join(STATUSES)} 之一", code="invalid_status")
    return status or None


async def _check_owner(owner_id: int | None) -> None:
    """An article's owner must be a staff member (a 422 rather than a foreign-key error)."""
    if owner_id is not None and not await Staff.exists(id=owner_id):
        raise ValidationFailed(f"负责人 {owner_id} 不存在", code="unknown_owner")


async def list_articles(*, status: str | None = None, category: str | None = None, q: str | None = None,
                        limit: int = 50, offset: int = 0) -> list[Article]:
    """Articles newest-edited first, filtered by status, category and a title substring."""
    query = Article.all()
    if status_filter(status=status):
        query = query.filter(status=status)
    if category:
        if len(category) > CATEGORY_LENGTH:
            raise ValidationFailed(f"分类最多 {CATEGORY_LENGTH} 个字符", code="invalid_category")
        query = query.filter(category=category)
    if q:
        query = query.filter(title__icontains=q)
    return await query.order_by("-updated_at", "-id").offset(max(0, offset)).limit(max(1, min(limit, 200)))


async def list_versions(*, article_id: int) -> list[ArticleVersion]:
    """An article's history, oldest first."""
    await get(article_id=article_id)
    return await ArticleVersion.filter(article_id=article_id).order_by("version")


def serialize(article: Article) -> dict[str, Any]:
    """The API shape of an article."""
    return {
        "id": article.id,
        "title": article.title,
        "body": article.body,
        "questions": list(article.questions or []),
        "tags": list(article.tags or []),
        "category": article.category,
        "owner_id": article.owner_id,  # type: ignore[attr-defined]
        "status": article.status,
        "version": article.version,
        "source_ticket_id": article.source_ticket_id,
        "pending": dict(article.pending) if article.pending else None,
        "pending_by_id": article.pending_by_id if article.pending else None,
        "created_at": article.created_at.isoformat() if article.created_at else None,
        "updated_at": article.updated_at.isoformat() if article.updated_at else None,
    }


# ---- writing ---------------------------------------------------------------------------------------------------


def _clean_list(values: Any, *, name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in re.split(r"[|\n]", values)]
    if not isinstance(values, list):
        raise ValidationFailed(f"{name} 必须是字符串列表", code="invalid_fields")
    out: list[str] = []
    for v in values:
        text = str(v).strip()
        if text and text not in out:
            out.append(text[:200])
    return out


def _check(fields: dict[str, Any], actor: Actor) -> dict[str, Any]:
    out = dict(fields)
    if "title" in out:
        out["title"] = str(out["title"] or "").strip()[:200]
        if not out["title"]:
            raise ValidationFailed("请填写文章标题", code="title_required")
    if "body" in out:
        out["body"] = str(out["body"] or "")
    if "category" in out:
        out["category"] = str(out["category"] or "").strip()[:32]
    for name in ("questions", "tags"):
        if name in out:
            out[name] = _clean_list(out[name], name=name)
    if "status" in out:
        if out["status"] not in STATUSES:
            raise ValidationFailed(f"状态必须是 {', '.join(STATUSES)} 之一", code="invalid_status")
        if out["status"] != "draft" and actor.kind == "staff" and actor.role == "agent":
            raise PermissionDenied("只有组长或管理员可以发布或下线文章", code="publish_forbidden")
    return out


def _snapshot(article: Article) -> dict[str, Any]:
    return {k: v for k, v in serialize(article).items() if k in ("title", "body", "questions", "tags", "category",
                                                                 "status", "owner_id")}


async def create(*, actor: Actor, title: str, body: str = "", questions: list[str] | None = None,
                 tags: list[str] | None = None, category: str = "", owner_id: int | None = None,
                 status: str = "draft", source_ticket_id: int | None = None, note: str = "") -> Article:
    """Create an article (version 1) and record it in the history."""
    fields = _check({"title": title, "body": body, "questions": questions or [], "tags": tags or [],
                     "category": category, "status": status}, actor)
    await _check_owner(owner_id)
    async with atomic():
        article = await Article.create(**fields, owner_id=owner_id if owner_id is not None else actor.staff_id,
                                       source_ticket_id=source_ticket_id)
        await ArticleVersion.create(article=article, version=1, snapshot=_snapshot(article),
                                    editor_id=actor.staff_id, note=note or "创建")
    return article


async def update(*, actor: Actor, article_id: int, expected_version: int, changes: dict[str, Any],
                 note: str = "") -> Article:
    """Edit an article if nobody changed it since `expected_version`; the edit becomes a new version."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"不能修改字段: {', '.join(sorted(unknown))}", code="not_editable")
    fields = _check(changes, actor)
    await _check_owner(fields.get("owner_id"))
    async with atomic():
        article = await get(article_id=article_id)
        if article.version != expected_version:
            raise ValidationFailed("文章已被他人修改，请刷新后重试", code="version_conflict",
                                   details={"current_version": article.version})
        fields = {k: v for k, v in fields.items() if getattr(article, k) != v}
        if not fields:
            return article
        if _is_agent(actor) and article.status != "draft":
            return await _propose(actor=actor, article=article, fields=fields)
        updated = await Article.filter(id=article_id, version=expected_version).update(
            **fields, version=expected_version + 1, updated_at=utcnow())
        if not updated:
            raise ValidationFailed("文章已被他人修改，请刷新后重试", code="version_conflict")
        article = await get(article_id=article_id)
        await ArticleVersion.create(article=article, version=article.version, snapshot=_snapshot(article),
                                    editor_id=actor.staff_id, note=note[:200] or _describe(fields))
    return article


def _is_agent(actor: Actor) -> bool:
    return actor.kind == "staff" and actor.role == "agent"


async def _propose(*, actor: Actor, article: Article, fields: dict[str, Any]) -> Article:
    """Keep an agent's edit of a live article as its pending revision; the live text stays as it is."""
    if "status" in fields:
        raise PermissionDenied("只有组长或管理员可以更改已发布文章的状态", code="publish_forbidden")
    pending = {**(article.pending or {}), **fields}
    await Article.filter(id=article.id).update(pending=pending, pending_by_id=actor.staff_id, pending_at=utcnow())
    return await get(article_id=article.id)


async def publish_pending(*, actor: Actor, article_id: int, expected_version: int) -> Article:
    """A lead or admin makes the pending revision live (a new version) and clears it."""
    if _is_agent(actor):
        raise PermissionDenied("只有组长或管理员可以发布修改", code="publish_forbidden")
    article = await get(article_id=article_id)
    if not article.pending:
        raise ValidationFailed("这篇文章没有待发布的修改", code="no_pending_edit")
    async with atomic():
        updated = await update(actor=actor, article_id=article_id, expected_version=expected_version,
                               changes=dict(article.pending), note="发布待审核的修改")
        await Article.filter(id=article_id).update(pending=None, pending_by_id=None, pending_at=None)
    updated.pending = None
    updated.pending_by_id = None
    updated.pending_at = None
    return updated


async def discard_pending(*, actor: Actor, article_id: int) -> Article:
    """A lead or admin throws the pending revision away."""
    if _is_agent(actor):
        raise PermissionDenied("只有组长或管理员可以放弃待发布的修改", code="publish_forbidden")
    await get(article_id=article_id)
    await Article.filter(id=article_id).update(pending=None, pending_by_id=None, pending_at=None)
    return await get(article_id=article_id)


def _describe(fields: dict[str, Any]) -> str:
    if set(fields) == {"status"}:
        return f"状态改为{STATUS_LABELS[fields['status']]}"
    return "修改 " + "、".join(sorted(fields))


async def set_status(*, actor: Actor, article_id: int, status: str) -> Article:
    """Publish, retire or return an article to draft."""
    article = await get(article_id=article_id)
    return await update(actor=actor, article_id=article_id, expected_version=article.version,
                        changes={"status": status})


async def restore(*, actor: Actor, article_id: int, version: int) -> Article:
    """Make an old version's content current again (as a new version)."""
    old = await ArticleVersion.get_or_none(article_id=article_id, version=version)
    if old is None:
        raise NotFound("没有这个版本")
    article = await get(article_id=article_id)
    snap = {k: v for k, v in old.snapshot.items() if k in ("title", "body", "questions", "tags", "category")}
    return await update(actor=actor, article_id=article_id, expected_version=article.version, changes=snap,
                        note=f"恢复到第 {version} 版")


# ---- search ----------------------------------------------------------------------------------------------------

_cache: dict[str, Any] = {"key": None, "matcher": None}


async def matcher() -> kbsearch.Matcher:
    """The matcher over published articles, rebuilt when any of them changed (also in another process)."""
    rows = await Article.filter(status="published").order_by("id").values_list("id", "version")
    key = tuple((int(a), int(v)) for a, v in rows)
    if _cache["key"] != key or _cache["matcher"] is None:
        articles = await Article.filter(status="published").order_by("id")
        docs = [kbsearch.Doc(article_id=a.id, texts=(a.title, *(a.questions or []))) for a in articles]
        _cache["matcher"] = kbsearch.Matcher(docs)
        _cache["key"] = key
    m: kbsearch.Matcher = _cache["matcher"]
    return m


async def search(*, query: str, k: int = 3) -> list[SearchResult]:
    """The best published articles for a question (bot answers, agents' quick replies, self-service)."""
    query = query.strip()[:200]
    if not query:
        return []
    hits = await understanding.search(query=query, k=max(1, min(k, 20)))
    articles = {a.id: a for a in await Article.filter(id__in=[h.article_id for h in hits], status="published")}
    return [SearchResult(article=articles[h.article_id], score=h.score, matched=h.matched, fused=h.fused)
            for h in hits if h.article_id in articles]


# ---- import / export -------------------------------------------------------------------------------------------

_FRONT = re.compile(r"^---[ \t]*\n(.*?)\n---[ \t]*\n", re.MULTILINE | re.DOTALL)


def export_markdown(articles: list[Article]) -> str:
    """Articles as Markdown, each a YAML front-matter block followed by its body."""
    parts = []
    for a in articles:
        meta = {"id": a.id, "title": a.title, "category": a.category, "tags": list(a.tags or []),
                "questions": list(a.questions or []), "status": a.status}
        front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False).strip()
        parts.append(f"---\n{front}\n---\n{a.body.strip()}\n")
    return "\n".join(parts)


def parse_markdown(text: str) -> list[dict[str, Any]]:
    """Read articles written by export_markdown (or by hand in the same shape)."""
    text = text.replace("\r\n", "\n")
    blocks: list[tuple[int, int, dict[str, Any]]] = []
    for match in _FRONT.finditer(text):
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            continue
        if isinstance(meta, dict) and "title" in meta:
            blocks.append((match.start(), match.end(), meta))
    if not blocks:
        raise ValidationFailed("没有找到文章：每篇文章以 --- 包围的 YAML 头开始，并含 title", code="no_articles")
    out = []
    for i, (_, end, meta) in enumerate(blocks):
        stop = blocks[i + 1][0] if i + 1 < len(blocks) else len(text)
        out.append({**meta, "body": text[end:stop].strip()})
    return out


def export_csv(articles: list[Article]) -> str:
    """Articles as CSV (tags and questions joined with |)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for a in articles:
        writer.writerow([a.id, a.title, a.category, "|".join(a.tags or []), "|".join(a.questions or []), a.status,
                         a.body])
    return buf.getvalue()


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Read articles from CSV with at least a title column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or "title" not in reader.fieldnames:
        raise ValidationFailed("CSV 第一行必须是列名，且包含 title", code="no_articles")
    return [{k: v for k, v in row.items() if k in CSV_COLUMNS and v is not None} for row in reader]


async def import_articles(*, actor: Actor, items: list[dict[str, Any]]) -> dict[str, int]:
    """Create articles, or update those whose id exists; returns counts."""
    created = updated = 0
    async with atomic():
        for item in items:
            fields: dict[str, Any] = {k: item[k] for k in ("title", "body", "questions", "tags", "category", "status")
                                      if k in item}
            raw_id = str(item.get("id") or "").strip()
            existing = await Article.get_or_none(id=int(raw_id)) if raw_id.isdigit() else None
            if existing is not None:
                await update(actor=actor, article_id=existing.id, expected_version=existing.version, changes=fields,
                             note="导入")
                updated += 1
            else:
                await create(actor=actor, note="导入", **{"status": "draft", **fields})
                created += 1
    return {"created": created, "updated": updated}


# ---- from tickets back to knowledge ----------------------------------------------------------------------------

_LONG_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]*\d{6,}[0-9A-Za-z]*")
REDACTED = "［已隐去］"


def strip_customer_details(text: str, *, names: tuple[str, ...] = ()) -> str:
    """Remove phone numbers, e-mail addresses, ID cards (stored tokenised or not), order numbers and the customer's
    names from a text."""
    text = pii.TOKEN.sub(REDACTED, text)
    for start, end, _, _ in reversed(pii.find_pii(text)):
        text = text[:start] + REDACTED + text[end:]
    text = _LONG_NUMBER.sub(REDACTED, text)
    for name in names:
        if len(name) >= 2:
            text = text.replace(name, "客户")
    return text


async def draft_from_ticket(*, actor: Actor, ticket_id: int) -> Article:
    """Turn a resolved ticket into a draft article: the customer's questions as phrasings, the replies as body."""
    ticket = await tickets.get(actor=actor, ticket_id=ticket_id)
    if ticket.status not in ("resolved", "closed"):
        raise ValidationFailed("只有已解决或已关闭的工单可以转为知识库文章", code="ticket_not_resolved")
    customer = await Customer.get_or_none(id=ticket.customer_id)  # type: ignore[attr-defined]
    names = (customer.name,) if customer and customer.name else ()
    messages = await Message.filter(ticket_id=ticket.id).order_by("id")
    asked = [strip_customer_details(m.text, names=names).strip() for m in messages
             if m.direction == "in" and m.text.strip()]
    answers = [strip_customer_details(m.text, names=names).strip() for m in messages
               if m.direction == "out" and m.author_kind in ("staff", "system") and m.text.strip()]
    title = strip_customer_details(ticket.subject, names=names).strip() or "未命名问题"
    questions = [q[:200] for q in asked if q and q != title][:10]
    body = "\n\n".join(answers) or "（请补充答案）"
    return await create(actor=actor, title=title[:200], body=body, questions=questions, category=ticket.category,
                        status="draft", source_ticket_id=ticket.id, note=f"由工单 {ticket.number} 生成")


# ---- knowledge gaps --------------------------------------------------------------------------------------------


async def record_query(*, channel: str, customer_id: int | None, text: str, best_article_id: int | None,
                       score: float, outcome: str, runner_up: float = 0.0, fused: bool = False) -> None:
    """Log one question the bot handled (the gap report reads the unanswered ones; calibration the scores)."""
    await BotQuery.create(channel=channel, customer_id=customer_id, text=text[:500],
                          best_article_id=best_article_id, score=score, outcome=outcome, runner_up=runner_up,
                          fused=fused)


async def knowledge_gaps(*, since: datetime | None = None, limit: int = 50,
                         similarity: float = 0.5) -> list[dict[str, Any]]:
    """Questions the bot could not answer, grouped by similarity, most frequent group first."""
    since = since or utcnow() - timedelta(days=30)
    rows = await BotQuery.filter(outcome__in=["no_match", "handoff"], created_at__gte=since).order_by("id").limit(
        5000)
    rows = [r for r in rows if kbsearch.normalize(r.text)]
    texts = [r.text for r in rows]
    if not texts:
        return []
    index = kbsearch.Matcher([kbsearch.Doc(article_id=i, texts=(t,)) for i, t in enumerate(texts)])
    scores = index.score_matrix(texts)
    columns = [article_id for article_id, _ in index.rows]
    assigned: dict[int, int] = {}
    groups: list[list[int]] = []
    for i in range(len(texts)):
        if i in assigned:
            continue
        members = [i] + [columns[c] for c in range(len(columns))
                         if scores[i, c] >= similarity and columns[c] != i and columns[c] not in assigned]
        for m in members:
            assigned[m] = len(groups)
        groups.append(members)
    report: list[dict[str, Any]] = []
    for members in groups:
        examples: list[str] = []
        for m in members:
            if texts[m] not in examples:
                examples.append(texts[m])
        report.append({"question": texts[members[0]], "count": len(members), "examples": examples[:5],
                       "last_asked": max(rows[m].created_at for m in members).isoformat()})
    report.sort(key=lambda g: (-_count(g), str(g["question"])))
    return report[:limit]


def _count(group: dict[str, Any]) -> int:
    value = group["count"]
    return value if isinstance(value, int) else 0


# ---- the bot's labelled answers (calibration reads them) -------------------------------------------------------

VERDICTS = ("right", "wrong")


async def record_verdict(*, customer_id: int, article_id: int | None, right: bool) -> None:
    """A customer's 解决了 / 没解决 after the bot's answer: the verdict of that answer (the newest one unlabelled)."""
    row = await BotQuery.filter(customer_id=customer_id, outcome__in=["answered", "chosen"], verdict__isnull=True,
                                **({"best_article_id": article_id} if article_id else {})).order_by("-id").first()
    if row is not None:
        await BotQuery.filter(id=row.id).update(verdict="right" if right else "wrong", verdict_source="customer")


async def label_menu_choice(*, customer_id: int, article_id: int) -> None:
    """A customer picked an article from the bot's menu: the menu's question is labelled (its best match was right
    if it is the one picked)."""
    row = await BotQuery.filter(customer_id=customer_id, outcome="menu", verdict__isnull=True).order_by("-id").first()
    if row is not None:
        right = row.best_article_id == article_id
        await BotQuery.filter(id=row.id).update(verdict="right" if right else "wrong", verdict_source="menu_choice",
                                                correct_article_id=None if right else article_id)


async def set_verdict(*, actor: Actor, query_id: int, verdict: str, article_id: int | None = None) -> BotQuery:
    """An agent confirms or corrects the bot's choice for a question (optionally naming the right article)."""
    if verdict not in VERDICTS:
        raise ValidationFailed("verdict 必须是 right 或 wrong", code="invalid_verdict")
    row = await BotQuery.get_or_none(id=query_id)
    if row is None or row.best_article_id is None:
        raise NotFound("没有这条机器人记录")
    if article_id is not None:
        await get(article_id=article_id)
        verdict = "right" if article_id == row.best_article_id else "wrong"
    await BotQuery.filter(id=row.id).update(verdict=verdict, verdict_source="agent",
                                            correct_article_id=article_id if verdict == "wrong" else None)
    return await BotQuery.get(id=row.id)


def serialize_query(row: BotQuery) -> dict[str, Any]:
    """The API shape of one logged bot question."""
    return {"id": row.id, "text": row.text, "outcome": row.outcome, "best_article_id": row.best_article_id,
            "score": round(row.score, 4), "runner_up": round(row.runner_up, 4), "fused": row.fused,
            "verdict": row.verdict, "verdict_source": row.verdict_source,
            "correct_article_id": row.correct_article_id, "created_at": row.created_at.isoformat()}
