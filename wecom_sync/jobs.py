"""Jobs of the WeCom sync: apply stored change events, run full syncs, reconcile nightly.

通讯录回调 https://developer.work.weixin.qq.com/document/path/90970 (change_contact, on /callbacks/wecom/contacts)
and 客户变更回调 https://developer.work.weixin.qq.com/document/path/92130 (change_external_contact, on
/callbacks/wecom/app). Both are stored by the callback endpoints as InboundEvents and applied here, one job per
event; every apply re-reads the object through the API, so running one twice, late or out of order is harmless.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.channels.models import ChannelAccount, InboundEvent
from app.channels.wecom_app.handlers import WeComPush
from app.logs import get_logger
from app.settings import get_settings
from app.timeutil import utcnow
from app.wecom.callback import parse_xml
from app.wecom.work import wecom_api
from wecom_sync import directory, external
from wecom_sync.models import SyncRun

log = get_logger(__name__)

#: a full reconcile runs when the last one finished longer ago than this
RECONCILE_EVERY = timedelta(hours=24)


async def process_contacts_event(event: InboundEvent, account: ChannelAccount | None) -> str:
    """The InboundEvent processor for kind ``wecom_contacts``: apply one change_contact."""
    fields = parse_xml(event.payload)
    if fields.get("Event") != "change_contact":
        return "ignored"
    return await directory.apply_change(api=wecom_api("contacts"), fields=fields)


async def on_change_external_contact(push: WeComPush) -> str:
    """Handler of the app callback's change_external_contact events."""
    return await external.apply_event(api=wecom_api("customer"), fields=push.fields)


async def wecom_full_sync(ctx: dict[str, Any], kind: str = "directory") -> dict[str, Any]:
    """Run (or resume) a full sync of ``directory`` or ``external_contacts``."""
    try:
        if kind == "directory":
            report = await directory.full_sync(api=wecom_api("contacts"))
        else:
            report = await external.full_sync(api=wecom_api("customer"))
    except Exception as exc:
        # the interrupted run keeps its cursor (the next sync resumes it); the console shows why it stopped
        run = await SyncRun.filter(kind=kind, status="running").order_by("-id").first()
        if run is not None:
            await SyncRun.filter(id=run.id).update(report={**(run.report or {}), "error": type(exc).__name__})
        raise
    return report.to_json()


async def wecom_reconcile(ctx: dict[str, Any]) -> str:
    """Nightly: a full directory sync, then external contacts, when the last ones are older than a day."""
    if not get_settings().wecom.configured:
        return "not-configured"
    ran: list[str] = []
    for kind in ("directory", "external_contacts"):
        last = await SyncRun.filter(kind=kind, status="done").order_by("-id").first()
        if last is not None and last.finished_at is not None and utcnow() - last.finished_at < RECONCILE_EVERY:
            continue
        await wecom_full_sync(ctx, kind)
        ran.append(kind)
    return ",".join(ran) or "skipped"
