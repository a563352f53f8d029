"""The bot's thresholds: one set for fused scores, one for lexical scores, each read from the environment."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.kb.config import BotConfig, parse_bot_config

CFG = BotConfig(answer_score=0.6, answer_margin=0.2, menu_threshold=0.3, lexical_answer_score=0.8,
                lexical_answer_margin=0.4, lexical_menu_threshold=0.35)


def test_decide_answers_only_above_both_the_score_and_the_margin() -> None:
    assert CFG.decide(best=0.65, runner_up=0.40, fused=True) == "answer"
    assert CFG.decide(best=0.65, runner_up=0.50, fused=True) == "menu"
    assert CFG.decide(best=0.55, runner_up=0.0, fused=True) == "menu"
    assert CFG.decide(best=0.29, runner_up=0.0, fused=True) == "none"


def test_decide_uses_the_lexical_thresholds_for_lexical_scores() -> None:
    assert CFG.decide(best=0.65, runner_up=0.40, fused=False) == "menu"
    assert CFG.decide(best=0.85, runner_up=0.40, fused=False) == "answer"
    assert CFG.decide(best=0.32, runner_up=0.0, fused=False) == "none"


def test_thresholds_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    cfg = parse_bot_config({"KB_ANSWER_SCORE": "0.7", "KB_LEXICAL_ANSWER_MARGIN": "0.5"})
    assert (cfg.answer_score, cfg.lexical_answer_margin) == (0.7, 0.5)
    assert cfg.answer_margin == BotConfig.answer_margin
    with pytest.raises(ConfigError, match="KB_LEXICAL_MENU_THRESHOLD"):
        parse_bot_config({"KB_LEXICAL_MENU_THRESHOLD": "2"})
