"""Approval jobs (registered by app.setup): the timeout cron."""

from __future__ import annotations

from typing import Any

from approvals import service


async def approvals_tick(ctx: dict[str, Any]) -> int:
    """Cron job: approvals whose approver waited too long climb to the next leader."""
    return await service.escalate_overdue()
