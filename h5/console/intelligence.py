"""智能质量: the bot's precision and answered share over time with its calibrations, how often staff accepted each
kind of ticket suggestion, and the hot topics without a good article (one click drafts an article)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.assist import service as assist
from app.errors import DomainError
from app.kb import calibration, topics
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

PERIODS = {"7": 7, "30": 30, "90": 90}


@console_page
async def overview(request: Request, ctx: Ctx) -> Response:
    """The figures of the bot and of ticket assistance, and the hot topics."""
    days = PERIODS.get(request.query_params.get("days", "30"), 30)
    report = await calibration.report(days=days)
    accuracy = await assist.accuracy()
    hot = await topics.hot_topics(days=min(days, 30), limit=20,
                                  vectors_for=assist.ticket_vectors)
    return render_console(request, ctx, "console/intelligence/index.html", active="intelligence", days=days,
                          periods=[(k, f"近{v}天") for k, v in PERIODS.items()], report=report,
                          accuracy=accuracy, hot=hot)


@console_page
async def draft(request: Request, ctx: Ctx) -> Response:
    """生成草稿: a draft article from a hot topic's resolved tickets."""
    assert ctx.actor is not None
    raw = [str(v) for v in ctx.form.getlist("ticket_id")] if ctx.form else []
    ids = [int(v) for v in raw if v.isdigit()][:20]
    try:
        article = await topics.draft_from_tickets(actor=ctx.actor, ticket_ids=ids, title=ctx.field("title") or None)
    except DomainError as exc:
        flash(ctx, exc.message)
        return redirect("/console/intelligence")
    flash(ctx, f"已生成草稿文章《{article.title}》，请在知识库中完善后发布。")
    return redirect("/console/intelligence")


routes: list[BaseRoute] = [
    Route("/intelligence", overview, methods=["GET"]),
    Route("/intelligence/draft", draft, methods=["POST"]),
]
