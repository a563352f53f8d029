"""IMAP IDLE (RFC 2177): new mail is read within seconds where the server offers IDLE; polling otherwise.

IDLE only decides *when* to read: a watcher holds one IMAP connection in IDLE on the mailbox's folder, and any
EXISTS or RECENT it hears wakes ``jobs.poll_mailbox``, the same UID-based, leased read the minute poll does, so
nothing is read twice or missed whichever of them runs. The minute poll stays as the safety net (a dropped IDLE
connection, a server that forgets to tell), and is all a server without IDLE gets (``MailboxCursor.mode`` says
which). IDLE is re-issued every ``IDLE_RENEW`` seconds: servers drop idlers after 30 minutes, and a NAT box may
forget a silent connection sooner.

The ``email_idle_watch`` cron (every minute) keeps one watcher per active mailbox (unless its ``idle`` setting is
off) across all processes: a process starts a watcher only for a mailbox whose ``idle_until`` lease is free, and a
live watcher renews it, so a killed process's mailboxes are watched again by another within a minute or two.
Each watcher runs its blocking client in a thread of its own (never the shared executor, which a few long IDLEs
would use up).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from imapclient import IMAPClient
from tortoise.expressions import Q

from app.channels.email import accounts, imap
from app.channels.email.jobs import poll_mailbox
from app.channels.email.models import MailboxCursor
from app.channels.models import ChannelAccount
from app.lease import renewed
from app.logs import get_logger
from app.timeutil import utcnow

log = get_logger(__name__)

#: seconds before IDLE is re-issued, and between two looks at the stop flag while idling
IDLE_RENEW = 9 * 60.0
CHECK_EVERY = 1.0
#: the watch lease, renewed while the watcher lives
LEASE = timedelta(seconds=90)
#: seconds a stopped watcher gets to finish
STOP_WAIT = 5.0
RENEW_EVERY = 20.0
#: seconds to wait before reconnecting after a dropped connection (doubling up to the last)
BACKOFF = (5.0, 15.0, 60.0, 300.0)
#: how long a server without IDLE is left to the minute poll before it is asked again
RECHECK = timedelta(hours=1)
#: seconds before a read that found the mailbox leased by another reader is tried again
BUSY_RETRY = 5.0

_watchers: dict[int, tuple[str, asyncio.Task[None]]] = {}


def _closed(client: IMAPClient) -> bool:
    """Whether the server has closed the connection. ``idle_check`` cannot say: it reads end-of-file as "nothing
    yet" and returns at once, so without this a dropped connection would spin until IDLE is re-issued."""
    # the raw socket under TLS too: an SSL socket refuses MSG_PEEK, and EOF is a property of the TCP stream
    sock = client.socket()
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset by the peer
        return True


def idle_session(mailbox: accounts.MailAccount, *, wake: Callable[[], None], stop: threading.Event,
                 ready: Callable[[bool], None]) -> None:
    """Hold IDLE on the mailbox's folder until ``stop`` is set (blocking; raises when the connection fails).
    ``ready(False)`` when the server does not offer IDLE (then it returns at once); ``ready(True)`` once idling."""
    client = imap.connect(mailbox)
    try:
        if not client.has_capability("IDLE"):
            ready(False)
            return
        client.select_folder(mailbox.folder, readonly=True)
        ready(True)
        while not stop.is_set():
            client.idle()
            started = time.monotonic()
            try:
                while not stop.is_set() and time.monotonic() - started < IDLE_RENEW:
                    responses = client.idle_check(timeout=CHECK_EVERY)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        wake()
                    if any(r[:1] == (b"BYE",) for r in responses) or (not responses and _closed(client)):
                        raise ConnectionError("the IMAP server closed the IDLE connection")
            finally:
                client.idle_done()
    finally:
        with contextlib.suppress(Exception):  # the connection may be gone already
            client.logout()


