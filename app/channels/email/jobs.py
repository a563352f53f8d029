"""The mailbox poll: new mail of every active mailbox stored as InboundEvents and handed to the inbound job.

One poller per mailbox at a time (a lease on its ``MailboxCursor``, renewed while it reads). Each mail is stored
(unique dedupe key) and then the cursor moves past its UID, so a poller killed half-way reads again only the mail
it had not stored, and a mail stored twice is dropped by the key.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from app.channels.email import accounts, imap
from app.channels.email.inbound import dedupe_key
from app.channels.email.models import MailboxCursor
from app.channels.email.parse import MESSAGE_ID
from app.channels.models import ChannelAccount, InboundEvent
from app.lease import renewed
from app.logs import get_logger
from app.queue import enqueue
from app.timeutil import utcnow

log = get_logger(__name__)

#: the poll's period (the cron registered in app.setup)
POLL_EVERY = 60
LEASE = timedelta(seconds=90)
RENEW_EVERY = 20.0
#: batches one poll reads from one mailbox before it leaves the rest to the next poll
MAX_BATCHES = 10


def _message_id(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("latin-1")
    for line in head.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ").split("\n"):
        if line.lower().startswith("message-id:"):
            found = MESSAGE_ID.findall(line)
            return found[0] if found else ""
    return ""


async def store_mail(*, account_id: int, uidvalidity: int, uid: int, raw: bytes, truncated: bool) -> int | None:
    """Store one fetched mail and enqueue its processing; None when it was stored before."""
    payload = json.dumps({"uid": uid, "uidvalidity": uidvalidity, "truncated": truncated,
                          "raw": base64.b64encode(raw).decode("ascii")})
    key = dedupe_key(account_id=account_id, message_id=_message_id(raw), uidvalidity=uidvalidity, uid=uid)
    try:
        row = await InboundEvent.create(channel_account_id=account_id, payload=payload, dedupe_key=key)
    except IntegrityError:
        return None
    await enqueue("process_inbound_event", row.id, job_id=f"inbound:{row.id}:0")
    return int(row.id)


async def poll_mailbox(*, account: ChannelAccount) -> int:
    """Read one mailbox's new mail; returns how many mails were stored (-1 when another poller holds it)."""
    mailbox = accounts.from_row(account)
    cursor, _ = await MailboxCursor.get_or_create(channel_account_id=account.id, folder=mailbox.folder)
    now = utcnow()
    claimed = await MailboxCursor.filter(Q(lease_until=None) | Q(lease_until__lt=now), id=cursor.id).update(
        lease_until=now + LEASE)
    if not claimed:
        return -1
    stored = 0

    async def renew() -> None:
        await MailboxCursor.filter(id=cursor.id).update(lease_until=utcnow() + LEASE)

    try:
        async with renewed(renew, every=RENEW_EVERY, name=f"email:{account.key}"):
            for _ in range(MAX_BATCHES):
                state = await MailboxCursor.get(id=cursor.id)
                # a new mailbox (or a rebuilt folder) is read from the day it was added (or last read)
                since = (state.polled_at or account.created_at or now).date()
                fetched = await asyncio.to_thread(imap.fetch_new, mailbox, uidvalidity=state.uidvalidity,
                                                  last_uid=state.last_uid, since=since)
                if fetched.uidvalidity != state.uidvalidity:
                    # nothing since the date: start at the next UID, so older mail is never read later by UID
                    start = 0 if fetched.mails else max(0, fetched.uidnext - 1)
                    await MailboxCursor.filter(id=cursor.id).update(uidvalidity=fetched.uidvalidity, last_uid=start)
                for uid, raw, truncated in fetched.mails:
                    if await store_mail(account_id=account.id, uidvalidity=fetched.uidvalidity, uid=uid, raw=raw,
                                        truncated=truncated) is not None:
                        stored += 1
                    await MailboxCursor.filter(id=cursor.id).update(last_uid=uid)
                if not fetched.more:
                    break
        await MailboxCursor.filter(id=cursor.id).update(polled_at=utcnow(), last_error=None)
    except Exception as exc:
        await MailboxCursor.filter(id=cursor.id).update(last_error=f"{type(exc).__name__}: {exc}"[:255])
        raise
    finally:
        await MailboxCursor.filter(id=cursor.id).update(lease_until=None)
    if stored:
        log.info("email.polled", account=account.key, stored=stored)
    return stored


async def email_poll(ctx: dict[str, Any]) -> int:
    """Poll every active mailbox once; returns how many new mails were stored."""
    total = 0
    for account in await ChannelAccount.filter(kind=accounts.KIND, active=True).order_by("id"):
        try:
            total += max(0, await poll_mailbox(account=account))
        except Exception as exc:  # one mailbox's trouble (password, server down) must not stop the others
            log.warning("email.poll_failed", account=account.key, error=type(exc).__name__)
    return total
