"""Approval jobs and wiring (imported by app.worker.load_jobs): the timeout cron, the WeCom approval path, and the
customer-reply hook that takes refund confirmation codes."""

from __future__ import annotations

from typing import Any

from app.channels.base import register_adapter
from app.tickets.closing import register_reply_hook
from app.worker import register_job
from approvals import flows, service, wecom_oa

#: seconds between timeout checks
TIMEOUT_EVERY = 60


async def approvals_tick(ctx: dict[str, Any]) -> int:
    """Cron job: approvals whose approver waited too long climb to the next leader."""
    return await service.escalate_overdue()


register_job(approvals_tick, every_seconds=TIMEOUT_EVERY)
register_adapter(wecom_oa.WeComOAAdapter())
register_reply_hook(flows.customer_reply_hook)

try:
    from app.channels.wecom_app.handlers import register_wecom_app_handler
except ImportError:  # a deployment without the WeCom app channel has no approval-app path
    pass
else:
    register_wecom_app_handler("sys_approval_change", wecom_oa.on_sys_approval_change)
