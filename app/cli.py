"""The `gongdan` command: run, serve, worker, migrate, seed-demo, token create, simulator, channel add."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console

from app.errors import ConfigError
from app.security.chain import ChainReport
from app.settings import Settings, get_settings, load_settings, set_settings

console = Console(stderr=True)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        console.print(f"[bold red]配置错误 / configuration error:[/] {exc}")
        raise SystemExit(2) from None
    set_settings(settings)
    return settings


def _with_db(settings: Settings, fn: Callable[[], Awaitable[Any]]) -> Any:
    from app import heap
    from app.db import close_db, init_db
    from app.setup import shutdown

    async def main() -> Any:
        await init_db(settings)
        heap.settle()  # a command can run as long as a job does (a full WeCom sync): the same collector settings
        try:
            return await fn()
        finally:
            await shutdown()
            await close_db()

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace) -> None:
    from app.db import migrate

    settings = _settings()
    asyncio.run(migrate(settings))
    console.print("[green]数据库已迁移到最新版本[/] (migrations applied)")


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from app.seed import seed_demo

    settings = _settings()
    result = _with_db(settings, lambda: seed_demo(month=args.month))
    console.print(f"demo data: {result}")


def cmd_token_create(args: argparse.Namespace) -> None:
    from app.security.service import create_token, parse_scopes
    from app.staff.models import Staff

    settings = _settings()
    try:
        scopes = parse_scopes(args.scope)
    except ValueError as exc:
        console.print(f"[red]{exc} (known: read, write, events, admin)[/]")
        raise SystemExit(2) from exc

    async def make() -> str | None:
        staff = await Staff.get_or_none(userid=args.staff, status="active")
        if staff is None:
            return None
        return await create_token(staff=staff, name=args.name, scopes=scopes)

    token = _with_db(settings, make)
    if token is None:
        console.print(f"[red]no active staff member with userid {args.staff!r}[/]")
        raise SystemExit(1)
    print(token)


def cmd_keys_rotate(args: argparse.Namespace) -> None:
    from app.security.service import rotate_encrypted_fields

    settings = _settings()
    done = _with_db(settings, rotate_encrypted_fields)
    for table, count in done.items():
        console.print(f"{table}: {count} rows re-encrypted with the first FIELD_ENCRYPTION_KEYS key")


def cmd_serve(args: argparse.Namespace) -> None:
    from app import listen

    settings = _settings()
    from app.logs import configure_logging

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        listen.serve("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                     log_config=None, proxy_headers=True, timeout_graceful_shutdown=20, access_log=args.access_log)
    except listen.AddressTaken as exc:
        console.print(f"[bold red]端口已被占用 / cannot listen on[/] {exc}")
        raise SystemExit(3) from None


def cmd_worker(args: argparse.Namespace) -> None:
    settings = _settings()
    if not settings.redis_url:
        console.print("[yellow]REDIS_URL is not set: jobs run inside `gongdan serve`; no worker is needed.[/]")
        raise SystemExit(2)
    from app.logs import configure_logging, get_logger
    from app.queue import QUEUE_NAMES
    from app.worker import lower_priority, run_lanes, worker_settings

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    lanes = [x.strip() for x in args.queues.split(",") if x.strip()]
    unknown = [x for x in lanes if x not in QUEUE_NAMES]
    if unknown or not lanes:
        console.print(f"[red]--queues: unknown {', '.join(unknown) or '(none)'}; choose from "
                      f"{', '.join(QUEUE_NAMES)}[/]")
        raise SystemExit(2)
    worker_settings(settings, lane=lanes[0])  # fails here, before any connection, when misconfigured
    lowered = lower_priority(settings.worker_nice if args.nice is None else args.nice,
                             idle=settings.worker_sched_idle)
    if lowered:
        get_logger(__name__).info("worker.priority", **lowered)
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    # uvloop, as uvicorn's web processes: it halves the CPU a database round trip costs the worker (measured)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run_lanes(settings, lanes))


def cmd_run(args: argparse.Namespace) -> None:
    from app.devserver import run_embedded

    os.environ.setdefault("GONGDAN_ENV", "development")
    run_embedded(host=args.host, port=args.port, simulator_port=args.simulator_port)


def cmd_simulator(args: argparse.Namespace) -> None:
    from simulator.__main__ import main as sim_main

    sim_main(["--host", args.host, "--port", str(args.port), "--callback-url", args.callback_url])


def report_audit_chain(report: ChainReport) -> int:
    """Print a chain verification for people and return the exit status (0 intact, 1 broken)."""
    if report.ok:
        console.print(f"[green]审计链完整[/]：已校验 {report.checked} 条记录"
                      + (f"，另有 {report.legacy} 条早于链条的旧记录" if report.legacy else ""))
        return 0
    console.print(f"[bold red]审计链已损坏[/]：第一条损坏的记录 id={report.broken_id}（{report.problem}）；"
                  f"此前 {report.checked} 条完好")
    return 1


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from app.security import chain

    settings = _settings()
    raise SystemExit(report_audit_chain(_with_db(settings, chain.verify)))


def cmd_privacy_purge(args: argparse.Namespace) -> None:
    from app.security import retention

    settings = _settings()
    report = _with_db(settings, lambda: retention.purge(dry_run=args.dry_run, settings=settings))
    for line in report.lines():
        console.print(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongdan", description="Gongdan (工单) helpdesk")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="embedded desk + WeChat simulator with demo data (development)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--simulator-port", type=int, default=8001)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="the web server (production)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="web processes")
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="an arq job worker (needs REDIS_URL)")
    p.add_argument("--queues", default="inbound,outbox",
                   help="lanes this process serves, each with its own job slots (default: inbound,outbox)")
    p.add_argument("--nice", type=int, choices=range(20), metavar="0-19", default=None,
                   help="lower the worker's CPU priority to this (default WORKER_NICE, 19; 0 keeps it)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed-demo", help="load the demo organisation, customers and tickets")
    p.add_argument("--month", action="store_true",
                   help="also a month of traffic on every channel for the console's dashboards (as `gongdan run`)")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    tp = tsub.add_parser("create", help="create an API token for a staff member (printed once)")
    tp.add_argument("--staff", required=True, help="the staff member's WeCom userid")
    tp.add_argument("--name", default="cli")
    tp.add_argument("--scope", default=None,
                    help="comma-separated: read, write, events, admin (default: all four)")
    tp.set_defaults(func=cmd_token_create)

    p = sub.add_parser("keys", help="field-encryption keys")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    kp = ksub.add_parser("rotate", help="re-encrypt every encrypted field with the first FIELD_ENCRYPTION_KEYS key")
    kp.set_defaults(func=cmd_keys_rotate)

    p = sub.add_parser("audit", help="the tamper-evident audit log")
    asub = p.add_subparsers(dest="audit_command", required=True)
    ap = asub.add_parser("verify", help="prove the audit hash chain intact, or name the first broken row")
    ap.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("privacy", help="personal data: retention")
    psub = p.add_subparsers(dest="privacy_command", required=True)
    pp = psub.add_parser("purge", help="purge personal data past its retention period (RETENTION_* settings)")
    pp.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing")
    pp.set_defaults(func=cmd_privacy_purge)

    p = sub.add_parser("simulator", help="run the WeChat/WeCom platform simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--callback-url", default="http://127.0.0.1:8000/callbacks/wechat")
    p.set_defaults(func=cmd_simulator)

    from app.channels.cli import add_channel_commands

    add_channel_commands(sub)
    from app.tickets.cli import add_rules_commands

    add_rules_commands(sub)
    from app.kb.cli import add_kb_commands

    add_kb_commands(sub)
    from wecom_sync.cli import add_sync_commands

    add_sync_commands(sub)
    from app.reports.cli import add_report_commands

    add_report_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.func(args)


__all__ = ["get_settings", "main"]
