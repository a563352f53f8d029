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
    #: the best match is answered directly when it leads the runner-up by this much (the margin that kept 90%
    #: precision on the dev split of bench/kb_eval.py's 600-article index was 0.39)
    answer_margin: float = 0.40
    #: below a direct answer, a best match at least this good gets a menu of the top choices; below, no match
    menu_threshold: float = 0.30
    #: unanswered questions in a row before handing off
    max_failures: int = 2
    #: customers at this VIP level or above go straight to a person
    vip_level: int = 1
    #: how many choices a menu offers
    menu_size: int = 3


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
    answer = _float(env, "KB_ANSWER_MARGIN", BotConfig.answer_margin)
    menu = _float(env, "KB_MENU_THRESHOLD", BotConfig.menu_threshold)
    return BotConfig(
        channels=channels,
        answer_margin=answer,
        menu_threshold=menu,
        max_failures=max(1, _int(env, "BOT_MAX_FAILURES", BotConfig.max_failures)),
        vip_level=_int(env, "BOT_VIP_LEVEL", BotConfig.vip_level),
        menu_size=max(1, min(10, _int(env, "BOT_MENU_SIZE", BotConfig.menu_size))),
    )


@lru_cache(maxsize=1)
def load_bot_config() -> BotConfig:
    """The bot settings in force (cached for the process; tests call cache_clear)."""
    return parse_bot_config(os.environ)
