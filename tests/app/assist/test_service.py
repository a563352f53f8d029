"""Assistance on a ticket: vectors from the job only, classifiers from closed tickets, suggestions with their why,
accept/dismiss recorded and applied only by a person, similar tickets within the caller's scope."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from app import idle
from app.assist import service as assist
from app.assist.models import AssistModel, Suggestion, TicketVector
from app.errors import NotFound, ValidationFailed
from app.kb import understanding
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow
from tests import factories
from tests.app.assist.conftest import BagEmbedder


async def test_tickets_are_embedded_by_the_job_once_and_again_only_when_their_text_changes(
        desk: dict[str, Any], embedder: BagEmbedder) -> None:
    assert await assist.embed_tickets() == 24
    assert await TicketVector.all().count() == 24
    embedder.embedded.clear()
    assert await assist.embed_tickets() == 0
    first = desk["closed"][0]
    # touched without a text change (a status change, a new assignee): nothing to embed
    await Ticket.filter(id=first.id).update(updated_at=utcnow() + timedelta(seconds=5))
    assert await assist.embed_tickets() == 0
    await Ticket.filter(id=first.id).update(subject="退款到账了但金额不对", updated_at=utcnow() + timedelta(seconds=10))
    assert await assist.embed_tickets() == 1
    assert embedder.embedded == ["退款到账了但金额不对"]
    ticket = await Ticket.get(id=first.id)
    assert await assist.stored_vector(ticket=ticket) is not None


class PolicyEmbedder(BagEmbedder):
    """Records the CPU scheduling policy of the thread each call runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.policies: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.policies.append(os.sched_getscheduler(0))
        return super().embed(texts)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_tickets_are_embedded_at_idle_priority_and_a_run_finding_the_machine_busy_leaves_them(
        desk: dict[str, Any]) -> None:
    model = PolicyEmbedder()
    understanding.set_embedder(model)
    release, started = threading.Event(), threading.Event()

    def earlier_batch() -> None:
        started.set()
        release.wait(30)

    # the idle thread is still on an earlier batch (on a busy machine it waits for free CPU): nothing is handed over
    holding = asyncio.create_task(idle.run(earlier_batch))
    await asyncio.to_thread(started.wait, 30)
    assert await assist.embed_tickets() == 0
    assert (model.embedded, await TicketVector.all().count()) == ([], 0)
    release.set()
    await holding
    # the next run embeds them all, in batches, every one on the idle-priority thread
    assert await assist.embed_tickets() == 24
    assert model.policies == [os.SCHED_IDLE] * 2
    assert await TicketVector.all().count() == 24


async def test_without_the_model_nothing_is_embedded_and_similar_tickets_are_lexical(desk: dict[str, Any]) -> None:
    ticket = desk["closed"][0]
    understanding.set_embedder(None)  # the model could not load on this machine
    assert await assist.embed_tickets() == 0
    assert await assist.stored_vector(ticket=ticket) is None
    assert await assist.ticket_index() is None
    # without vectors similar tickets come from the lexical matcher
    admin = await factories.actor(desk["org"]["people"]["admin"])
    fresh = await _new_ticket(desk, "发票抬头开错了")
    found = await assist.suggestions(actor=admin, ticket_id=fresh.id)
    assert found["vector_ready"] is False
    assert [s["subject"] for s in found["similar"]][:2] == ["发票抬头开错了需要重开"] * 2


async def test_classifiers_learn_from_closed_tickets_and_are_measured_against_the_baseline(
        desk: dict[str, Any], embedder: BagEmbedder) -> None:
    await assist.embed_tickets()
    category = await assist.train(kind="category")
    # held out: the four newest tickets (故障); the routing keywords miss 手机验证码收不到无法登录
    assert (category.trained_on, category.held_out, category.accuracy, category.baseline_accuracy,
            category.active) == (24, 4, 1.0, 0.75, True)
    priority = await assist.train(kind="priority")
    # the most common priority of the older tickets (normal) is wrong on all four (high, urgent, high, high)
    assert (priority.held_out, priority.accuracy, priority.baseline_accuracy, priority.active) == (4, 1.0, 0.0, True)
    model = await AssistModel.get(id=category.model_id)
    assert (model.classes, model.params["dense_dim"]) == (["发票", "故障", "退款"], 64)


