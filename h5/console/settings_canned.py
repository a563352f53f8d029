"""设置 · 快捷回复: canned replies (shared, or per skill group) through ``app.replies.service``, which checks them with
its ``CannedReplyIn`` model and writes the audit rows. Admins manage all; a lead the replies of their groups."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import ValidationFailed
from app.replies import service as replies
from app.replies.service import CannedReplyIn
from app.staff.models import SkillGroup
from h5.console.settings import manager, parse_form, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/canned"
LABELS = {"title": "标题", "body": "内容", "category": "分类", "shortcut": "快捷键", "group_id": "适用技能组",
          "active": "启用"}


async def _groups(ctx: Ctx) -> list[tuple[str, str]]:
    actor = manager(ctx)
    query = SkillGroup.all() if actor.is_admin else SkillGroup.filter(id__in=sorted(actor.group_ids or ()))
    shared = [("", "所有人（共享）")] if actor.is_admin else []
    return shared + [(str(g.id), g.name) for g in await query.order_by("id")]


@console_page
async def canned_page(request: Request, ctx: Ctx) -> Response:
    """The replies the viewer may use and manage."""
    q = request.query_params.get("q", "")
    rows = await replies.list_replies(actor=manager(ctx), q=q or None, include_inactive=True)
    return render_console(request, ctx, "console/settings/canned.html", active="settings.canned", rows=rows,
                          filters=[{"name": "q", "label": "搜索", "value": q, "placeholder": "标题、内容或快捷键"}])


@console_page
async def canned_edit(request: Request, ctx: Ctx) -> Response:
    """Create (``/new``) or change a reply."""
    actor = manager(ctx)
    row = await replies.get_reply(actor=actor, reply_id=int(request.path_params["reply_id"])) \
        if "reply_id" in request.path_params else None
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "GET":
        values: dict[str, Any] = {"title": row.title, "body": row.body, "category": row.category,
                                  "shortcut": row.shortcut, "group_id": str(row.group_id or ""),  # type: ignore[attr-defined]
                                  "active": row.active} if row else {"active": True}
    else:
        values = {name: ctx.field(name) for name in LABELS}
        values["active"] = bool(ctx.field("active"))
        data = {**values, "group_id": values["group_id"] or None}
        try:
            saved = await replies.save_reply(actor=actor, reply_id=row.id if row else None,
                                             body=parse_form(CannedReplyIn, data, LABELS))
        except ValidationFailed as exc:
            errors, general = split_errors(exc, lambda f: f if f in LABELS else None)
        else:
            flash(ctx, f"快捷回复「{saved.title}」已保存")
            return redirect(BASE)
    title = "新建快捷回复" if row is None else f"快捷回复 · {row.title}"
    return render_console(request, ctx, "console/settings/canned_edit.html", active="settings.canned", title=title,
                          breadcrumb=[("设置", None), ("快捷回复", BASE), (title, None)], row=row, values=values,
                          errors=errors, general=general, groups=await _groups(ctx),
                          status=422 if errors or general else 200)


@console_page
async def canned_delete(request: Request, ctx: Ctx) -> Response:
    """Delete a reply."""
    await replies.delete_reply(actor=manager(ctx), reply_id=int(request.path_params["reply_id"]))
    flash(ctx, "快捷回复已删除")
    return redirect(BASE)


routes: list[BaseRoute] = [
    Route("/settings/canned", canned_page, methods=["GET"]),
    Route("/settings/canned/new", canned_edit, methods=["GET", "POST"]),
    Route("/settings/canned/{reply_id:int}", canned_edit, methods=["GET", "POST"]),
    Route("/settings/canned/{reply_id:int}/delete", canned_delete, methods=["POST"]),
]
