"""The knowledge-base JSON API under /api/v1/kb (bearer token) and a small admin page at /kb/admin (the same token
or the H5 staff session)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from app.assist import service as assist_service
from app.errors import BadRequest, DomainError, ValidationFailed
from app.http import DbId, Version, api, path_int, query_int, read_json, require_actor
from app.kb import calibration, service, topics
from app.kb.models import Article
from app.security.scope import Actor, actor_for
from app.staff.models import Staff


class ArticleIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = ""
    questions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    category: str = ""
    owner_id: DbId | None = None
    status: str = "draft"


class ArticlePatch(BaseModel):
    version: Version
    title: str | None = None
    body: str | None = None
    questions: list[str] | None = None
    tags: list[str] | None = None
    category: str | None = None
    owner_id: DbId | None = None
    status: str | None = None
    note: str = ""


class ImportIn(BaseModel):
    format: str = "markdown"
    content: str


@api
async def list_articles(request: Request, actor: Actor) -> Response:
    """Articles, filtered by status, category and a title substring."""
    q = request.query_params
    items = await service.list_articles(status=q.get("status"), category=q.get("category"), q=q.get("q"),
                                        limit=query_int(request, "limit", 50) or 50,
                                        offset=query_int(request, "offset", 0) or 0)
    return JSONResponse({"items": [service.serialize(a) for a in items]})


@api
async def create_article(request: Request, actor: Actor) -> Response:
    """Create an article (a draft unless a lead or admin publishes it)."""
    body = await read_json(request, ArticleIn)
    article = await service.create(actor=actor, **body.model_dump())
    return JSONResponse(service.serialize(article), status_code=201)


@api
async def get_article(request: Request, actor: Actor) -> Response:
    """One article."""
    return JSONResponse(service.serialize(await service.get(article_id=path_int(request, "article_id"))))


@api
async def patch_article(request: Request, actor: Actor) -> Response:
    """Edit an article at the version you read; status changes publish, retire or return it to draft."""
    body = await read_json(request, ArticlePatch)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in ("version", "note")}
    article = await service.update(actor=actor, article_id=path_int(request, "article_id"),
                                   expected_version=body.version, changes=changes, note=body.note)
    data = service.serialize(article)
    # 202: an agent's edit of a live article is kept as a pending revision, not yet what customers read
    pending = (actor.role == "agent" and article.status != "draft" and article.pending is not None
               and article.version == body.version and bool(changes))
    return JSONResponse(data, status_code=202 if pending else 200)


class PublishPendingIn(BaseModel):
    version: Version


@api
async def publish_pending(request: Request, actor: Actor) -> Response:
    """Make an article's pending revision live (leads and admins)."""
    body = await read_json(request, PublishPendingIn)
    article = await service.publish_pending(actor=actor, article_id=path_int(request, "article_id"),
                                            expected_version=body.version)
    return JSONResponse(service.serialize(article))


@api
async def discard_pending(request: Request, actor: Actor) -> Response:
    """Throw an article's pending revision away (leads and admins)."""
    article = await service.discard_pending(actor=actor, article_id=path_int(request, "article_id"))
    return JSONResponse(service.serialize(article))


@api
async def article_versions(request: Request, actor: Actor) -> Response:
    """An article's history."""
    rows = await service.list_versions(article_id=path_int(request, "article_id"))
    return JSONResponse({"items": [{"version": v.version, "snapshot": v.snapshot, "note": v.note,
                                    "editor_id": v.editor_id,  # type: ignore[attr-defined]
                                    "created_at": v.created_at.isoformat()} for v in rows]})


@api
async def restore_version(request: Request, actor: Actor) -> Response:
    """Make an old version current again."""
    article = await service.restore(actor=actor, article_id=path_int(request, "article_id"),
                                    version=path_int(request, "version"))
    return JSONResponse(service.serialize(article))


@api
async def search_articles(request: Request, actor: Actor) -> Response:
    """Published answers for a question (agents' quick replies)."""
    results = await service.search(query=request.query_params.get("q", ""), k=query_int(request, "k", 5) or 5)
    return JSONResponse({"items": [{"score": r.score, "matched": r.matched, "article": service.serialize(r.article)}
                                   for r in results]})


async def public_search(request: Request) -> Response:
    """Customer self-service: titles and answers of published articles only, no internal fields."""
    results = await service.search(query=request.query_params.get("q", "")[:100], k=5)
    return JSONResponse({"items": [{"id": r.article.id, "title": r.article.title, "body": r.article.body}
                                   for r in results]})