async def _idle_once(mailbox: accounts.MailAccount, *, on_wake: Callable[[], Any]) -> bool:
    """One IDLE connection, in a thread of its own, for as long as it lasts; False when the server has no IDLE."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    done: asyncio.Future[None] = loop.create_future()
    offered: asyncio.Future[bool] = loop.create_future()
    stop = threading.Event()

    def finish(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(None)

    def set_offered(ok: bool) -> None:
        if not offered.done():
            offered.set_result(ok)

    def on_exists() -> None:
        loop.call_soon_threadsafe(wake.set)

    def on_ready(ok: bool) -> None:
        loop.call_soon_threadsafe(set_offered, ok)

    def run() -> None:
        error: BaseException | None = None
        try:
            idle_session(mailbox, wake=on_exists, stop=stop, ready=on_ready)
        except BaseException as exc:  # handed to the loop, raised there
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed first (process exit)
            loop.call_soon_threadsafe(finish, error)

    threading.Thread(target=run, name=f"imap-idle:{mailbox.key}", daemon=True).start()
    try:
        await asyncio.wait([cast("asyncio.Future[object]", offered), cast("asyncio.Future[object]", done)],
                           return_when=asyncio.FIRST_COMPLETED)
        if not offered.done():
            done.result()  # the connection failed before it could idle: raises its error
            return True
        if not offered.result():
            return False
        await on_wake()  # anything that came while nobody watched
        while True:
            waiter: asyncio.Future[object] = asyncio.ensure_future(wake.wait())
            await asyncio.wait([waiter, cast("asyncio.Future[object]", done)], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if wake.is_set():
                wake.clear()
                await on_wake()
            if done.done():
                done.result()
                return True
    finally:
        stop.set()
        # a connection error after we stopped listening is of no interest any more
        done.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _read(account: ChannelAccount) -> None:
    """Read new mail now; when another reader holds the mailbox, once more shortly (it may have missed this one)."""
    for _ in range(3):
        if await poll_mailbox(account=account) >= 0:
            return
        await asyncio.sleep(BUSY_RETRY)


async def watch(account: ChannelAccount) -> bool:
    """Watch one mailbox for as long as this task lives (the caller holds the watch lease); returns False at once
    when the server does not offer IDLE."""
    mailbox = accounts.from_row(account)
    attempt = 0
    first = True

    async def on_wake() -> None:
        nonlocal first, attempt
        attempt = 0  # connected and idling: the next drop waits the shortest time again
        if first:
            first = False
            await MailboxCursor.filter(channel_account_id=account.id, folder=mailbox.folder).update(mode="idle")
        await _read(account)

    while True:
        try:
            if not await _idle_once(mailbox, on_wake=on_wake):
                await MailboxCursor.filter(channel_account_id=account.id, folder=mailbox.folder).update(mode="poll")
                log.info("email.idle_not_offered", account=account.key)
                return False
            attempt = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # we were stopped, and a call cut off by it raised its own error: reconnecting would leave a
                # watcher nobody owns, holding the mailbox's read lease
                raise asyncio.CancelledError from exc
            log.warning("email.idle_dropped", account=account.key, error=type(exc).__name__)
            await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1


def _fingerprint(account: ChannelAccount) -> str:
    """What a watcher was started with: a changed server, login or folder restarts it."""
    return repr(sorted((account.config or {}).items()))


async def _claim(cursor_id: int) -> bool:
    now = utcnow()
    return bool(await MailboxCursor.filter(Q(idle_until=None) | Q(idle_until__lt=now), id=cursor_id).update(
        idle_until=now + LEASE))


async def _held(account: ChannelAccount, cursor_id: int) -> None:
    """Watch under the lease, renewed while watching and released at the end."""

    async def renew() -> None:
        await MailboxCursor.filter(id=cursor_id).update(idle_until=utcnow() + LEASE)

    until = None
    try:
        async with renewed(renew, every=RENEW_EVERY, name=f"email-idle:{account.key}"):
            if not await watch(account):
                # no IDLE there: the lease stays taken for a while, so the server is asked again only hourly
                until = utcnow() + RECHECK
    finally:
        with contextlib.suppress(Exception):  # a closed database at exit: the lease runs out by itself
            await MailboxCursor.filter(id=cursor_id).update(idle_until=until)


async def email_idle_watch(ctx: dict[str, Any] | None = None) -> int:
    """Start watchers for active mailboxes nobody watches, stop those of removed or changed mailboxes (and of those
    whose IDLE was switched off); returns how many this process watches."""
    active = {a.id: a for a in await ChannelAccount.filter(kind=accounts.KIND, active=True)
              if (a.config or {}).get("idle", True)}
    for account_id, (fingerprint, task) in list(_watchers.items()):
        account = active.get(account_id)
        if task.done() or account is None or _fingerprint(account) != fingerprint:
            await _cancelled(task)
            del _watchers[account_id]
    for account_id, account in active.items():
        if account_id in _watchers:
            continue
        mailbox = accounts.from_row(account)
        cursor, _ = await MailboxCursor.get_or_create(channel_account_id=account_id, folder=mailbox.folder)
        if not await _claim(cursor.id):
            continue
        task = asyncio.create_task(_held(account, cursor.id), name=f"email-idle:{account.key}")
        _watchers[account_id] = (_fingerprint(account), task)
    return sum(1 for _, task in _watchers.values() if not task.done())


async def stop_watchers() -> None:
    """Stop every watcher of this process (at shutdown, and between tests)."""
    await asyncio.gather(*(_cancelled(task) for _, task in list(_watchers.values())))
    _watchers.clear()


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel a watcher and give it a moment to release its lease; never wait on it for ever (a query cut off by the
    cancellation can leave its connection without an answer, and the lease runs out by itself)."""
    task.cancel()
    await asyncio.wait({task}, timeout=STOP_WAIT)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: a watcher that had failed already is just gone
