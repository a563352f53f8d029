"""IMAP IDLE against a real dovecot: new mail read within the watch (no minute poll), one watcher per mailbox, mail
that came while nobody watched read on restart without duplicates, a dropped connection (the session killed, the
server restarted) reconnected with every mail read exactly once, and a server without IDLE left to polling."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from app import queue as jobqueue
from app.channels.email import accounts, idle
from app.channels.email.jobs import email_poll
from app.channels.email.models import MailboxCursor
from app.channels.models import ChannelAccount, InboundEvent
from app.settings import Settings
from app.tickets.models import Ticket
from app.timeutil import utcnow
from tests.app.channels.email import dovecot
from tests.app.channels.email.conftest import ADDRESS, PASSWORD, SinkHandler
from tests.app.channels.email.test_imap import Mailbox, mail
from tests.conftest import IN_CI

#: a bounded wait so a broken watcher fails the test instead of hanging it (not a timed assertion)
WAIT = 15.0
NO_IDLE = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+\n"


@pytest.fixture(autouse=True)
def _dovecot_required() -> None:
    missing = dovecot.unavailable()
    if missing is not None:
        if IN_CI:
            pytest.fail(f"the email tier is required under CI=true: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def idle_server() -> Iterator[dovecot.Dovecot]:
    with dovecot.running(ADDRESS, PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server() -> Iterator[dovecot.Dovecot]:
    with dovecot.running(ADDRESS, PASSWORD, extra=NO_IDLE) as server:
        yield server


async def _setup(server: dovecot.Dovecot, smtp_port: int) -> tuple[Mailbox, ChannelAccount]:
    from app.seed import ensure_org

    await ensure_org()
    box = Mailbox(server)
    uids = box.client.search(["ALL"])
    if uids:
        box.client.delete_messages(uids)
        box.client.expunge()
    account = await accounts.upsert_account(
        key="support", name="客服中心", address=ADDRESS, imap_host="127.0.0.1", imap_port=server.port,
        imap_security="none", smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none",
        username=ADDRESS, password=PASSWORD)
    return box, account


@pytest.fixture
async def watched(db: None, settings: Settings, jobs: jobqueue.InProcessQueue, idle_server: dovecot.Dovecot,
                  smtp_sink: tuple[SinkHandler, int]) -> AsyncIterator[tuple[Mailbox, ChannelAccount, Any]]:
    box, account = await _setup(idle_server, smtp_sink[1])
    yield box, account, jobs
    await idle.stop_watchers()
    box.client.logout()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    async def loop() -> None:
        while not await check():  # noqa: ASYNC110 - the state is in the database, not in an event
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), WAIT)


async def _events(n: int) -> bool:
    return await InboundEvent.all().count() == n


async def _processed(n: int) -> bool:
    """``n`` events stored and past processing. A stored row is visible before its job is enqueued (the read
    commits, then enqueues), so draining the jobs as soon as the row shows can miss its job."""
    return await InboundEvent.all().count() == n and not await InboundEvent.filter(
        status__in=("pending", "processing")).exists()


async def test_new_mail_is_read_as_it_arrives(watched: tuple[Mailbox, ChannelAccount, Any]) -> None:
    box, account, jobs = watched
    assert await idle.email_idle_watch() == 1
    await _until(lambda: MailboxCursor.filter(channel_account_id=account.id, mode="idle").exists())
    uid = box.deliver(mail(1))

    await _until(lambda: _processed(1))  # no poll ran: the server's EXISTS woke the read
    await jobs.drain()
    assert [t.subject for t in await Ticket.all()] == ["question 1"]
    cursor = await MailboxCursor.get(channel_account_id=account.id)
    assert (cursor.last_uid, cursor.mode, cursor.lease_until) == (uid, "idle", None)
    assert cursor.idle_until is not None and cursor.idle_until > utcnow()

    second = box.deliver(mail(2))
    await _until(lambda: _events(2))
    assert await email_poll({}) == 0  # the safety-net poll finds nothing left
    assert (await MailboxCursor.get(channel_account_id=account.id)).last_uid == second
    assert await idle.email_idle_watch() == 1  # still the one watcher


async def test_a_restarted_watcher_reads_what_came_meanwhile_once(
        watched: tuple[Mailbox, ChannelAccount, Any]) -> None:
    box, account, jobs = watched
    assert await idle.email_idle_watch() == 1
    box.deliver(mail(1))
    await _until(lambda: _events(1))
    await idle.stop_watchers()
    cursor = await MailboxCursor.get(channel_account_id=account.id)
    assert cursor.idle_until is None  # released for the next process

    box.deliver(mail(2))  # nobody watches
    assert await idle.email_idle_watch() == 1
    await _until(lambda: _events(2))
    box.deliver(mail(3))
    await _until(lambda: _processed(3))
    await jobs.drain()
    assert sorted(t.subject for t in await Ticket.all()) == ["question 1", "question 2", "question 3"]


async def test_one_watcher_per_mailbox_across_processes(watched: tuple[Mailbox, ChannelAccount, Any]) -> None:
    _, account, _ = watched
    cursor, _ = await MailboxCursor.get_or_create(channel_account_id=account.id, folder="INBOX")
    # another process holds the watch
    await MailboxCursor.filter(id=cursor.id).update(idle_until=utcnow() + idle.LEASE)
    assert await idle.email_idle_watch() == 0
    # its lease ran out (it died): this process takes over
    await MailboxCursor.filter(id=cursor.id).update(idle_until=utcnow() - idle.LEASE)
    assert await idle.email_idle_watch() == 1


async def test_a_removed_or_changed_mailbox_stops_its_watcher(watched: tuple[Mailbox, ChannelAccount, Any]) -> None:
    _, account, _ = watched
    assert await idle.email_idle_watch() == 1
    task = next(iter(idle._watchers.values()))[1]
    await ChannelAccount.filter(id=account.id).update(active=False)
    assert await idle.email_idle_watch() == 0
    assert task.cancelled()


async def test_a_server_without_idle_is_left_to_the_poll(
        db: None, settings: Settings, jobs: jobqueue.InProcessQueue, plain_server: dovecot.Dovecot,
        smtp_sink: tuple[SinkHandler, int]) -> None:
    box, account = await _setup(plain_server, smtp_sink[1])
    try:
        assert await idle.email_idle_watch() in (0, 1)
        await _until(lambda: MailboxCursor.filter(channel_account_id=account.id, mode="poll").exists())
        # the watch's lease (90 s) is taken first; the hourly recheck replaces it once the server says it has no IDLE
        await _until(lambda: MailboxCursor.filter(
            channel_account_id=account.id, idle_until__gt=utcnow() + idle.LEASE).exists())
        cursor = await MailboxCursor.get(channel_account_id=account.id)
        assert cursor.idle_until is not None and (cursor.idle_until - utcnow()) > idle.RECHECK - idle.LEASE
        assert await idle.email_idle_watch() == 0

        box.deliver(mail(1))
        assert await email_poll({}) == 1
        await jobs.drain()
        assert await Ticket.all().count() == 1
    finally:
        await idle.stop_watchers()
        box.client.logout()


@pytest.fixture
def quick_reconnect(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Reconnect at once after a drop (not after 5 s), and count the watcher's IMAP logins."""
    from app.channels.email import imap

    monkeypatch.setattr(idle, "BACKOFF", (0.1, 0.2, 0.5))
    logins: list[int] = []
    connect = imap.connect

    def counting(mailbox: accounts.MailAccount) -> Any:
        client = connect(mailbox)
        if threading.current_thread().name.startswith("imap-idle:"):
            logins.append(1)
        return client

    monkeypatch.setattr(imap, "connect", counting)
    return logins