async def test_a_model_that_does_not_beat_the_baseline_is_kept_inactive(db: None) -> None:
    customer = await factories.customer()
    from tests.app.assist.conftest import close_ticket

    for i in range(20):
        subject, category = (f"退款开票 {i}", "咨询") if i % 2 else (f"你好 {i}", "物流")
        await close_ticket(customer.id, subject, category, "normal")
    # the newest five, held out: a class the older tickets never had, which the routing keywords know
    for i in range(5):
        await close_ticket(customer.id, f"退款 {i}", "退款", "normal")
    report = await assist.train(kind="category")
    assert (report.held_out, report.accuracy, report.baseline_accuracy, report.active) == (5, 0.0, 1.0, False)
    assert await assist.classifier(kind="category") is None


async def test_too_few_tickets_train_nothing(db: None) -> None:
    report = await assist.train(kind="category")
    assert (report.trained_on, report.model_id, report.active) == (0, None, False)
    with pytest.raises(ValidationFailed):
        await assist.train(kind="status")


async def _new_ticket(desk: dict[str, Any], subject: str, **kw: Any) -> Ticket:
    return await tickets.create(actor=SYSTEM, customer_id=desk["customer"].id, subject=subject, **kw)


async def test_suggestions_show_why_and_change_nothing_until_a_person_accepts(
        desk: dict[str, Any], embedder: BagEmbedder) -> None:
    await assist.embed_tickets()
    await assist.train(kind="category")
    await assist.train(kind="priority")
    ticket = await _new_ticket(desk, "我的退款怎么还没到账", description="申请退款一周了，钱还没退回来，很着急")
    await assist.embed_tickets()
    admin = await factories.actor(desk["org"]["people"]["admin"])
    found = await assist.suggestions(actor=admin, ticket_id=ticket.id)
    assert found["vector_ready"] is True
    cat = found["category"]
    assert (cat["value"], cat["current"], cat["status"]) == ("退款", "", "shown")
    assert cat["reasons"][0].startswith("匹配词：退款")
    assert any(r.startswith("相似工单") and r.endswith("也是“退款”") for r in cat["reasons"])
    assert found["priority"] is None  # the model agrees with the ticket's normal
    assert [s["category"] for s in found["similar"]] == ["退款", "退款", "退款"]
    assert all(s["solution"] and s["status"] == "shown" for s in found["similar"])
    assert found["emotion"]["value"] == "anxiety" and found["emotion"]["reasons"] == ["关键词：着急、还没"]
    assert found["summary"]["text"] == "我的退款怎么还没到账；申请退款一周了，钱还没退回来，很着急"
    # shown, not applied: routing's decision stands until someone accepts
    assert (await Ticket.get(id=ticket.id)).category == ""
    # shown twice: the same rows
    again = await assist.suggestions(actor=admin, ticket_id=ticket.id)
    assert again["category"]["id"] == cat["id"]
    decided = await assist.decide(actor=admin, suggestion_id=cat["id"], decision="accepted")
    assert decided["status"] == "accepted"
    after = await Ticket.get(id=ticket.id)
    assert after.category == "退款" and after.version == ticket.version + 1
    event = await TicketEvent.filter(ticket_id=ticket.id, kind="updated").order_by("-id").first()
    assert event is not None and event.reason.startswith("采纳智能建议")
    # accepting twice is harmless; changing one's mind is not silently allowed
    assert (await assist.decide(actor=admin, suggestion_id=cat["id"], decision="accepted"))["status"] == "accepted"
    with pytest.raises(ValidationFailed) as exc:
        await assist.decide(actor=admin, suggestion_id=cat["id"], decision="dismissed")
    assert exc.value.code == "already_decided"
    await assist.decide(actor=admin, suggestion_id=found["emotion"]["id"], decision="dismissed")
    report = await assist.accuracy()
    assert report["kinds"]["category"] == {"label": "分类", "shown": 1, "accepted": 1, "dismissed": 0,
                                           "acceptance": 1.0}
    assert report["kinds"]["emotion"]["acceptance"] == 0.0
    assert [m["kind"] for m in report["models"]] == ["category", "priority"]


