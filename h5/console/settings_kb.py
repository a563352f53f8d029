"""设置 · 知识库: articles (filter, edit in a Markdown textarea with a preview, publish/retire), pending edits of
agents, and the version history with restore.

Every change goes through ``app.kb.service`` (``create``, ``update`` with the version the page was loaded at,
``set_status``, ``publish_pending``, ``discard_pending``, ``restore``), exactly as the ``/api/v1/kb`` endpoints, and
writes an audit row in the same transaction. The preview renders the Markdown with markdown-it-py in CommonMark mode
with raw HTML off (so an article cannot carry script or markup into the console) and unsafe link schemes refused.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import NotFound, ValidationFailed
from app.kb import service as kb
from app.kb.models import Article
from app.security.service import record_audit
from app.staff.models import Staff
from app.uow import atomic
from h5.console.settings import audited, manager, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["render_markdown", "routes"]

BASE = "/console/settings/kb"
PER_PAGE = 50
FIELDS = ("title", "body", "questions", "tags", "category", "status")
CODE_FIELDS = {"title_required": "title", "invalid_status": "status", "invalid_category": "category"}


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str) -> Markup:
    """An article's Markdown as HTML for the preview (raw HTML in the source is shown as text)."""
    # markdown-it escapes every raw HTML tag with html=False, and refuses javascript:/vbscript:/data: links
    return Markup(_md().render(text or ""))


