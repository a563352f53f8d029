"""What app.setup wires, and the import rules that keep the layers apart."""

from __future__ import annotations

import ast
from pathlib import Path

from app import events
from app.channels import inbound_jobs
from app.channels.base import get_adapter
from app.channels.wecom_app.handlers import WECOM_APP_HANDLERS
from app.customers.service import CUSTOMER_SCOPES
from app.setup import setup
from app.tickets.closing import REPLY_HOOKS
from app.worker import CRONS, JOBS

ROOT = Path(__file__).resolve().parents[2]


def test_setup_registers_every_listener_job_adapter_and_hook_once() -> None:
    setup()
    setup()  # idempotent
    assert events.registered() == {
        "ticket.created": ["app.notifications.listeners.ticket_created", "app.tickets.flows.start_sla",
                           "app.tickets.flows.auto_assign", "app.channels.wecom_kf.listeners.ticket_created",
                           "app.webhooks.listeners.ticket_created", "app.reports.jobs.mark_ticket"],
        "ticket.status_changed": ["app.notifications.listeners.status_changed", "app.tickets.flows.sla_on_status",
                                  "app.channels.wecom_kf.listeners.status_changed",
                                  "app.webhooks.listeners.status_changed", "app.reports.jobs.mark_ticket"],
        "ticket.updated": ["app.notifications.listeners.ticket_updated",
                           "app.channels.wecom_kf.listeners.ticket_updated", "app.webhooks.listeners.ticket_updated",
                           "app.reports.jobs.mark_ticket"],
        "ticket.replied": ["app.notifications.listeners.staff_replied", "app.tickets.flows.sla_on_reply",
                           "app.webhooks.listeners.staff_replied", "app.reports.jobs.mark_ticket"],
        "ticket.customer_message": ["app.tickets.flows.sla_on_customer_message",
                                    "app.notifications.listeners.customer_wrote",
                                    "app.webhooks.listeners.customer_message"],
        "sla.warning": ["app.webhooks.listeners.sla_warning"],
        "sla.breached": ["app.webhooks.listeners.sla_breached", "app.reports.jobs.mark_ticket"],
        "csat.submitted": ["app.webhooks.listeners.csat_submitted", "app.reports.jobs.mark_ticket"],
        "approval.decided": ["app.webhooks.listeners.approval_decided"],
    }
    assert {"deliver_outbox", "sweep_outbox", "process_inbound_event", "sweep_inbound", "sync_mp_user",
            "download_mp_media", "wecom_full_sync", "wecom_reconcile", "kf_sync_all", "kf_sync_accounts", "kf_recover",
            "sla_tick", "assignment_tick", "close_resolved_tick", "approvals_tick",
            "calendar_notice_check", "purge_revoked", "privacy_purge",
            "purge_idempotency_keys", "kb_embed_articles"} <= set(JOBS)
    assert {("sla_tick", 60), ("assignment_tick", 60), ("close_resolved_tick", 600), ("approvals_tick", 60),
            ("sweep_inbound", 10), ("sweep_outbox", 10), ("kf_sync_all", 60), ("wecom_reconcile", 3600),
            ("calendar_notice_check", 3600), ("purge_revoked", 86400), ("privacy_purge", 86400)} <= set(CRONS)
    assert len(CRONS) == len(set(CRONS))
    for kind in ("wechat_mp", "wecom_app", "wecom_kf", "wecom_oa", "email", "webhook", "webchat", "null"):
        assert get_adapter(kind) is not None, kind
    assert set(inbound_jobs.PROCESSORS) >= {"wechat_mp", "wecom_app", "wecom_contacts"}
    assert set(WECOM_APP_HANDLERS) >= {"change_external_contact", "kf_msg_or_event", "sys_approval_change"}
    assert [f"{h.__module__}.{h.__name__}" for h in REPLY_HOOKS][:2] == [
        "approvals.flows.customer_reply_hook", "app.kb.bot.solved_hook"]
    assert [f"{s.__module__}.{s.__name__}" for s in CUSTOMER_SCOPES] == ["wecom_sync.scope.external_contact_customers"]
    from app.tickets import fallback

    assert fallback._source is not None and fallback._source.__qualname__ == "fallback_userids"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_app_imports_no_upper_package_and_tickets_import_no_channel_code() -> None:
    # the setup module wires the upper packages in; the CLI and the development server are tooling
    allowed = {"app/setup.py", "app/cli.py", "app/devserver.py"}
    bad = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or rel.startswith("app/migrations/"):
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("wecom_sync", "approvals", "h5", "simulator"):
                bad.append(f"{rel} -> {name}")
            if rel.startswith("app/tickets/") and name.startswith("app.channels"):
                bad.append(f"{rel} -> {name}")
    assert bad == []


def test_no_module_registers_anything_on_import() -> None:
    calls = ("register_job(", "register_adapter(", "register_processor(", "register_wecom_app_handler(",
             "register_reply_hook(", "register_customer_scope(", "register_fallback_source(", "events.listen(")
    offenders = []
    for package in ("app", "approvals", "wecom_sync", "h5"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "app/setup.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:  # module level only: a call inside a function runs when called
                if isinstance(node, ast.Expr) and any(ast.unparse(node).startswith(c) for c in calls):
                    offenders.append(f"{rel}: {ast.unparse(node)}")
    assert offenders == []


def test_events_only_runs_one_listener_and_gives_the_wired_table_back() -> None:
    from app import events
    from app.reports import jobs

    wired = events.registered()
    with events.only(events.TICKET_CREATED, jobs.mark_ticket):
        assert events.registered() == {"ticket.created": ["app.reports.jobs.mark_ticket"]}
    assert events.registered() == wired