async def test_similar_tickets_stay_inside_the_callers_scope(desk: dict[str, Any], embedder: BagEmbedder) -> None:
    people = desk["org"]["people"]
    ticket = await _new_ticket(desk, "退款还没到账", group_id=desk["org"]["groups"]["service"].id,
                               assignee_id=people["agent"].id)
    await assist.embed_tickets()
    admin = await factories.actor(people["admin"])
    agent = await factories.actor(people["agent"])
    assert len((await assist.suggestions(actor=admin, ticket_id=ticket.id))["similar"]) == 3
    # the closed tickets belong to no group the agent works in
    assert (await assist.suggestions(actor=agent, ticket_id=ticket.id))["similar"] == []
    tech = await factories.actor(people["tech"])
    with pytest.raises(NotFound):
        await assist.suggestions(actor=tech, ticket_id=ticket.id)
    row = await Suggestion.filter(ticket_id=ticket.id, kind="similar").first()
    assert row is not None
    with pytest.raises(NotFound):
        await assist.decide(actor=tech, suggestion_id=row.id, decision="accepted")


async def test_the_index_job_writes_a_file_that_every_process_reads(desk: dict[str, Any],
                                                                   embedder: BagEmbedder) -> None:
    await assist.embed_tickets()
    assert await assist.build_index() == 24
    assert assist.index_path().exists()
    assert await assist.build_index() == 0  # nothing changed
    assist.forget_index()
    index = await assist.ticket_index()
    assert index is not None and (len(index), index.kind) == (24, "exact")


async def test_tickets_never_embedded_are_filled_in_newest_first(desk: dict[str, Any],
                                                                embedder: BagEmbedder) -> None:
    assert await assist.embed_tickets() == 24
    # a ticket from before the model was switched on: older than every embedded one, no vector
    old = desk["closed"][0]
    await TicketVector.filter(ticket_id=old.id).delete()
    await Ticket.filter(id=old.id).update(updated_at=utcnow() - timedelta(days=30))
    embedder.embedded.clear()
    assert await assist.embed_tickets() == 1
    assert embedder.embedded == [assist.ticket_text(old)]
    assert await assist.embed_tickets() == 0


async def test_ticket_vectors_are_the_stored_ones_of_the_model_in_force(
        desk: dict[str, Any], embedder: BagEmbedder) -> None:
    await assist.embed_tickets()
    ids = [t.id for t in desk["closed"][:3]]
    found = await assist.ticket_vectors(ticket_ids=[*ids, 999_999])
    assert sorted(found) == sorted(ids)
    expected = embedder.embed([assist.ticket_text(desk["closed"][0])])[0]
    assert np.allclose(found[ids[0]], expected, atol=1e-6)
    understanding.set_embedder(BagEmbedder(name="bag-2"))  # another model: its vectors are not made yet
    assert await assist.ticket_vectors(ticket_ids=ids) == {}


async def test_embedding_stops_between_batches_while_the_intake_is_backed_up_and_resumes_after(
        desk: dict[str, Any], embedder: BagEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import queue as jobqueue

    monkeypatch.setattr(assist, "EMBED_BATCH", 10)
    backlog = [0]

    async def waiting(lane: str) -> int:
        return backlog[0]

    monkeypatch.setattr(jobqueue, "waiting", waiting)
    real_embed = embedder.embed

    def embed_then_burst(texts: Any) -> Any:
        backlog[0] = jobqueue.INTAKE_BACKLOG + 1  # a burst of callbacks arrives while the first batch is embedded
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed", embed_then_burst)
    assert await assist.embed_tickets() == 10
    assert await TicketVector.all().count() == 10
    backlog[0] = 0
    monkeypatch.setattr(embedder, "embed", real_embed)
    assert await assist.embed_tickets() == 14  # the rest, from the watermark the first batch left
    assert await TicketVector.all().count() == 24
