"""All mutable simulator state, in memory, shared by the HTTP routes, the driver and the tests.

One ``threading.RLock`` guards everything, because the routes run on uvicorn's thread while a test (or the chat
page's driver) reads and writes from another. Each platform keeps its own store (``state.mp`` today; a WeCom store
slots in beside it) and this class adds the shared pieces: the clock, the fault table, a global id counter that
orders every log, and short-hands for what tests use most.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from simulator.clock import Clock
from simulator.crypto import random_aes_key
from simulator.faults import Fault, FaultTable
from simulator.mp.store import Mode, MPAccount, MPStore, MPUser, ReceivedMessage, SentKind, SentMessage
from simulator.sms import SentSms, SmsStore
from simulator.wecom.store import WeComStore

__all__ = ["ApiCall", "SimulatorState"]


@dataclass
class ApiCall:
    """One API request the desk made, for asserting exact outbound traffic."""

    id: int
    platform: str
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    appid: str | None
    errcode: int | None
    http_status: int
    time: float

    def to_json(self) -> dict[str, Any]:
        """JSON for the admin API (body as text)."""
        data = asdict(self)
        data["body"] = self.body.decode("utf-8", "replace")
        return data


class SimulatorState:
    """The whole simulated platform."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        token_grace_seconds: float = 300.0,
        template_job_finish: bool = True,
        public_base_url: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.faults = FaultTable(self.lock)
        self._ids = itertools.count(1)
        self.mp = MPStore(lock=self.lock, clock=self.clock, next_id=self.next_id)
        self.mp.token_grace_seconds = token_grace_seconds
        self.mp.template_job_finish = template_job_finish
        #: the WeCom corp (apps, directory, external contacts, app messages); see simulator.wecom.store
        self.wecom = WeComStore(lock=self.lock, clock=self.clock, next_id=self.next_id)
        #: Tencent Cloud SMS: the SMS applications and the messages "sent"; see simulator.sms
        self.sms = SmsStore(lock=self.lock, clock=self.clock, next_id=self.next_id)
        #: where the simulator is reachable (set by SimulatorServer); used for PicUrl links in callbacks
        self.public_base_url = public_base_url
        #: the web chat embed snippet the demo shop page (/_sim/shop) pastes, as the desk's console gives it out
        self.shop_snippet: str | None = None
        self.api_calls: deque[ApiCall] = deque(maxlen=10_000)
        #: callbacks scheduled by the API routes (TEMPLATESENDJOBFINISH); kept so they are not garbage-collected
        self.background_tasks: set[asyncio.Task[Any]] = set()

    def next_id(self) -> int:
        """A process-wide increasing id, shared by every log so timelines merge in order."""
        with self.lock:
            return next(self._ids)

    def reset(self, *, keep_accounts: bool = True) -> None:
        """Forget everything that happened (tokens, users, media, logs, faults, clock offset); keep configuration."""
        with self.lock:
            self.mp.reset(keep_accounts=keep_accounts)
            self.wecom.reset()
            self.sms.reset()
            self.faults.clear()
            self.api_calls.clear()
            self.clock.reset()

    def record_api_call(
        self,
        *,
        platform: str,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        appid: str | None,
        errcode: int | None,
        http_status: int,
    ) -> None:
        """Log one API request."""
        with self.lock:
            self.api_calls.append(
                ApiCall(
                    id=self.next_id(),
                    platform=platform,
                    method=method,
                    path=path,
                    query=dict(query),
                    body=body,
                    appid=appid,
                    errcode=errcode,
                    http_status=http_status,
                    time=self.clock.now(),
                )
            )

    def api_calls_for(self, path: str | None = None, *, platform: str | None = None) -> list[ApiCall]:
        """Logged API calls, optionally for one path (``message/custom/send``)."""
        with self.lock:
            return [
                c
                for c in self.api_calls
                if (path is None or c.path == path) and (platform is None or c.platform == platform)
            ]

    # -- short-hands used by tests and the desk's dev runner ---------------------------------------------------

    def add_mp_account(
        self,
        appid: str | MPAccount,
        secret: str | None = None,
        token: str | None = None,
        aes_key: str | None = None,
        *,
        original_id: str = "",
        callback_url: str | None = None,
        mode: Mode = "safe",
        name: str = "",
    ) -> MPAccount:
        """Register an Official Account (pass an ``MPAccount`` or its fields; a missing key is generated)."""
        if isinstance(appid, MPAccount):
            return self.mp.add_account(appid)
        account = MPAccount(
            appid=appid,
            secret=secret or f"secret-{appid}",
            token=token or "simtoken",
            aes_key=aes_key or random_aes_key(),
            original_id=original_id,
            callback_url=callback_url,
            mode=mode,
            name=name,
        )
        return self.mp.add_account(account)

    def mp_account(self, appid: str) -> MPAccount:
        """The registered account (KeyError if unknown)."""
        return self.mp.account(appid)

    def set_mp_user(self, appid: str, openid: str, **fields: Any) -> MPUser:
        """Create or update a follower, e.g. ``set_mp_user(appid, openid, unionid="u1", subscribe=True)``."""
        return self.mp.set_user(appid, openid, **fields)

    def mp_user(self, appid: str, openid: str) -> MPUser | None:
        """The follower, if known."""
        return self.mp.user(appid, openid)

    def add_media(self, appid: str, content: bytes, content_type: str, filename: str) -> str:
        """Store a temporary media file for ``appid``; returns the media_id."""
        return self.mp.add_media(appid, content, content_type, filename)

    def add_template(self, appid: str, template_id: str, title: str, content: str) -> None:
        """Register a template message template (content uses ``{{key.DATA}}`` placeholders)."""
        self.mp.add_template(appid, template_id, title, content)

    def inject_fault(self, path: str, fault: Fault | Mapping[str, Any], times: int | None = 1) -> Fault:
        """Make the next ``times`` calls to ``path`` fail (see ``simulator.faults``)."""
        return self.faults.inject(path, fault, times)

    def sent_messages(
        self,
        appid: str | None = None,
        touser: str | None = None,
        *,
        since_id: int = 0,
        kind: SentKind | None = None,
    ) -> list[SentMessage]:
        """Messages the desk sent to customers (custom, template, passive replies, error notices)."""
        return self.mp.sent_messages(appid, touser, since_id=since_id, kind=kind)

    def received_messages(
        self, appid: str | None = None, openid: str | None = None, *, since_id: int = 0
    ) -> list[ReceivedMessage]:
        """Messages and events customers sent (through the driver)."""
        return self.mp.received_messages(appid, openid, since_id=since_id)

    def token_fetch_count(self, appid: str) -> int:
        """How many access tokens were issued for ``appid``."""
        return self.mp.token_fetch_count(appid)

    def sms_to(self, phone: str) -> list[SentSms]:
        """The text messages Tencent Cloud SMS "sent" to a number (E.164 or national), oldest first."""
        return self.sms.messages(phone)

    def last_sms(self, phone: str) -> SentSms | None:
        """The last text message "sent" to a number, e.g. to read the verification code the desk sent."""
        return self.sms.last(phone)

    def advance(self, seconds: float) -> float:
        """Move the simulated clock forward."""
        return self.clock.advance(seconds)
