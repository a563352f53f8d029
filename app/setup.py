"""The one place that wires Gongdan together: jobs and crons, channel adapters, callback processors and handlers,
customer-reply hooks, customer scopes, ticket-event listeners and the routes of the optional packages.

The web app (`app.main.create_app`), the worker (`app.worker`), the CLI and the tests call `setup()`; nothing
registers itself as a side effect of an import, so what runs never depends on which modules a process happened to
import first. This module is the only one in `app/` allowed to import upward (`wecom_sync/`, `approvals/`, `h5/`);
`tests/app/test_setup.py` asserts what it registers.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from app import events

_done = False


def setup() -> None:
    """Register everything (idempotent: a second call changes nothing)."""
    global _done
    if _done:
        return
    _jobs()
    _channels()
    _hooks()
    _listeners()
    _models()
    _done = True


def _jobs() -> None:
    from app.assist import jobs as assist_jobs
    from app.channels import inbound_jobs
    from app.channels.email import idle as email_idle
    from app.channels.email import jobs as email_jobs
    from app.channels.wechat_mp import jobs as mp_jobs
    from app.channels.wecom_kf import sync as kf_sync
    from app.integrations.idempotency import purge_idempotency_keys
    from app.kb import understanding
    from app.security import retention
    from app.tickets.assignment import assignment_tick
    from app.tickets.closing import close_resolved_tick
    from app.tickets.holiday_notice import calendar_notice_check
    from app.tickets.sla import sla_tick
    from app.worker import register_job
    from approvals.jobs import approvals_tick
    from h5.session import purge_revoked
    from wecom_sync import jobs as wecom_sync_jobs

    register_job(inbound_jobs.process_inbound_event)
    # a killed worker's callbacks are taken over within LEASE + SWEEP_EVERY (40 s)
    register_job(inbound_jobs.sweep_inbound, every_seconds=inbound_jobs.SWEEP_EVERY)
    register_job(mp_jobs.sync_mp_user)
    register_job(mp_jobs.download_mp_media)
    register_job(wecom_sync_jobs.wecom_full_sync)
    register_job(wecom_sync_jobs.wecom_reconcile, every_seconds=3600)
    register_job(kf_sync.kf_sync_all, every_seconds=60)
    register_job(kf_sync.kf_sync_accounts)
    register_job(kf_sync.kf_recover)
    register_job(email_jobs.email_poll, every_seconds=email_jobs.POLL_EVERY)
    # IMAP IDLE watchers (new mail within seconds); the poll above stays as the safety net
    register_job(email_idle.email_idle_watch, every_seconds=email_jobs.POLL_EVERY)
    # SLA moments are kept to the minute
    register_job(sla_tick, every_seconds=60)
    register_job(assignment_tick, every_seconds=60)
    register_job(close_resolved_tick, every_seconds=600)
    register_job(approvals_tick, every_seconds=60)
    # hourly: the card's dedupe key keeps it to one a day, and a restart never skips a day
    register_job(calendar_notice_check, every_seconds=3600)
    register_job(purge_revoked, every_seconds=86400)
    register_job(retention.privacy_purge, every_seconds=86400)
    register_job(purge_idempotency_keys, every_seconds=86400)
    # the text model's work (about 40 ms of CPU a text) waits while customers' messages queue: during a burst it
    # would take a third of the cores the intake needs, and a later run catches up from its watermark
    register_job(understanding.kb_embed_articles, every_seconds=understanding.EMBED_EVERY, yields_to_intake=True)
    register_job(assist_jobs.assist_embed_tickets, every_seconds=assist_jobs.EMBED_EVERY, yields_to_intake=True)
    register_job(assist_jobs.assist_build_index, every_seconds=assist_jobs.INDEX_EVERY, yields_to_intake=True)
    register_job(assist_jobs.assist_train, every_seconds=assist_jobs.TRAIN_EVERY, yields_to_intake=True)
    from app.reports import jobs as report_jobs

    register_job(report_jobs.reports_refresh, every_seconds=report_jobs.REFRESH_EVERY)
    register_job(report_jobs.reports_channel_tick, every_seconds=report_jobs.CHANNEL_EVERY)
    # hourly: the card's dedupe key keeps it to one per lead per week
    register_job(report_jobs.reports_weekly, every_seconds=report_jobs.WEEKLY_EVERY)


def _channels() -> None:
    from app.channels import inbound_jobs
    from app.channels.base import register_adapter
    from app.channels.email import inbound as email_inbound
    from app.channels.email.outbound import EmailAdapter
    from app.channels.webchat.outbound import WebchatAdapter
    from app.channels.wechat_mp import inbound as mp_inbound
    from app.channels.wechat_mp.outbound import WeChatMPAdapter
    from app.channels.wecom_app import handlers as wecom_app
    from app.channels.wecom_app.outbound import WeComAppAdapter
    from app.channels.wecom_kf import sync as kf_sync
    from app.channels.wecom_kf.outbound import WeComKfAdapter
    from app.webhooks.outbound import WebhookAdapter
    from approvals import wecom_oa
    from wecom_sync import jobs as wecom_sync_jobs

    register_adapter(WeChatMPAdapter())
    register_adapter(EmailAdapter())
    register_adapter(WebchatAdapter())
    inbound_jobs.register_processor("email", email_inbound.process)
    register_adapter(WeComAppAdapter())
    register_adapter(WeComKfAdapter())
    register_adapter(wecom_oa.WeComOAAdapter())
    register_adapter(WebhookAdapter())
    inbound_jobs.register_processor("wechat_mp", mp_inbound.process)
    inbound_jobs.register_processor("wecom_app", wecom_app.process)
    inbound_jobs.register_processor("wecom_contacts", wecom_sync_jobs.process_contacts_event)
    wecom_app.register_wecom_app_handler("change_external_contact", wecom_sync_jobs.on_change_external_contact)
    wecom_app.register_wecom_app_handler("kf_msg_or_event", kf_sync.on_kf_callback)
    wecom_app.register_wecom_app_handler("sys_approval_change", wecom_oa.on_sys_approval_change)


def _hooks() -> None:
    from app.customers.service import register_customer_scope
    from app.kb import bot
    from app.tickets.closing import register_reply_hook
    from app.tickets.fallback import register_fallback_source
    from approvals import flows as approval_flows
    from approvals import policy as approval_policy
    from wecom_sync.scope import external_contact_customers

    # refund confirmation codes first, then the survey's "was it solved" (which never consumes the reply)
    register_reply_hook(approval_flows.customer_reply_hook)
    register_reply_hook(bot.solved_hook)
    register_customer_scope(external_contact_customers)
    # SLA escalations with nobody above use the same fallback approvers as approval chains (console, else setting)
    register_fallback_source(approval_policy.fallback_userids)


def _listeners() -> None:
    from app.channels.wecom_kf import listeners as kf
    from app.notifications import listeners as notify
    from app.tickets import flows as tickets
    from app.webhooks import listeners as webhooks

    events.reset()
    # created: the customer hears first, then the clocks start, then someone is chosen (who gets a card)
    events.listen(events.TICKET_CREATED, notify.ticket_created)
    events.listen(events.TICKET_CREATED, tickets.start_sla)
    events.listen(events.TICKET_CREATED, tickets.auto_assign)
    events.listen(events.TICKET_CREATED, kf.ticket_created)
    events.listen(events.TICKET_STATUS_CHANGED, notify.status_changed)
    events.listen(events.TICKET_STATUS_CHANGED, tickets.sla_on_status)
    events.listen(events.TICKET_STATUS_CHANGED, kf.status_changed)
    events.listen(events.TICKET_UPDATED, notify.ticket_updated)
    events.listen(events.TICKET_UPDATED, kf.ticket_updated)
    events.listen(events.TICKET_REPLIED, notify.staff_replied)
    events.listen(events.TICKET_REPLIED, tickets.sla_on_reply)
    events.listen(events.CUSTOMER_MESSAGE, tickets.sla_on_customer_message)
    events.listen(events.CUSTOMER_MESSAGE, notify.customer_wrote)
    # webhooks last: subscribers hear of a change with everything the other listeners did to it
    events.listen(events.TICKET_CREATED, webhooks.ticket_created)
    events.listen(events.TICKET_UPDATED, webhooks.ticket_updated)
    events.listen(events.TICKET_STATUS_CHANGED, webhooks.status_changed)
    events.listen(events.TICKET_REPLIED, webhooks.staff_replied)
    events.listen(events.CUSTOMER_MESSAGE, webhooks.customer_message)
    events.listen(events.SLA_WARNING, webhooks.sla_warning)
    events.listen(events.SLA_BREACHED, webhooks.sla_breached)
    events.listen(events.CSAT_SUBMITTED, webhooks.csat_submitted)
    events.listen(events.APPROVAL_DECIDED, webhooks.approval_decided)
    _report_listeners()


def _report_listeners() -> None:
    from app.reports import jobs as report_jobs

    # one cheap row per change: the reports_refresh job recomputes the ticket's fact after commit (a customer's
    # message needs none: the refresh follows new messages by their id)
    for name in (events.TICKET_CREATED, events.TICKET_STATUS_CHANGED, events.TICKET_UPDATED, events.TICKET_REPLIED,
                 events.SLA_BREACHED, events.CSAT_SUBMITTED):
        events.listen(name, report_jobs.mark_ticket)


def _models() -> None:
    from app.security import tokens

    # personal data in free text is stored tokenised, whoever writes a message or a ticket
    tokens.install()


async def shutdown() -> None:
    """Release what the wired parts hold open (the web chat's Redis subscription, IMAP IDLE watchers, WeCom's
    keep-alive connections) when a process stops: web, worker and command alike."""
    from app.channels.email.idle import stop_watchers
    from app.channels.webchat.hub import hub
    from app.wecom import transport

    await stop_watchers()
    await hub.close()
    await transport.close()


def api_routes() -> list[BaseRoute]:
    """JSON API routes of the optional packages (mounted under /api/v1)."""
    from approvals import endpoints as approval_endpoints

    return list(approval_endpoints.routes)


def page_routes() -> list[BaseRoute]:
    """Routes of the H5 workbench (optional for API-only deployments)."""
    try:
        from h5 import routes as h5_routes  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return []
    return list(h5_routes.routes)


def page_session(request: Any) -> Any:
    """The H5 session of a request (the knowledge-base admin page accepts a staff login), or None."""
    try:
        from h5 import session as h5_session
    except ImportError:
        return None
    return h5_session.load(request, request.app.state.settings)