@api
async def export_articles(request: Request, actor: Actor) -> Response:
    """Export as Markdown (default) or CSV (?format=csv), optionally one status."""
    status = service.status_filter(status=request.query_params.get("status"))
    articles = await Article.filter(**({"status": status} if status else {})).order_by("id")
    if request.query_params.get("format") == "csv":
        return Response(service.export_csv(articles), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="kb.csv"'})
    return Response(service.export_markdown(articles), media_type="text/markdown; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="kb.md"'})


@api
async def import_articles(request: Request, actor: Actor) -> Response:
    """Import Markdown or CSV (articles with a known id are updated, others created as drafts)."""
    body = await read_json(request, ImportIn)
    if body.format not in ("markdown", "csv"):
        raise ValidationFailed("format 必须是 markdown 或 csv", code="invalid_format")
    items = service.parse_markdown(body.content) if body.format == "markdown" else service.parse_csv(body.content)
    return JSONResponse(await service.import_articles(actor=actor, items=items))


@api
async def draft_from_ticket(request: Request, actor: Actor) -> Response:
    """Turn a resolved ticket into a draft article (customer details removed)."""
    article = await service.draft_from_ticket(actor=actor, ticket_id=path_int(request, "ticket_id"))
    return JSONResponse(service.serialize(article), status_code=201)


@api
async def knowledge_gaps(request: Request, actor: Actor) -> Response:
    """Questions the bot could not answer, grouped (?since=ISO date, default the last 30 days)."""
    since: datetime | None = None
    if request.query_params.get("since"):
        try:
            since = datetime.fromisoformat(request.query_params["since"])
        except ValueError as exc:
            raise BadRequest("since 必须是 ISO 日期", code="invalid_parameter") from exc
    groups = await service.knowledge_gaps(since=since, limit=query_int(request, "limit", 50) or 50)
    return JSONResponse({"items": groups})


class VerdictIn(BaseModel):
    #: was the bot's best match right for this question
    verdict: Literal["right", "wrong"]
    #: the article that answers it (when the bot's was wrong); naming the bot's own article means right
    article_id: DbId | None = None


@api
async def bot_query_verdict(request: Request, actor: Actor) -> Response:
    """An agent confirms or corrects the bot's choice for one question (calibration reads these)."""
    body = await read_json(request, VerdictIn)
    row = await service.set_verdict(actor=actor, query_id=path_int(request, "query_id"), verdict=body.verdict,
                                    article_id=body.article_id)
    return JSONResponse(service.serialize_query(row))


@api
async def bot_report(request: Request, actor: Actor) -> Response:
    """The bot per day: questions decided, answered share, labelled answers and the precision among them."""
    return JSONResponse(await calibration.report(days=query_int(request, "days", 30) or 30))


class HotTopicDraftIn(BaseModel):
    #: the topic's resolved tickets (hot_topics' ticket_ids)
    ticket_ids: list[DbId] = Field(min_length=1, max_length=20)
    title: str | None = Field(default=None, max_length=200)


@api
async def hot_topics(request: Request, actor: Actor) -> Response:
    """Recent topics without a good article, by volume and growth (?days=7)."""
    days = query_int(request, "days", 7)
    items = await topics.hot_topics(days=7 if days is None else days, limit=query_int(request, "limit", 20) or 20,
                                    vectors_for=assist_service.ticket_vectors)
    return JSONResponse({"items": items})


@api
async def hot_topic_draft(request: Request, actor: Actor) -> Response:
    """A draft article from a topic's best-resolved tickets."""
    body = await read_json(request, HotTopicDraftIn)
    article = await topics.draft_from_tickets(actor=actor, ticket_ids=list(body.ticket_ids), title=body.title)
    return JSONResponse(service.serialize(article), status_code=201)


# ---- admin page ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                       autoescape=select_autoescape(default=True))


async def _page_actor(request: Request) -> Actor | None:
    if request.headers.get("authorization"):
        return await require_actor(request)
    session = request.app.state.page_session(request)
    if session is None or session.kind != "staff" or session.staff_id is None:
        return None
    staff = await Staff.get_or_none(id=session.staff_id, status="active")
    return await actor_for(staff) if staff is not None else None


async def admin_page(request: Request) -> Response:
    """The knowledge-base admin page: articles, a search tester and the knowledge gaps."""
    try:
        actor = await _page_actor(request)
    except DomainError:
        actor = None
    if actor is None:
        return HTMLResponse("<p>请先在企业微信工作台登录，或携带 API 令牌访问。</p>", status_code=401)
    status = request.query_params.get("status") or None
    q = request.query_params.get("q", "")
    articles = await service.list_articles(status=status, limit=200)
    results = await service.search(query=q, k=5) if q else []
    gaps = await service.knowledge_gaps(limit=20)
    context: dict[str, Any] = {"articles": articles, "status": status, "q": q, "results": results, "gaps": gaps,
                               "labels": service.STATUS_LABELS, "actor": actor}
    return HTMLResponse(_env().get_template("admin.html").render(**context))


routes = [
    Route("/kb/articles", list_articles, methods=["GET"]),
    Route("/kb/articles", create_article, methods=["POST"]),
    Route("/kb/articles/{article_id:int}", get_article, methods=["GET"]),
    Route("/kb/articles/{article_id:int}", patch_article, methods=["PATCH"]),
    Route("/kb/articles/{article_id:int}/versions", article_versions, methods=["GET"]),
    Route("/kb/articles/{article_id:int}/pending/publish", publish_pending, methods=["POST"]),
    Route("/kb/articles/{article_id:int}/pending", discard_pending, methods=["DELETE"]),
    Route("/kb/articles/{article_id:int}/versions/{version:int}/restore", restore_version, methods=["POST"]),
    Route("/kb/search", search_articles, methods=["GET"]),
    Route("/kb/public/search", public_search, methods=["GET"]),
    Route("/kb/export", export_articles, methods=["GET"]),
    Route("/kb/import", import_articles, methods=["POST"]),
    Route("/kb/gaps", knowledge_gaps, methods=["GET"]),
    Route("/kb/bot-queries/{query_id:int}/verdict", bot_query_verdict, methods=["POST"]),
    Route("/kb/bot-report", bot_report, methods=["GET"]),
    Route("/kb/hot-topics", hot_topics, methods=["GET"]),
    Route("/kb/hot-topics/draft", hot_topic_draft, methods=["POST"]),
    Route("/tickets/{ticket_id:int}/kb-draft", draft_from_ticket, methods=["POST"]),
]
page_routes = [Route("/kb/admin", admin_page, methods=["GET"])]
