"""Per-deployment calibration: labels from customers, menus and agents; thresholds fitted at >= 90% precision,
stored and used; the report of precision and answered share over time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from app.channels.models import ChannelAccount
from app.errors import NotFound, ValidationFailed
from app.kb import bot, calibration
from app.kb import service as kb
from app.kb.models import BotCalibration, BotQuery, BotSession
from app.security.scope import SYSTEM
from app.tickets.models import TicketEvent
from app.timeutil import local, utcnow
from tests.app.kb.test_bot import say, sent


@pytest.fixture
async def account(db: None, recording: Any, articles: list[Any]) -> ChannelAccount:
    return await ChannelAccount.create(kind="test", key="test", name="测试", config={"bot": True})


@pytest.fixture(autouse=True)
def _forget() -> Any:
    calibration.forget()
    yield
    calibration.forget()


def test_choose_answers_the_most_questions_that_keep_the_target_precision() -> None:
    score = np.array([0.8] * 40)
    margin = np.array([0.40] * 20 + [0.15] * 10 + [0.10] * 10)
    right = np.array([True] * 30 + [False] * 10)
    # every margin above 0.10 answers the 30 right ones; ties go to the stricter thresholds
    assert calibration.choose(score, margin, right) == (0.8, 0.15, 1.0, 0.75)
    # answering the 0.10 group too would be 33 right of 40 (82.5%): not enough
    right[30:33] = True
    assert calibration.choose(score, margin, right) == (0.8, 0.15, 1.0, 0.75)
    # at a lower target, on the point estimate, it is worth it
    assert calibration.choose(score, margin, right, target=0.8, z=0.0) == (0.8, 0.1, 0.825, 1.0)
    # but 33 of 40 is not surely above 80%: with the uncertainty counted the 30 sure answers stay
    assert calibration.choose(score, margin, right, target=0.8) == (0.8, 0.15, 1.0, 0.75)
    assert round(calibration.lower_bound(33, 40), 4) == 0.7572
    # nine right answers out of ten are 90% on the point estimate, not surely 90%
    few = right[:10].copy()
    few[0] = False
    assert calibration.choose(score[:10], margin[:10], few, z=0.0) == (0.8, 0.4, 0.9, 1.0)
    assert calibration.choose(score[:10], margin[:10], few) is None
    assert calibration.choose(score[:5], margin[:5], right[:5], z=0.0) is None  # fewer than MIN_ANSWERED answers


async def _labelled(n_right: int, margin_right: float, n_wrong: int, margin_wrong: float, *, fused: bool) -> None:
    for right, n, margin in ((True, n_right, margin_right), (False, n_wrong, margin_wrong)):
        for _ in range(n):
            await BotQuery.create(text="q", best_article_id=1, score=0.8, runner_up=0.8 - margin, fused=fused,
                                  outcome="menu", verdict="right" if right else "wrong", verdict_source="agent")


async def test_calibrate_stores_thresholds_per_kind_of_score_only_with_enough_labels(db: None) -> None:
    await _labelled(30, 0.15, 10, 0.10, fused=True)
    await _labelled(5, 0.5, 5, 0.1, fused=False)
    fused, lexical = await calibration.calibrate()
    assert (fused.kind, fused.labelled, fused.answer_score, fused.answer_margin, fused.precision,
            fused.answered_share, fused.stored) == ("fused", 40, 0.8, 0.15, 1.0, 0.75, True)
    # the shipped margin 0.24 answers none of them
    assert (fused.current_precision, fused.current_share) == (None, 0.0)
    assert (lexical.stored, lexical.problem) == (False, "已标注的问题只有 10 个，至少需要 30 个")
    row = await BotCalibration.get(kind="fused", active=True)
    assert (row.answer_score, row.answer_margin, row.labelled) == (0.8, 0.15, 40)
    cfg = await calibration.bot_config()
    assert (cfg.answer_score, cfg.answer_margin) == (0.8, 0.15)
    assert cfg.lexical_answer_margin == 0.52  # shipped, not calibrated
    # a second calibration replaces the first
    await calibration.calibrate()
    assert await BotCalibration.filter(kind="fused", active=True).count() == 1


async def test_fused_labels_from_before_the_active_adapter_do_not_count(db: None) -> None:
    from app.kb.models import EmbeddingAdapter

    await _labelled(30, 0.15, 10, 0.10, fused=True)
    await _labelled(30, 0.5, 0, 0.1, fused=False)
    await BotQuery.all().update(created_at=datetime(2026, 11, 1, tzinfo=UTC))
    await EmbeddingAdapter.create(base_model="e5", dim=2, weights="", active=True)
    fused, lexical = await calibration.calibrate()
    assert (fused.labelled, fused.stored) == (0, False)
    assert (lexical.labelled, lexical.stored) == (30, True)  # lexical scores do not depend on the adapter


async def test_an_explicit_setting_wins_over_the_stored_calibration(db: None, monkeypatch: Any) -> None:
    await BotCalibration.create(kind="fused", answer_score=0.5, answer_margin=0.1, precision=0.95,
                                answered_share=0.5, labelled=40)
    assert (await calibration.bot_config()).answer_margin == 0.1
    monkeypatch.setenv("KB_ANSWER_MARGIN", "0.3")
    from app.kb.config import load_bot_config

    load_bot_config.cache_clear()
    assert (await calibration.bot_config()).answer_margin == 0.3


async def test_no_thresholds_reach_the_target_nothing_is_stored(db: None) -> None:
    await _labelled(20, 0.2, 20, 0.3, fused=True)
    fused, _ = await calibration.calibrate()
    assert (fused.stored, fused.problem) == (False, "没有阈值能让准确率达到 90%")
    assert await BotCalibration.all().count() == 0


async def test_customers_saying_solved_or_not_label_the_bots_answer(account: Any, articles: list[Any]) -> None:
    await say(account, "密码忘了怎么办")
    out = await say(account, "解决了")
    assert out.ticket is None and (await sent())[-1]["text"] == bot.SOLVED_TEXT
    answered = await BotQuery.get(outcome="answered")
    assert (answered.verdict, answered.verdict_source, answered.fused) == ("right", "customer", False)
    assert answered.runner_up < answered.score
    await say(account, "发票怎么开", user="u-2")
    out = await say(account, "没解决", user="u-2")
    assert out.created_ticket and out.ticket is not None
    assert (await TicketEvent.get(ticket_id=out.ticket.id, kind="bot_handoff")).reason == "not_solved"
    second = await BotQuery.filter(outcome="answered").order_by("-id").first()
    assert second is not None and second.verdict == "wrong"
    session = await BotSession.get(customer_id=out.ticket.customer_id)  # type: ignore[attr-defined]
    assert session.mode == "human"


async def test_a_menu_pick_labels_the_menus_question(account: Any, articles: list[Any]) -> None:
    await say(account, "钱和发票")
    menu = await BotQuery.get(outcome="menu")
    assert menu.best_article_id == articles[2].id
    await say(account, "2")  # 如何申请退款, not the best match
    menu = await BotQuery.get(id=menu.id)
    assert (menu.verdict, menu.verdict_source, menu.correct_article_id) == ("wrong", "menu_choice", articles[0].id)


async def test_agents_confirm_or_correct_the_bots_choice(db: None, articles: list[Any]) -> None:
    row = await BotQuery.create(text="怎么退钱", best_article_id=articles[0].id, score=0.7, outcome="answered")
    assert (await kb.set_verdict(actor=SYSTEM, query_id=row.id, verdict="right")).verdict == "right"
    fixed = await kb.set_verdict(actor=SYSTEM, query_id=row.id, verdict="right", article_id=articles[1].id)
    assert (fixed.verdict, fixed.verdict_source, fixed.correct_article_id) == ("wrong", "agent", articles[1].id)
    with pytest.raises(ValidationFailed):
        await kb.set_verdict(actor=SYSTEM, query_id=row.id, verdict="maybe")
    with pytest.raises(NotFound):
        await kb.set_verdict(actor=SYSTEM, query_id=row.id + 99, verdict="right")


async def test_report_gives_precision_and_answered_share_per_day(db: None) -> None:
    for outcome, verdict in [("answered", "right"), ("answered", "right"), ("answered", "wrong"), ("answered", None),
                             ("menu", "right"), ("no_match", None), ("handoff", None)]:
        await BotQuery.create(text="q", best_article_id=1, score=0.5, outcome=outcome, verdict=verdict)
    report = await calibration.report(days=7)
    today = local(utcnow()).date().isoformat()
    assert report["series"] == [{"date": today, "asked": 6, "answered": 4, "labelled": 3, "right": 2,
                                 "answered_share": 0.6667, "precision": 0.6667}]
    assert report["totals"]["precision"] == 0.6667 and report["calibrations"] == []
