"""Settings of the knowledge base and the bot, read from the environment (defaults measured in bench/kb_eval.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from app.errors import ConfigError


@dataclass(frozen=True)
class BotConfig:
    #: channel kinds on which the bot answers first (an account's config {"bot": true|false} overrides)
    channels: frozenset[str] = frozenset({"wecom_kf"})
    # Scores fused with the sentence model (app.kb.understanding). The best match is answered directly when it
    # scores at least answer_score (and menu_threshold) and leads the runner-up by answer_margin. Chosen by
    # `python -m bench.kb_eval --tune` on the ATEC dev split: the pair answering the most questions of a
    # 600-article index with >= 92% precision there and >= 90% on the 8,455-article index (the score adds nothing
    # beyond the margin on that data, so it stays 0). Reported on the test split by the same bench.
    answer_score: float = 0.0
    answer_margin: float = 0.24
    #: below a direct answer, a best match at least this good gets a menu of the top choices; below, no match
    menu_threshold: float = 0.30
    # The same three for lexical scores alone (the model could not load, or an article awaits its vectors),
    # calibrated the same way on the lexical matcher (the previous margin 0.40 was right on 87% of its answers).
    lexical_answer_score: float = 0.0
    lexical_answer_margin: float = 0.52
    lexical_menu_threshold: float = 0.30
    #: unanswered questions in a row before handing off
    max_failures: int = 2
    #: customers at this VIP level or above go straight to a person
    vip_level: int = 1
    #: how many choices a menu offers
    menu_size: int = 3

    def decide(self, *, best: float, runner_up: float, fused: bool) -> str:
        """"answer", "menu" or "none" for a best score and the runner-up's, on the thresholds of that kind of score."""
        if fused:
            score, margin, menu = self.answer_score, self.answer_margin, self.menu_threshold
        else:
            score, margin, menu = self.lexical_answer_score, self.lexical_answer_margin, self.lexical_menu_threshold
        if best >= max(score, menu) and best - runner_up >= margin:
            return "answer"
        return "menu" if best >= menu and best > 0.0 else "none"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number between 0 and 1") from exc
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number between 0 and 1")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if not raw.strip().isdigit():
        raise ConfigError(f"{name} must be a whole number")
    return int(raw)


def parse_bot_config(env: Mapping[str, str]) -> BotConfig:
    """Read BOT_* and KB_* variables (errors name the variable)."""
    raw_channels = env.get("BOT_CHANNELS")
    channels = BotConfig.channels if raw_channels is None else frozenset(
        c.strip() for c in raw_channels.split(",") if c.strip())
    return BotConfig(
        channels=channels,
        answer_score=_float(env, "KB_ANSWER_SCORE", BotConfig.answer_score),
        answer_margin=_float(env, "KB_ANSWER_MARGIN", BotConfig.answer_margin),
        menu_threshold=_float(env, "KB_MENU_THRESHOLD", BotConfig.menu_threshold),
        lexical_answer_score=_float(env, "KB_LEXICAL_ANSWER_SCORE", BotConfig.lexical_answer_score),
        lexical_answer_margin=_float(env, "KB_LEXICAL_ANSWER_MARGIN", BotConfig.lexical_answer_margin),
        lexical_menu_threshold=_float(env, "KB_LEXICAL_MENU_THRESHOLD", BotConfig.lexical_menu_threshold),
        max_failures=max(1, _int(env, "BOT_MAX_FAILURES", BotConfig.max_failures)),
        vip_level=_int(env, "BOT_VIP_LEVEL", BotConfig.vip_level),
        menu_size=max(1, min(10, _int(env, "BOT_MENU_SIZE", BotConfig.menu_size))),
    )


@lru_cache(maxsize=1)
def load_bot_config() -> BotConfig:
    """The bot settings in force (cached for the process; tests call cache_clear)."""
    return parse_bot_config(os.environ)