async def _idling(account: ChannelAccount, server: dovecot.Dovecot) -> None:
    """Until the watcher holds IDLE on the server (its session's title says so)."""
    await _until(lambda: MailboxCursor.filter(channel_account_id=account.id, mode="idle").exists())
    await _until(lambda: asyncio.to_thread(lambda: server.sessions("IDLE") == 1))


async def _count(items: list[int], n: int) -> bool:
    return len(items) == n


async def _read_once(account: ChannelAccount, uids: list[int], jobs: Any) -> None:
    """Every delivered mail is one InboundEvent (one UID each), one ticket, and nothing is left to read."""
    await _until(lambda: _processed(len(uids)))
    await jobs.drain()
    stored = sorted(json.loads(e.payload)["uid"] for e in await InboundEvent.all())
    assert stored == uids
    assert sorted(t.subject for t in await Ticket.all()) == [f"question {n}" for n in range(1, len(uids) + 1)]
    assert await email_poll({}) == 0  # the safety-net poll finds nothing the watcher missed
    assert (await MailboxCursor.get(channel_account_id=account.id)).last_uid == uids[-1]


async def test_a_killed_idle_connection_is_reconnected_and_nothing_is_read_twice(
        watched: tuple[Mailbox, ChannelAccount, Any], idle_server: dovecot.Dovecot,
        quick_reconnect: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    box, account, jobs = watched
    monkeypatch.setattr(idle, "BACKOFF", (0.1, 60.0))
    assert await idle.email_idle_watch() == 1
    await _idling(account, idle_server)
    uids = [box.deliver(mail(1))]
    await _until(lambda: _events(1))

    # the server's session process dies (no BYE: the socket just closes), and mail comes before the watcher is back
    assert idle_server.kill_sessions("IDLE") == 1
    uids.append(box.deliver(mail(2)))
    await _until(lambda: _count(quick_reconnect, 2))
    await _idling(account, idle_server)
    uids.append(box.deliver(mail(3)))  # heard through the new IDLE connection
    await _until(lambda: _events(3))
    # and again: a connection that was up waits the first backoff again (the second is longer than this test)
    assert idle_server.kill_sessions("IDLE") == 1
    await _until(lambda: _count(quick_reconnect, 3))
    await _idling(account, idle_server)
    uids.append(box.deliver(mail(4)))
    await _read_once(account, uids, jobs)
    assert len(quick_reconnect) == 3 and await idle.email_idle_watch() == 1  # the same watcher, reconnected


async def test_a_restarted_server_is_reconnected_to_and_nothing_is_read_twice(
        db: None, settings: Settings, jobs: jobqueue.InProcessQueue, smtp_sink: tuple[SinkHandler, int],
        quick_reconnect: list[int]) -> None:
    with dovecot.running(ADDRESS, PASSWORD) as server:
        box, account = await _setup(server, smtp_sink[1])
        try:
            assert await idle.email_idle_watch() == 1
            await _idling(account, server)
            uids = [box.deliver(mail(1))]
            await _until(lambda: _events(1))

            await asyncio.to_thread(server.restart)  # every connection drops; a moment of refused connections
            box = Mailbox(server)
            uids.append(box.deliver(mail(2)))
            await _idling(account, server)
            uids.append(box.deliver(mail(3)))
            await _read_once(account, uids, jobs)
            assert len(quick_reconnect) >= 2 and await idle.email_idle_watch() == 1
        finally:
            await idle.stop_watchers()
            box.client.logout()


async def test_idle_switched_off_leaves_the_mailbox_to_the_poll_and_back_on_watches_it(
        watched: tuple[Mailbox, ChannelAccount, Any], idle_server: dovecot.Dovecot) -> None:
    from app.channels.email.service import MailboxIn, list_mailboxes, save_mailbox
    from app.security.scope import SYSTEM

    box, account, jobs = watched
    assert await idle.email_idle_watch() == 1
    await _idling(account, idle_server)
    fields = {"key": account.key, "address": ADDRESS, "imap_host": "127.0.0.1", "imap_port": idle_server.port,
              "imap_security": "none", "smtp_host": "127.0.0.1", "smtp_port": account.config["smtp_port"],
              "smtp_security": "none", "password": PASSWORD}
    await save_mailbox(actor=SYSTEM, body=MailboxIn.model_validate({**fields, "idle": False}))
    assert await idle.email_idle_watch() == 0  # the watcher is stopped, and none is started
    await _until(lambda: asyncio.to_thread(lambda: idle_server.sessions("IDLE") == 0))
    [state] = await list_mailboxes(actor=SYSTEM)
    assert (state.mode, state.mode_note) == ("poll", "已关闭 IDLE，每分钟收一次信")
    uid = box.deliver(mail(1))
    assert await email_poll({}) == 1  # the minute poll reads it
    assert (await MailboxCursor.get(channel_account_id=account.id)).last_uid == uid

    await save_mailbox(actor=SYSTEM, body=MailboxIn.model_validate(fields))
    assert await idle.email_idle_watch() == 1
    await _idling(account, idle_server)
    [state] = await list_mailboxes(actor=SYSTEM)
    assert (state.mode, state.mode_note) == ("idle", "")
    box.deliver(mail(2))
    await _until(lambda: _processed(2))
    await jobs.drain()
    assert sorted(t.subject for t in await Ticket.all()) == ["question 1", "question 2"]


async def test_a_stopped_watcher_stays_stopped_when_its_cancellation_comes_back_as_an_error(
        watched: tuple[Mailbox, ChannelAccount, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # a database or IMAP call cut off by the cancellation may raise its own error instead of CancelledError; the
    # watcher used to take that for a dropped connection, wait 5 s and reconnect, and the zombie then held the
    # mailbox's read lease when the poll came (seen under load in the IDLE-switched-off test)
    _, account, _ = watched
    calls: list[int] = []
    entered = asyncio.Event()

    async def cut_off(mailbox: Any, *, on_wake: Any) -> bool:
        calls.append(1)
        if len(calls) > 1:
            return False  # a reconnect: end the watch here rather than loop
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection cut off mid-call") from None
        return True

    monkeypatch.setattr(idle, "_idle_once", cut_off)
    monkeypatch.setattr(idle, "BACKOFF", (0.0,))
    task = asyncio.create_task(idle.watch(account))
    await entered.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=WAIT)
    assert task.done() and task.cancelled()
    assert calls == [1]  # not reconnected


def test_a_server_counts_only_its_own_sessions() -> None:
    # a second dovecot for the same user (another test run on the machine) names its sessions the same way; counting
    # them made the IDLE-switched-off test wait for a session that was not ours
    import imaplib
    import time

    with dovecot.running(ADDRESS, PASSWORD) as first, dovecot.running(ADDRESS, PASSWORD) as other:
        client = imaplib.IMAP4("127.0.0.1", other.port)
        try:
            client.login(ADDRESS, PASSWORD)
            client.select("INBOX")
            client.send(client._new_tag() + b" IDLE\r\n")
            client.readline()  # "+ idling"
            deadline = time.monotonic() + WAIT
            while other.sessions("IDLE") != 1:  # the title changes as the server takes the command
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert first.sessions("IDLE") == 0
        finally:
            client.shutdown()
