"""The assistance jobs are wired as crons and do their work when run (twice is harmless)."""

from __future__ import annotations

from typing import Any

from app.assist import jobs
from app.assist.models import AssistModel, TicketVector
from app.setup import setup
from app.worker import CRONS, JOBS
from tests.app.assist.conftest import BagEmbedder


def test_jobs_are_registered_with_their_periods() -> None:
    setup()
    assert {"assist_embed_tickets", "assist_build_index", "assist_train"} <= set(JOBS)
    assert {("assist_embed_tickets", 60), ("assist_build_index", 600), ("assist_train", 86400)} <= set(CRONS)


async def test_running_the_jobs_twice_embeds_indexes_and_trains_once(desk: dict[str, Any],
                                                                    embedder: BagEmbedder) -> None:
    assert await jobs.assist_embed_tickets({}) == 24
    assert await jobs.assist_embed_tickets({}) == 0
    assert await jobs.assist_build_index({}) == 24
    assert await jobs.assist_build_index({}) == 0
    reports = await jobs.assist_train({})
    assert [(r["kind"], r["active"]) for r in reports] == [("category", True), ("priority", True)]
    assert await TicketVector.all().count() == 24 and await AssistModel.filter(active=True).count() == 2
    await jobs.assist_train({})
    # a retrain replaces the active model of each kind
    assert await AssistModel.filter(active=True).count() == 2 and await AssistModel.all().count() == 4