@console_page
async def kb_page(request: Request, ctx: Ctx) -> Response:
    """Articles, newest edit first, filtered by status, category and title."""
    q = request.query_params
    errors: dict[str, str] = {}
    try:
        page = max(1, int(q["page"])) if q.get("page", "").isdigit() else 1
        articles = await kb.list_articles(status=q.get("status") or None, category=q.get("category") or None,
                                          q=q.get("q") or None, limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
    except ValidationFailed as exc:
        errors = {"status" if exc.code == "invalid_status" else "category": exc.message}
        page, articles = 1, []
    filters = [
        {"name": "q", "label": "标题", "value": q.get("q", "")},
        {"name": "category", "label": "分类", "value": q.get("category", "")},
        {"name": "status", "label": "状态", "type": "select", "value": q.get("status", ""),
         "options": [("", "全部"), *kb.STATUS_LABELS.items()]},
    ]
    return render_console(request, ctx, "console/settings/kb.html", active="settings.kb",
                          articles=articles[:PER_PAGE], more=len(articles) > PER_PAGE, page=page, filters=filters,
                          status_labels=kb.STATUS_LABELS, filter_errors=errors, status=422 if errors else 200)


def _values(article: Article | None) -> dict[str, Any]:
    if article is None:
        return {"title": "", "body": "", "questions": "", "tags": "", "category": "", "status": "draft"}
    return {"title": article.title, "body": article.body, "questions": "\n".join(article.questions or []),
            "tags": "\n".join(article.tags or []), "category": article.category, "status": article.status}


async def _form(request: Request, ctx: Ctx, article: Article | None, *, values: dict[str, Any], version: int,
                errors: dict[str, str] | None = None, general: list[str] | None = None,
                preview: Markup | None = None, status: int = 200) -> Response:
    title = "新建知识库文章" if article is None else f"知识库 · {article.title}"
    pending_by = None
    if article is not None and article.pending and article.pending_by_id:
        pending_by = await Staff.get_or_none(id=article.pending_by_id)
    return render_console(request, ctx, "console/settings/kb_edit.html", active="settings.kb", title=title,
                          breadcrumb=[("设置", None), ("知识库", BASE), (title, None)], article=article,
                          values=values, version=version, errors=errors or {}, general=general or [],
                          preview=preview, status=status, status_labels=kb.STATUS_LABELS, pending_by=pending_by,
                          pending_preview=render_markdown(str(article.pending.get("body", "")))
                          if article is not None and article.pending and "body" in article.pending else None)


def _kb_errors(exc: ValidationFailed) -> tuple[dict[str, str], list[str]]:
    field = CODE_FIELDS.get(exc.code)
    if field:
        return {field: exc.message}, []
    return split_errors(exc, lambda where: where if where in FIELDS else None)


@console_page
async def kb_edit(request: Request, ctx: Ctx) -> Response:
    """Write or change an article; 预览 shows the Markdown rendered without saving."""
    actor = manager(ctx)
    article = await kb.get(article_id=int(request.path_params["article_id"])) \
        if "article_id" in request.path_params else None
    if request.method == "GET":
        return await _form(request, ctx, article, values=_values(article), version=article.version if article else 0)
    values = {name: ctx.field(name) for name in FIELDS}
    values["body"] = str(ctx.form.get("body") or "") if ctx.form is not None else ""  # keep the Markdown's spaces
    version = int(ctx.field("version")) if ctx.field("version").isdigit() else -1
    if ctx.field("preview"):
        return await _form(request, ctx, article, values=values, version=version,
                           preview=render_markdown(values["body"]))
    questions, tags = values["questions"].splitlines(), values["tags"].splitlines()
    fields: dict[str, Any] = {"title": values["title"], "body": values["body"], "questions": questions,
                              "tags": tags, "category": values["category"], "status": values["status"]}
    try:
        async with atomic():
            if article is None:
                saved = await kb.create(actor=actor, title=values["title"], body=values["body"],
                                        questions=questions, tags=tags, category=values["category"],
                                        status=values["status"])
                reason = f"新建文章「{saved.title}」"
            else:
                saved = await kb.update(actor=actor, article_id=article.id, expected_version=version,
                                        changes=fields)
                changed = saved.version != article.version or saved.pending != article.pending
                reason = (f"修改文章「{saved.title}」" if saved.version != article.version
                          else f"提交「{saved.title}」的修改待审核") if changed else ""
            if reason:
                await record_audit(actor=actor, action="kb_save", object_type="kb_article",
                                   object_id=str(saved.id), reason=reason)
    except ValidationFailed as exc:
        errors, general = _kb_errors(exc)
        return await _form(request, ctx, article, values=values, version=version, errors=errors, general=general,
                           status=409 if exc.code == "version_conflict" else 422)
    flash(ctx, f"文章「{saved.title}」已保存（第 {saved.version} 版，{kb.STATUS_LABELS[saved.status]}）"
          + ("；修改待组长或管理员发布" if saved.pending else ""))
    return redirect(f"{BASE}/{saved.id}")


@console_page
async def kb_action(request: Request, ctx: Ctx) -> Response:
    """Publish, retire or return to draft; publish or discard an agent's pending edit; restore a version."""
    actor = manager(ctx)
    article = await kb.get(article_id=int(request.path_params["article_id"]))
    action = request.path_params["action"]
    labels = {"published": "发布", "retired": "下线", "draft": "改回草稿"}
    if action in labels:
        async with audited(ctx, action="kb_status", object_type="kb_article", object_id=article.id,
                           reason=f"{labels[action]}文章「{article.title}」"):
            await kb.set_status(actor=actor, article_id=article.id, status=action)
        flash(ctx, f"文章已{labels[action]}")
    elif action == "publish-pending":
        version = int(ctx.field("version")) if ctx.field("version").isdigit() else -1
        async with audited(ctx, action="kb_status", object_type="kb_article", object_id=article.id,
                           reason=f"发布「{article.title}」待审核的修改"):
            await kb.publish_pending(actor=actor, article_id=article.id, expected_version=version)
        flash(ctx, "待审核的修改已发布")
    elif action == "discard-pending":
        async with audited(ctx, action="kb_status", object_type="kb_article", object_id=article.id,
                           reason=f"放弃「{article.title}」待审核的修改"):
            await kb.discard_pending(actor=actor, article_id=article.id)
        flash(ctx, "待审核的修改已放弃")
    elif action == "restore":
        version = int(ctx.field("restore")) if ctx.field("restore").isdigit() else -1
        async with audited(ctx, action="kb_save", object_type="kb_article", object_id=article.id,
                           reason=f"文章「{article.title}」恢复到第 {version} 版"):
            await kb.restore(actor=actor, article_id=article.id, version=version)
        flash(ctx, f"已恢复到第 {version} 版")
    else:
        raise NotFound("页面不存在。")
    return redirect(f"{BASE}/{article.id}")


@console_page
async def kb_versions(request: Request, ctx: Ctx) -> Response:
    """An article's history, newest first, each version restorable."""
    article = await kb.get(article_id=int(request.path_params["article_id"]))
    versions = list(reversed(await kb.list_versions(article_id=article.id)))
    editors = {s.id: s.name for s in await Staff.filter(id__in=[v.editor_id for v in versions  # type: ignore[attr-defined]
                                                                 if v.editor_id is not None])}  # type: ignore[attr-defined]
    title = f"版本历史 · {article.title}"
    return render_console(request, ctx, "console/settings/kb_versions.html", active="settings.kb", title=title,
                          breadcrumb=[("设置", None), ("知识库", BASE), (article.title, f"{BASE}/{article.id}"),
                                      ("版本历史", None)], article=article, versions=versions, editors=editors,
                          status_labels=kb.STATUS_LABELS)


routes: list[BaseRoute] = [
    Route("/settings/kb", kb_page, methods=["GET"]),
    Route("/settings/kb/new", kb_edit, methods=["GET", "POST"]),
    Route("/settings/kb/{article_id:int}", kb_edit, methods=["GET", "POST"]),
    Route("/settings/kb/{article_id:int}/versions", kb_versions, methods=["GET"]),
    Route("/settings/kb/{article_id:int}/{action}", kb_action, methods=["POST"]),
]
