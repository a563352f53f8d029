"""The console's home page: a few live counts in the viewer's scope (a lead's groups, an agent's own tickets)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from app.staff.models import Staff
from app.tickets.assignment import LIVE
from app.tickets.models import Ticket
from app.timeutil import local, utcnow
from h5.console import nav
from h5.console.web import console_page, render_console
from h5.web import Ctx

__all__ = ["home"]


def _today_start() -> datetime:
    """Midnight of today on the desk's clock, in UTC (the database compares UTC)."""
    now = local(utcnow())
    return now.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


@console_page(roles=nav.ALL_ROLES)
async def home(request: Request, ctx: Ctx) -> Response:
    """概览: live ticket counts (scoped like every ticket query) and, for managers, who is on duty."""
    assert ctx.actor is not None and ctx.staff is not None
    if ctx.actor.role == "agent":
        base = Ticket.filter(assignee_id=ctx.staff.id)
    else:
        base = Ticket.filter(ctx.actor.ticket_filter())
    live = base.filter(status__in=LIVE)
    cards = [
        ("待处理工单", await live.count(), "新建、处理中和挂起的工单"),
        ("未分配", await live.filter(assignee_id=None).count(), "还没有处理人的工单"),
        ("已超时", await live.filter(sla_breached=True).count(), "已违反服务时限（SLA）的工单"),
        ("今日新建", await base.filter(created_at__gte=_today_start()).count(), "今天 0 点以来创建的工单"),
    ]
    if ctx.actor.role == "agent":
        cards[1] = ("今日已解决", await base.filter(status__in=("resolved", "closed"),
                                                   resolved_at__gte=_today_start()).count(), "今天解决的我的工单")
    on_duty = await Staff.filter(status="active", on_duty=True).count() if ctx.actor.role != "agent" else None
    return render_console(request, ctx, "console/home.html", active="home", cards=cards, on_duty=on_duty,
                          breadcrumb=[("概览", None)])
