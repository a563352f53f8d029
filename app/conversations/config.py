"""Conversion and extraction rules, loaded from YAML (CONVERSATION_RULES_FILE, else the bundled defaults)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from app.errors import ConfigError

DEFAULT_FILE = Path(__file__).with_name("rules.yaml")


@dataclass(frozen=True)
class ConversionRules:
    every_message: bool = False
    keywords: tuple[str, ...] = ()
    human_request: tuple[str, ...] = ()
    max_messages: int = 0
    max_minutes: int = 0
    status_query_texts: frozenset[str] = frozenset()
    status_query_menu_key: str = ""
    order_patterns: tuple[re.Pattern[str], ...] = ()
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)


def parse_rules(data: dict[str, Any]) -> ConversionRules:
    """Validate a rules document (errors name the offending key)."""
    try:
        extraction = data.get("extraction", {}) or {}
        status_query = data.get("status_query", {}) or {}
        patterns = []
        for p in extraction.get("order_patterns", []):
            try:
                patterns.append(re.compile(p, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(f"conversation rules: bad regex in extraction.order_patterns {p!r}: {exc}") from exc
        return ConversionRules(
            every_message=bool(data.get("every_message", False)),
            keywords=tuple(str(k) for k in data.get("keywords", [])),
            human_request=tuple(str(k) for k in data.get("human_request", [])),
            max_messages=int(data.get("max_messages", 0)),
            max_minutes=int(data.get("max_minutes", 0)),
            status_query_texts=frozenset(str(t) for t in status_query.get("texts", [])),
            status_query_menu_key=str(status_query.get("menu_key", "")),
            order_patterns=tuple(patterns),
            categories={str(k): tuple(str(w) for w in v) for k, v in (extraction.get("categories") or {}).items()},
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"conversation rules: {exc}") from exc


@lru_cache(maxsize=1)
def load_rules() -> ConversionRules:
    """The rules in force (cached for the process)."""
    path = Path(os.environ.get("CONVERSATION_RULES_FILE") or DEFAULT_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"CONVERSATION_RULES_FILE could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("CONVERSATION_RULES_FILE must hold a mapping")
    return parse_rules(data)
