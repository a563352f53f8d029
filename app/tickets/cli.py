"""`gongdan rules import|export|dry-run`, `gongdan sla import|export` (routing rules and SLA config as YAML) and
`gongdan calendar import-notice|show-year|notices` (the State Council's yearly holiday notice)."""

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


def cmd_calendar_import_notice(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import holiday_notice

    try:
        document = holiday_notice.parse(Path(args.file).read_text(encoding="utf-8"), year=args.year)
    except ValidationFailed as exc:
        _fail(exc)
        return
    if args.check:
        print(f"ok: {document['year']} 年, {len(document['holidays'])} 个节日")
        for warning in holiday_notice.law_mismatches(document):
            print(f"注意: {warning}")
        return

    async def run() -> dict[str, Any]:
        return await holiday_notice.store(document=document, imported_by="cli")

    result = _with_db(_settings(), run)
    print(f"imported {document['year']}: {document['title']}")
    for h in document["holidays"]:
        extra = f"，调休上班 {', '.join(h['workdays'])}" if h["workdays"] else ""
        print(f"  {h['name']}: {h['start']} 至 {h['end']}{extra}")
    for warning in result["warnings"]:
        print(f"注意: {warning}")


def cmd_calendar_show_year(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import holiday_notice

    async def run() -> dict[str, Any]:
        return await holiday_notice.year_view(year=args.year)

    try:
        view = _with_db(_settings(), run)
    except ValidationFailed as exc:
        _fail(exc)
        return
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return
    print(f"{view['year']} 年: {view['basis_label']}")
    if view["notice"]:
        print(f"通知: {view['notice']['title']}")
    print("放假:")
    for d in view["days_off"]:
        print(f"  {d['date']} {d['weekday']} {d['name']}")
    print("调休上班:" if view["workdays"] else "调休上班: 无")
    for d in view["workdays"]:
        print(f"  {d['date']} {d['weekday']} {d['name']}")


def cmd_calendar_notices(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.tickets import holiday_notice

    async def run() -> list[dict[str, Any]]:
        return await holiday_notice.list_notices()

    notices = _with_db(_settings(), run)
    if not notices:
        print("没有导入过节假日通知")
    for n in notices:
        print(f"{n['year']}: {n['title']} (imported by {n['imported_by']}, {n['updated_at']})")


def add_rules_commands(sub: Any) -> None:
    """Register `rules`, `sla` and `calendar` on the gongdan parser."""
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

    p = sub.add_parser("calendar", help="holiday arrangements: import the State Council notice, show a year")
    csub = p.add_subparsers(dest="calendar_command", required=True)
    cp = csub.add_parser("import-notice", help="import a year's holiday notice (YAML, or the notice's text pasted)")
    cp.add_argument("file")
    cp.add_argument("--year", type=int, help="the notice's year, when the pasted text does not name it")
    cp.add_argument("--check", action="store_true", help="only validate, store nothing")
    cp.set_defaults(func=cmd_calendar_import_notice)
    cp = csub.add_parser("show-year", help="a year's days off and make-up working days as the calendars see them")
    cp.add_argument("year", type=int)
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=cmd_calendar_show_year)
    cp = csub.add_parser("notices", help="list the imported holiday notices")
    cp.set_defaults(func=cmd_calendar_notices)
