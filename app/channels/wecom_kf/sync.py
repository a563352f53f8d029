"""Pulling kf messages: the ``kf_msg_or_event`` callback and a token-less recovery cron both end here.

接收消息和事件 https://developer.work.weixin.qq.com/document/path/94670. Per open_kfid, one puller at a time (a
lease on its ``KfCursor`` row: two pullers on one cursor would read the same pages): ``kf/sync_msg`` from the
stored cursor, every item handled in order, ``next_cursor`` saved after each page, again while ``has_more``. Every
item is handled idempotently and then remembered by msgid (``KfSeen``), so a crash between pages or within one
repeats nothing: the page is pulled again from the last saved cursor and the items already seen are skipped.
An expired callback token (95007) falls back to a token-less pull.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from app import intake
from app.channels.models import ChannelAccount
from app.channels.wecom_app.handlers import WeComPush
from app.channels.wecom_kf import api, events
from app.channels.wecom_kf.inbound import to_inbound
from app.channels.wecom_kf.models import KfCursor, KfSeen
from app.errors import TemporaryChannelError
from app.lease import renewed
from app.logs import get_logger
from app.timeutil import utcnow
from app.wecom.errors import PermanentAPIError

log = get_logger(__name__)

#: the puller's lease, renewed every RENEW_EVERY s while it pulls: a killed puller blocks its account for LEASE only
LEASE = timedelta(seconds=30)
RENEW_EVERY = 10.0
PAGE_LIMIT = 1000
KIND = "wecom_kf"


class PullBusy(TemporaryChannelError):
    """Another puller holds this open_kfid; the callback job is retried later (its items will be pulled)."""


async def ensure_account(*, open_kfid: str, name: str = "") -> ChannelAccount:
    """The ChannelAccount of one kf account (key = open_kfid), created on first sight."""
    account, created = await ChannelAccount.get_or_create(
        key=open_kfid, defaults={"kind": KIND, "name": name or open_kfid, "config": {"open_kfid": open_kfid}})
    if not created and name and account.name != name:
        await ChannelAccount.filter(id=account.id).update(name=name)
    return account


async def pull(*, open_kfid: str, token: str | None) -> dict[str, int]:
    """Pull everything new for one kf account; returns counts of pages and items handled."""
    account = await ensure_account(open_kfid=open_kfid)
    limit = int((account.config or {}).get("sync_limit") or PAGE_LIMIT)
    row, _ = await KfCursor.get_or_create(open_kfid=open_kfid)
    now = utcnow()
    claimed = await KfCursor.filter(Q(lease_until=None) | Q(lease_until__lt=now), id=row.id).update(
        lease_until=now + LEASE)
    if not claimed:
        raise PullBusy(f"a pull of {open_kfid} is running")
    pages = handled = 0

    async def renew() -> None:
        await KfCursor.filter(id=row.id).update(lease_until=utcnow() + LEASE)

    try:
        async with renewed(renew, every=RENEW_EVERY, name=f"kf:{open_kfid}"):
            cursor = (await KfCursor.get(id=row.id)).cursor
            while True:
                try:
                    page = await api.sync_msg(open_kfid=open_kfid, cursor=cursor, token=token, limit=limit)
                except PermanentAPIError as exc:
                    if exc.errcode != 95007 or token is None:
                        raise
                    log.info("wecom_kf.token_expired", open_kfid=open_kfid)
                    token = None
                    continue
                for item in page.get("msg_list") or []:
                    handled += await handle_item(account=account, item=item)
                cursor = str(page.get("next_cursor") or cursor)
                pages += 1
                await KfCursor.filter(id=row.id).update(cursor=cursor, pages=F("pages") + 1,
                                                        lease_until=utcnow() + LEASE)
                if not int(page.get("has_more") or 0):
                    break
    finally:
        await KfCursor.filter(id=row.id).update(lease_until=None)
    log.info("wecom_kf.pulled", open_kfid=open_kfid, pages=pages, handled=handled)
    return {"pages": pages, "handled": handled}


async def handle_item(*, account: ChannelAccount, item: dict[str, Any]) -> int:
    """Handle one pulled item unless its msgid was handled before; 1 when handled now."""
    msgid = str(item.get("msgid") or "")
    if msgid and await KfSeen.exists(msgid=msgid):
        return 0
    if item.get("msgtype") == "event":
        await events.handle_event(account=account, item=item)
    elif int(item.get("origin") or 0) == 5:
        await events.servicer_message(account=account, item=item)
    else:
        await events.customer_wrote(account=account, item=item)
        await intake.receive(inbound=to_inbound(item, account_id=account.id), account=account)
    if msgid:
        try:
            await KfSeen.create(msgid=msgid, open_kfid=str(item.get("open_kfid") or ""))
        except IntegrityError:  # a concurrent pull of a replayed cursor got there first
            return 0
    return 1


async def on_kf_callback(push: WeComPush) -> str:
    """``kf_msg_or_event``: pull with the callback's Token (valid 10 minutes)."""
    open_kfid = push.fields.get("OpenKfId", "")
    if not open_kfid:
        log.info("wecom_kf.callback_without_open_kfid", event_id=push.event_id)
        return "ignored"
    await pull(open_kfid=open_kfid, token=push.fields.get("Token") or None)
    return "done"


async def kf_sync_all(ctx: dict[str, Any]) -> int:
    """Recover lost callbacks: a token-less pull of every kf account (strictly rate-limited by WeCom)."""
    done = 0
    for account in await ChannelAccount.filter(kind=KIND, active=True):
        try:
            await pull(open_kfid=account.key, token=None)
            done += 1
        except PullBusy:
            continue
        except Exception as exc:  # one account's trouble must not stop the others
            log.warning("wecom_kf.recovery_failed", open_kfid=account.key, error=f"{type(exc).__name__}")
    return done


async def kf_recover(ctx: dict[str, Any], open_kfid: str) -> str:
    """A recovery pull of one kf account asked for from the console (a token-less ``sync_msg`` from its cursor)."""
    try:
        counts = await pull(open_kfid=open_kfid, token=None)
    except PullBusy:
        return "busy"  # a pull of this account is running: it reads the same messages
    return f"pages={counts['pages']} handled={counts['handled']}"


async def kf_sync_accounts(ctx: dict[str, Any]) -> int:
    """Mirror kf/account/list into channel accounts (each can then be routed to its own groups)."""
    items = await api.list_accounts()
    for item in items:
        await ensure_account(open_kfid=str(item["open_kfid"]), name=str(item.get("name") or ""))
    return len(items)

