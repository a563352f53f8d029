"""设置 · 审批设置: the money threshold above which refunds and compensation need approval, the approver levels by
amount, and how long an approver has before the request passes to the next level up.

Saved through ``approvals.policy.save`` (checked by the APPROVAL_* settings' own parser, audited); "恢复为环境变量"
drops the console's values so the environment applies again. Admins change them; leads see them.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import ValidationFailed
from approvals import policy as approval_policy
from h5.console.settings import manager, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/approvals"
FIELDS = ("threshold", "levels", "timeout_minutes")


@console_page
async def approvals_page(request: Request, ctx: Ctx) -> Response:
    """The thresholds in force, and (admins) the form to change them."""
    current = await approval_policy.current()
    values = {"threshold": f"{current.threshold.normalize():f}", "levels": approval_policy.levels_text(current),
              "timeout_minutes": str(current.timeout_minutes)}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {name: ctx.field(name) for name in FIELDS}
        try:
            await approval_policy.save(actor=manager(ctx), **values)
        except ValidationFailed as exc:
            errors, general = split_errors(exc, lambda f: f if f in FIELDS else None)
        else:
            flash(ctx, "审批设置已保存，新发起的审批立即生效")
            return redirect(BASE)
    threshold = f"{current.threshold.quantize(Decimal('0.01'))}"
    return render_console(request, ctx, "console/settings/approvals.html", active="settings.approvals",
                          current=current, threshold=threshold, values=values, errors=errors, general=general,
                          levels=[(f"{a.normalize():f}", n) for a, n in current.levels],
                          can_edit=manager(ctx).is_admin, status=422 if errors or general else 200)


@console_page
async def approvals_reset(request: Request, ctx: Ctx) -> Response:
    """Use the APPROVAL_* settings again."""
    await approval_policy.reset(actor=manager(ctx))
    flash(ctx, "已恢复为环境变量中的审批设置")
    return redirect(BASE)


routes: list[BaseRoute] = [
    Route("/settings/approvals", approvals_page, methods=["GET", "POST"]),
    Route("/settings/approvals/reset", approvals_reset, methods=["POST"]),
]
