"""``gongdan sync directory|external-contacts [--dry-run] [--restart]``: a full sync with a progress bar and a
closing report (added / changed / disabled). An interrupted run is resumed where it stopped unless ``--restart``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


def add_sync_commands(sub: Any) -> None:
    """Register ``sync`` on the ``gongdan`` parser."""
    p = sub.add_parser("sync", help="sync the WeCom directory or external contacts")
    p.add_argument("what", choices=["directory", "external-contacts"])
    p.add_argument("--dry-run", action="store_true", help="read and compare, write nothing")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming an interrupted run")
    p.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> None:
    """Run one full sync and print its report."""
    from app.cli import _settings, _with_db
    from app.settings import dev_env_path
    from app.wecom.work import wecom_api
    from wecom_sync import directory, external

    settings = _settings()
    if not settings.wecom.configured:
        console.print("[red]WECOM_CORP_ID / WECOM_AGENT_SECRET are not set[/] (set them in the environment or .env; "
                      "in development, a running `make run` in this folder provides them through "
                      f"{dev_env_path(settings.data_dir)})", soft_wrap=True)
        raise SystemExit(2)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        async def run() -> Any:
            if args.what == "directory":
                return await directory.full_sync(api=wecom_api("contacts", settings), dry_run=args.dry_run,
                                                 progress=progress, resume=not args.restart)
            return await external.full_sync(api=wecom_api("customer", settings), dry_run=args.dry_run,
                                            progress=progress, resume=not args.restart)

        report = _with_db(settings, run)
    table = Table(title=f"{args.what}{' (dry run)' if report.dry_run else ''}{' (resumed)' if report.resumed else ''}")
    table.add_column("")
    for column in ("added 新增", "changed 变更", "disabled 停用/移除"):
        table.add_column(column, justify="right")
    for what in sorted(set(report.added) | set(report.changed) | set(report.disabled)):
        table.add_row(what, str(report.added.get(what, 0)), str(report.changed.get(what, 0)),
                      str(report.disabled.get(what, 0)))
    console.print(table)
    console.print(f"API calls: {report.api_calls}, waited on the rate limiter: {report.limiter_wait:.1f} s")
