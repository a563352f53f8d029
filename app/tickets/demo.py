"""Demo routing rules, calendars, SLA policies and group settings (called by `gongdan seed-demo`)."""

from __future__ import annotations

from pathlib import Path

from app.tickets import routing, sla_config
from app.tickets.models import RoutingRuleSet, SlaPolicy

HERE = Path(__file__).parent


async def seed_workflow() -> dict[str, int]:
    """Import demo_sla.yaml and demo_rules.yaml unless the desk already has policies / a rule set (idempotent)."""
    out: dict[str, int] = {}
    if not await SlaPolicy.exists():
        out.update(await sla_config.store(
            document=sla_config.parse_yaml((HERE / "demo_sla.yaml").read_text(encoding="utf-8"))))
    if not await RoutingRuleSet.exists():
        ruleset = routing.parse_yaml((HERE / "demo_rules.yaml").read_text(encoding="utf-8"))
        out["rules"] = len(ruleset.rules)
        await routing.store(ruleset=ruleset)
    return out
