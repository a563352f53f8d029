"""Routing: ordered rules map a new ticket's facts to a skill group and a priority.

Rules live in YAML (ROUTING_RULES_FILE, else the bundled routing.yaml). A rule matches when every condition it
names holds: `category` (one of), `keywords` (any of, in the text), `channel` (one of).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from app.errors import ConfigError
from app.staff.models import SkillGroup

DEFAULT_FILE = Path(__file__).with_name("routing.yaml")


@dataclass(frozen=True)
class Rule:
    name: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    group: str | None = None
    priority: str | None = None
    stop: bool = True

    def matches(self, *, category: str, text: str, channel: str) -> bool:
        if self.categories and category not in self.categories:
            return False
        if self.keywords and not any(k in text for k in self.keywords):
            return False
        return not (self.channels and channel not in self.channels)


@dataclass(frozen=True)
class RuleSet:
    default_group: str | None
    rules: tuple[Rule, ...] = field(default_factory=tuple)


@dataclass
class Decision:
    group_id: int | None
    priority: str
    matched: list[str]


def parse_rules(data: dict[str, Any]) -> RuleSet:
    """Validate a routing document."""
    rules = []
    for i, raw in enumerate(data.get("rules") or []):
        if not isinstance(raw, dict) or "name" not in raw:
            raise ConfigError(f"routing rule #{i + 1} needs a name")
        when = raw.get("when") or {}
        then = raw.get("then") or {}
        priority = then.get("priority")
        if priority not in (None, "low", "normal", "high", "urgent"):
            raise ConfigError(f"routing rule {raw['name']!r}: unknown priority {priority!r}")
        rules.append(Rule(
            name=str(raw["name"]),
            categories=tuple(when.get("category") or ()),
            keywords=tuple(when.get("keywords") or ()),
            channels=tuple(when.get("channel") or ()),
            group=then.get("group"),
            priority=priority,
            stop=bool(raw.get("stop", True)),
        ))
    return RuleSet(default_group=data.get("default_group"), rules=tuple(rules))


@lru_cache(maxsize=1)
def load_rules() -> RuleSet:
    """The routing rules in force."""
    path = Path(os.environ.get("ROUTING_RULES_FILE") or DEFAULT_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"ROUTING_RULES_FILE could not be read: {exc}") from exc
    return parse_rules(data)


async def route(*, category: str, text: str, channel: str, priority: str = "normal",
                rules: RuleSet | None = None) -> Decision:
    """Decide the group and priority of a new ticket."""
    ruleset = rules or load_rules()
    group_name = ruleset.default_group
    matched: list[str] = []
    for rule in ruleset.rules:
        if not rule.matches(category=category, text=text, channel=channel):
            continue
        matched.append(rule.name)
        group_name = rule.group or group_name
        priority = rule.priority or priority
        if rule.stop:
            break
    group_id = None
    if group_name:
        group = await SkillGroup.get_or_none(name=group_name)
        group_id = group.id if group else None
    return Decision(group_id=group_id, priority=priority, matched=matched)
