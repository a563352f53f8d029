"""`gongdan rules import|export|dry-run` and `gongdan sla import|export`: routing rules and SLA config as YAML."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.errors import ValidationFailed


def _fail(exc: ValidationFailed) -> None:
    print(f"错误 / error: {exc.message}", file=sys.stderr)
    for line in exc.details.get("errors", []):
        print(f"  - {line}", file=sys.stderr)
    raise SystemExit(1)


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def cmd_rules_import(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import routing

    text = Path(args.file).read_text(encoding="utf-8")
    try:
        ruleset = routing.parse_yaml(text)
    except ValidationFailed as exc:
        _fail(exc)
        return
    if args.check:
        print(f"ok: {len(ruleset.rules)} rules")
        return

    async def run() -> int:
        return await routing.store(ruleset=ruleset)

    try:
        revision = _with_db(_settings(), run)
    except ValidationFailed as exc:
        _fail(exc)
        return
    print(f"imported {len(ruleset.rules)} rules (revision {revision})")


def cmd_rules_export(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import routing

    async def run() -> str:
        return routing.to_yaml(await routing.active_rules())

    _write(_with_db(_settings(), run), args.output)


def cmd_rules_dry_run(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import routing

    async def run() -> dict[str, Any]:
        facts = await routing.facts_for(category=args.category, text=args.text, channel=args.channel)
        facts.vip_level = args.vip
        return (await routing.decide(facts=facts)).to_json()

    print(json.dumps(_with_db(_settings(), run), ensure_ascii=False, indent=2))


def cmd_sla_import(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import sla_config

    try:
        document = sla_config.parse_yaml(Path(args.file).read_text(encoding="utf-8"))

        async def run() -> dict[str, int]:
            return await sla_config.store(document=document)

        print(f"imported {_with_db(_settings(), run)}")
    except ValidationFailed as exc:
        _fail(exc)


def cmd_sla_export(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import sla_config

    async def run() -> str:
        return sla_config.to_yaml(await sla_config.export())

    _write(_with_db(_settings(), run), args.output)


def add_rules_commands(sub: Any) -> None:
    """Register `rules` and `sla` on the gongdan parser."""
    p = sub.add_parser("rules", help="routing rules as YAML: import, export, dry-run")
    rsub = p.add_subparsers(dest="rules_command", required=True)
    rp = rsub.add_parser("import", help="validate a YAML rule set and make it the one in force")
    rp.add_argument("file")
    rp.add_argument("--check", action="store_true", help="only validate, store nothing")
    rp.set_defaults(func=cmd_rules_import)
    rp = rsub.add_parser("export", help="print the rules in force as YAML")
    rp.add_argument("-o", "--output")
    rp.set_defaults(func=cmd_rules_export)
    rp = rsub.add_parser("dry-run", help="show which rules a sample message matches")
    rp.add_argument("text")
    rp.add_argument("--channel", default="wechat_mp")
    rp.add_argument("--category", default="")
    rp.add_argument("--vip", type=int, default=0)
    rp.set_defaults(func=cmd_rules_dry_run)

    p = sub.add_parser("sla", help="calendars, SLA policies and group settings as YAML")
    ssub = p.add_subparsers(dest="sla_command", required=True)
    sp = ssub.add_parser("import", help="import calendars, policies and group settings")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_sla_import)
    sp = ssub.add_parser("export", help="print calendars, policies and group settings as YAML")
    sp.add_argument("-o", "--output")
    sp.set_defaults(func=cmd_sla_export)
