"""Jobs of ticket assistance: embed tickets whose text changed, rebuild the index of resolved tickets, retrain the
category and priority classifiers. Each is idempotent (a second run finds nothing to do or produces the same)."""

from __future__ import annotations

from typing import Any

from app.assist import service

#: periods (app.setup registers the crons with these)
EMBED_EVERY = 60
INDEX_EVERY = 600
TRAIN_EVERY = 86400


async def assist_embed_tickets(ctx: dict[str, Any]) -> int:
    """Job (cron, every EMBED_EVERY seconds): store vectors of tickets whose text changed."""
    return await service.embed_tickets()


async def assist_build_index(ctx: dict[str, Any]) -> int:
    """Job (cron, every INDEX_EVERY seconds): rebuild the resolved tickets' index when their vectors changed."""
    return await service.build_index()


async def assist_train(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Job (cron, daily): refit the category and priority classifiers on the closed tickets."""
    reports = [await service.train(kind=kind) for kind in ("category", "priority")]
    return [r.__dict__ for r in reports]
