"""The email channel's test set-up: an SMTP sink (aiosmtpd) and a mailbox account pointing at it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from app import queue as jobqueue
from app.channels.email import accounts
from app.channels.email.jobs import store_mail
from app.channels.models import ChannelAccount
from app.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
ADDRESS = "support@example.com"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SinkHandler:
    """Keeps every mail the desk sends (an SMTP sink)."""

    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    #: SMTP replies to give to the next DATA commands instead of 250
    refuse: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


PASSWORD = "client-auth-code-1"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """Only the mailbox's own login may send."""
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == ADDRESS.encode() and (
        auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok)


@pytest.fixture(scope="module")
def smtp_sink() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield handler, port
    controller.stop()


@dataclass
class Desk:
    account: ChannelAccount
    sink: SinkHandler
    jobs: jobqueue.InProcessQueue
    uid: int = 0

    async def receive(self, raw: bytes) -> int | None:
        """A mail arrives in the mailbox and the poll stores it; then every job runs."""
        self.uid += 1
        event_id = await store_mail(account_id=self.account.id, uidvalidity=1, uid=self.uid, raw=raw,
                                    truncated=False)
        await self.jobs.drain()
        return event_id


@pytest.fixture
async def desk(db: None, settings: Settings, jobs: jobqueue.InProcessQueue,
               smtp_sink: tuple[SinkHandler, int]) -> AsyncIterator[Desk]:
    from app.seed import ensure_org

    await ensure_org()
    sink, port = smtp_sink
    sink.mails.clear()
    sink.envelopes.clear()
    sink.refuse.clear()
    account = await accounts.upsert_account(
        key="support", name="客服中心", address=ADDRESS, imap_host="127.0.0.1", imap_port=1,
        imap_security="none", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
        username=ADDRESS, password=PASSWORD)
    yield Desk(account=account, sink=sink, jobs=jobs)
