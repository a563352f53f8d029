"""设置 · 审批设置: the money threshold above which refunds and compensation need approval, the approver levels by
amount, how long an approver has before the request passes to the next level up, the kinds that go through WeCom's
approval app (with their template ids) and the fallback approvers.

Saved through ``approvals.policy.save`` (checked by the APPROVAL_* settings' own parser, audited); "恢复为环境变量"
drops the console's values so the environment applies again. Admins change them; leads see them.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.errors import ValidationFailed
from app.tickets import fallback
from approvals import policy as approval_policy
from approvals.service import KIND_LABELS
from h5.console.settings import manager, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/approvals"
FIELDS = ("threshold", "levels", "timeout_minutes", "oa_templates", "fallback")


@console_page
async def approvals_page(request: Request, ctx: Ctx) -> Response:
    """The thresholds in force, and (admins) the form to change them."""
    current = await approval_policy.current()
    values = {"threshold": f"{current.threshold.normalize():f}", "levels": approval_policy.levels_text(current),
              "timeout_minutes": str(current.timeout_minutes),
              "oa_templates": approval_policy.oa_templates_text(current), "fallback": ",".join(current.fallback)}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {name: ctx.field(name) for name in FIELDS}
        # a form from before these fields existed (an open tab) leaves the stored or environment values alone
        kept = {name: values[name] if ctx.form is not None and name in ctx.form else None
                for name in ("oa_templates", "fallback")}
        try:
            await approval_policy.save(actor=manager(ctx), threshold=values["threshold"], levels=values["levels"],
                                       timeout_minutes=values["timeout_minutes"], **kept)
        except ValidationFailed as exc:
            errors, general = split_errors(exc, lambda f: f if f in FIELDS else None)
        else:
            flash(ctx, "审批设置已保存，新发起的审批立即生效")
            return redirect(BASE)
    threshold = f"{current.threshold.quantize(Decimal('0.01'))}"
    # who would be asked now: unknown or inactive userids of the environment drop out, as they do in a chain
    people = fallback.names(await fallback.fallback_approvers())
    fallback_text = people if current.fallback else f"全部管理员（{people or '暂无'}）"
    return render_console(request, ctx, "console/settings/approvals.html", active="settings.approvals",
                          current=current, threshold=threshold, values=values, errors=errors, general=general,
                          levels=[(f"{a.normalize():f}", n) for a, n in current.levels],
                          oa_templates=[(KIND_LABELS.get(k, k), t) for k, t in current.oa_templates],
                          fallback_text=fallback_text or "暂无可用的兜底审批人",
                          kinds=list(KIND_LABELS.items()),
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
