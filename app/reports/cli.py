"""`gongdan reports rebuild [--since YYYY-MM-DD]`: recompute the report rollups from the source tables."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是 YYYY-MM-DD 格式的日期: {text!r}") from None


def cmd_reports_rebuild(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.reports import jobs

    result = _with_db(_settings(), lambda: jobs.rebuild(since=args.since))
    print(f"rebuilt: {result['tickets']} tickets, {result['conversations']} conversations, {result['days']} days")


def add_report_commands(sub: Any) -> None:
    """Register `reports` on the gongdan parser."""
    p = sub.add_parser("reports", help="report rollups")
    rsub = p.add_subparsers(dest="reports_command", required=True)
    rp = rsub.add_parser("rebuild", help="recompute the report rollups (idempotent)")
    rp.add_argument("--since", type=_day, default=None,
                    help="only tickets and conversations from this local date on (default: everything)")
    rp.set_defaults(func=cmd_reports_rebuild)
