"""In-memory MP (公众号) platform state: accounts, tokens, followers, media, templates, menus and message logs.

The rules it enforces come from the official docs:

* access_token https://developers.weixin.qq.com/doc/service/en/Basic_Information/Get_access_token.html —
  7200 s lifetime; a re-fetch issues a new token and the previous one stays valid only for a 5-minute grace period;
  2000 fetches a day.
* customer-service window
  https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage — a customer's message
  allows 5 messages within 48 h (the count restarts with each new customer message); a menu click, a follow or a QR
  scan allows 3 messages within 1 minute.
* temporary media https://developers.weixin.qq.com/doc/service/api/material/temporary/api_getmedia — kept 3 days.

All methods take the state's lock, so the uvicorn thread and the test thread can both use the store.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from simulator.clock import Clock
from simulator.mp.errors import MPError

__all__ = [
    "EVENT_WINDOW_QUOTA",
    "EVENT_WINDOW_SECONDS",
    "MEDIA_TTL_SECONDS",
    "MESSAGE_WINDOW_QUOTA",
    "MESSAGE_WINDOW_SECONDS",
    "TOKEN_TTL_SECONDS",
    "Interaction",
    "IssuedToken",
    "MPAccount",
    "MPMedia",
    "MPStore",
    "MPTemplate",
    "MPUser",
    "Mode",
    "ReceivedMessage",
    "SentKind",
    "SentMessage",
]

Mode = Literal["plain", "compat", "safe"]
SentKind = Literal["custom", "template", "passive", "notice"]
Interaction = Literal["message", "event"]

TOKEN_TTL_SECONDS = 7200
MESSAGE_WINDOW_SECONDS = 48 * 3600
MESSAGE_WINDOW_QUOTA = 5
EVENT_WINDOW_SECONDS = 60
EVENT_WINDOW_QUOTA = 3
MEDIA_TTL_SECONDS = 3 * 24 * 3600
MEDIA_TYPES = ("image", "voice", "video", "thumb")

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\.DATA\s*\}\}")


@dataclass
class MPAccount:
    """One Official Account as configured on the MP admin console (基本配置 / 服务器配置)."""

    appid: str
    secret: str
    token: str
    aes_key: str
    original_id: str = ""
    callback_url: str | None = None
    mode: Mode = "safe"
    name: str = ""

    def __post_init__(self) -> None:
        if self.mode not in ("plain", "compat", "safe"):
            raise ValueError(f"mode must be plain, compat or safe, not {self.mode!r}")
        if len(self.aes_key) != 43:
            raise ValueError("aes_key (EncodingAESKey) must have 43 characters")
        if not self.original_id:
            self.original_id = "gh_" + hashlib.sha1(self.appid.encode()).hexdigest()[:12]
        if not self.name:
            self.name = f"公众号 {self.appid}"

    def to_json(self, *, secrets_too: bool = False) -> dict[str, Any]:
        """Public description (no secret, token or key unless asked)."""
        data = asdict(self)
        if not secrets_too:
            for key in ("secret", "token", "aes_key"):
                data.pop(key)
        return data


@dataclass
class MPUser:
    """A WeChat user as one Official Account sees them (openid is per account, unionid is per Open Platform)."""

    appid: str
    openid: str
    subscribe: bool = True
    subscribe_time: int = 0
    unionid: str | None = None
    remark: str = ""
    tagid_list: list[int] = field(default_factory=list)
    language: str = "zh_CN"
    groupid: int = 0
    subscribe_scene: str = "ADD_SCENE_SEARCH"
    qr_scene: int = 0
    qr_scene_str: str = ""
    nickname: str = ""
    #: start and use of the 48-hour window opened by the customer's last message
    message_window_at: float | None = None
    message_window_used: int = 0
    #: start and use of the 1-minute window opened by a click, follow or scan
    event_window_at: float | None = None
    event_window_used: int = 0

    def info_json(self) -> dict[str, Any]:
        """The ``cgi-bin/user/info`` body; since 2021 it has no nickname or headimgurl."""
        if not self.subscribe:
            minimal: dict[str, Any] = {"subscribe": 0, "openid": self.openid}
            if self.unionid:
                minimal["unionid"] = self.unionid
            return minimal
        data: dict[str, Any] = {
            "subscribe": 1,
            "openid": self.openid,
            "language": self.language,
            "subscribe_time": self.subscribe_time,
        }
        if self.unionid:  # present only when the account is bound to an Open Platform account
            data["unionid"] = self.unionid
        data.update(
            remark=self.remark,
            groupid=self.groupid,
            tagid_list=list(self.tagid_list),
            subscribe_scene=self.subscribe_scene,
            qr_scene=self.qr_scene,
            qr_scene_str=self.qr_scene_str,
        )
        return data

    def to_json(self) -> dict[str, Any]:
        """Everything, for the admin API."""
        return asdict(self)


@dataclass
class IssuedToken:
    """An access_token and its lifetime."""

    token: str
    appid: str
    issued_at: float
    expires_at: float
    superseded_at: float | None = None


@dataclass
class MPMedia:
    """A temporary media file (临时素材)."""

    media_id: str
    appid: str
    content: bytes
    content_type: str
    filename: str
    media_type: str
    created_at: float


@dataclass
class MPTemplate:
    """A template registered on the account (模板消息 → 我的模板)."""

    template_id: str
    title: str
    content: str


@dataclass
class SentMessage:
    """Something the customer received from the desk: a custom message, a template, a passive reply, a notice."""

    id: int
    appid: str
    touser: str
    kind: SentKind
    msgtype: str
    body: dict[str, Any]
    time: float
    msgid: int | None = None
    title: str | None = None
    rendered: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON for the inspection API."""
        return asdict(self)


@dataclass
class ReceivedMessage:
    """Something the customer sent to the account (a message or an event), as delivered to the desk."""

    id: int
    appid: str
    openid: str
    msgtype: str
    fields: dict[str, Any]
    xml: str
    time: float
    msg_id: int | None = None
    event: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON for the inspection API."""
        return asdict(self)


def default_unionid(openid: str) -> str:
    """A stable fake unionid for an openid, so tests that do not set one still get the same value each run."""
    return "oU" + hashlib.sha1(f"unionid:{openid}".encode()).hexdigest()[:26]


def render_template(content: str, data: dict[str, Any]) -> str:
    """Fill ``{{first.DATA}}`` placeholders the way WeChat renders a template card."""

    def value(match: re.Match[str]) -> str:
        item = data.get(match.group(1))
        if isinstance(item, dict):
            return str(item.get("value", ""))
        return "" if item is None else str(item)

    return _PLACEHOLDER.sub(value, content)


class MPStore:
    """State of the MP platform; the HTTP routes and the driver go through these methods."""

    def __init__(self, *, lock: threading.RLock, clock: Clock, next_id: Callable[[], int]) -> None:
        self._lock = lock
        self._clock = clock
        self._next_id = next_id
        #: how long a superseded token keeps working after a re-fetch
        self.token_grace_seconds = 300.0
        #: per-appid daily quota of cgi-bin/token calls (WeChat: 2000; test accounts: 200)
        self.token_daily_quota = 2000
        #: schedule a TEMPLATESENDJOBFINISH callback after each accepted template message
        self.template_job_finish = True
        self.template_job_finish_delay = 0.2
        self.accounts: dict[str, MPAccount] = {}
        self.templates: dict[str, dict[str, MPTemplate]] = {}
        self._init_dynamic()

    def _init_dynamic(self) -> None:
        self.tokens: dict[str, IssuedToken] = {}
        self.current_token: dict[str, str] = {}
        self.token_fetches: dict[str, list[float]] = {}
        self.tickets: dict[str, tuple[str, float]] = {}
        self.users: dict[tuple[str, str], MPUser] = {}
        self.media: dict[str, MPMedia] = {}
        self.menus: dict[str, dict[str, Any]] = {}
        self.sent: list[SentMessage] = []
        self.received: list[ReceivedMessage] = []
        # MsgIds above 2**62 catch anyone storing them in an int32 or a JS number.
        self._msg_id = (1 << 62) + secrets.randbelow(1 << 40)

    def reset(self, *, keep_accounts: bool = True) -> None:
        """Forget tokens, users, media and logs; keep accounts and templates unless asked."""
        with self._lock:
            self._init_dynamic()
            if not keep_accounts:
                self.accounts.clear()
                self.templates.clear()

    # -- accounts ---------------------------------------------------------------------------------------------

    def add_account(self, account: MPAccount) -> MPAccount:
        """Register an Official Account."""
        with self._lock:
            self.accounts[account.appid] = account
        return account

    def account(self, appid: str) -> MPAccount:
        """The account with this appid; KeyError if unknown."""
        with self._lock:
            return self.accounts[appid]

    # -- tokens -----------------------------------------------------------------------------------------------

    def issue_token(self, appid: str, secret: str) -> IssuedToken:
        """``cgi-bin/token``: a new token each time; the previous one lives on for the grace period only."""
        with self._lock:
            account = self.accounts.get(appid)
            if account is None:
                raise MPError(40013)
            if not secrets.compare_digest(account.secret.encode(), secret.encode()):
                raise MPError(40001, "invalid credential, AppSecret error or AppSecret does not belong to this appid")
            now = self._clock.now()
            day_start = now - now % 86400
            fetches = self.token_fetches.setdefault(appid, [])
            if sum(1 for t in fetches if t >= day_start) >= self.token_daily_quota:
                raise MPError(45009, "reach max api daily quota limit")
            previous = self.current_token.get(appid)
            if previous is not None:
                self.tokens[previous].superseded_at = now
            token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(136))
            issued = IssuedToken(token=token, appid=appid, issued_at=now, expires_at=now + TOKEN_TTL_SECONDS)
            self.tokens[token] = issued
            self.current_token[appid] = token
            fetches.append(now)
            return issued

    def check_token(self, token: str | None) -> str:
        """Validate an access_token and return its appid, or raise the error WeChat would give."""
        if not token:
            raise MPError(41001)
        with self._lock:
            issued = self.tokens.get(token)
            if issued is None:
                raise MPError(40014)
            now = self._clock.now()
            if now >= issued.expires_at:
                raise MPError(42001)
            if issued.superseded_at is not None and now >= issued.superseded_at + self.token_grace_seconds:
                raise MPError(40001)
            return issued.appid

    def token_fetch_count(self, appid: str) -> int:
        """How many tokens were issued for ``appid`` since the last reset."""
        with self._lock:
            return len(self.token_fetches.get(appid, []))

    def token_stats(self) -> dict[str, dict[str, Any]]:
        """Per-appid fetch counts and how many tokens are currently accepted."""
        with self._lock:
            now = self._clock.now()
            stats: dict[str, dict[str, Any]] = {}
            for appid in set(self.accounts) | set(self.token_fetches):
                valid = 0
                for issued in self.tokens.values():
                    if issued.appid != appid or now >= issued.expires_at:
                        continue
                    if issued.superseded_at is None or now < issued.superseded_at + self.token_grace_seconds:
                        valid += 1
                fetches = self.token_fetches.get(appid, [])
                stats[appid] = {
                    "fetches": len(fetches),
                    "valid_tokens": valid,
                    "last_fetch_at": fetches[-1] if fetches else None,
                }
            return stats

    def jsapi_ticket(self, appid: str) -> tuple[str, int]:
        """The account's jsapi_ticket and its remaining lifetime; the same ticket until it expires."""
        with self._lock:
            now = self._clock.now()
            ticket = self.tickets.get(appid)
            if ticket is None or now >= ticket[1]:
                value = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(86))
                ticket = (value, now + TOKEN_TTL_SECONDS)
                self.tickets[appid] = ticket
            return ticket[0], TOKEN_TTL_SECONDS

    # -- users and the customer-service window ---------------------------------------------------------------

    def set_user(self, appid: str, openid: str, **fields: Any) -> MPUser:
        """Create or update a follower; unset fields keep their value (or get realistic defaults)."""
        with self._lock:
            user = self.users.get((appid, openid))
            if user is None:
                user = MPUser(appid=appid, openid=openid, subscribe_time=int(self._clock.now()))
                user.unionid = default_unionid(openid)
                self.users[(appid, openid)] = user
            for key, value in fields.items():
                if not hasattr(user, key) or key in ("appid", "openid"):
                    raise TypeError(f"MPUser has no settable field {key!r}")
                setattr(user, key, value)
            return user

    def user(self, appid: str, openid: str) -> MPUser | None:
        """The follower, if known."""
        with self._lock:
            return self.users.get((appid, openid))

    def ensure_user(self, appid: str, openid: str) -> MPUser:
        """The follower, created as subscribed if unknown (a user must follow before writing)."""
        with self._lock:
            return self.users.get((appid, openid)) or self.set_user(appid, openid)

    def subscribe(self, appid: str, openid: str, *, scene: str | None = None) -> MPUser:
        """A follow: subscribe flag, time and scene as user/info will report them."""
        with self._lock:
            fields: dict[str, Any] = {"subscribe": True, "subscribe_time": int(self._clock.now())}
            if scene is None:
                fields.update(subscribe_scene="ADD_SCENE_SEARCH", qr_scene=0, qr_scene_str="")
            elif scene.isdigit():
                fields.update(subscribe_scene="ADD_SCENE_QR_CODE", qr_scene=int(scene), qr_scene_str="")
            else:
                fields.update(subscribe_scene="ADD_SCENE_QR_CODE", qr_scene=0, qr_scene_str=scene)
            return self.set_user(appid, openid, **fields)

    def unsubscribe(self, appid: str, openid: str) -> MPUser:
        """An unfollow closes every window."""
        with self._lock:
            return self.set_user(appid, openid, subscribe=False, message_window_at=None, event_window_at=None)

    def record_interaction(self, appid: str, openid: str, kind: Interaction) -> None:
        """A customer message opens (and restarts) the 48 h window; a click/follow/scan opens the 1-minute one."""
        with self._lock:
            user = self.ensure_user(appid, openid)
            now = self._clock.now()
            if kind == "message":
                user.message_window_at, user.message_window_used = now, 0
            else:
                user.event_window_at, user.event_window_used = now, 0

    def consume_custom_quota(self, appid: str, openid: str) -> None:
        """Allow one custom message or raise 45015 (no window) / 45047 (window used up)."""
        with self._lock:
            user = self.users.get((appid, openid))
            if user is None or not user.subscribe:
                raise MPError(45015)
            now = self._clock.now()
            message_open = user.message_window_at is not None and now - user.message_window_at < MESSAGE_WINDOW_SECONDS
            event_open = user.event_window_at is not None and now - user.event_window_at < EVENT_WINDOW_SECONDS
            if message_open and user.message_window_used < MESSAGE_WINDOW_QUOTA:
                user.message_window_used += 1
                return
            if event_open and user.event_window_used < EVENT_WINDOW_QUOTA:
                user.event_window_used += 1
                return
            if message_open or event_open:
                raise MPError(45047)
            raise MPError(45015)

    # -- media --------------------------------------------------------------------------------------------------

    def add_media(
        self, appid: str, content: bytes, content_type: str, filename: str, media_type: str | None = None
    ) -> str:
        """Store a temporary media file and return its media_id."""
        if media_type is None:
            media_type = _media_type_for(content_type)
        media_id = secrets.token_urlsafe(48).replace("-", "_")[:64]
        with self._lock:
            self.media[media_id] = MPMedia(
                media_id=media_id,
                appid=appid,
                content=content,
                content_type=content_type,
                filename=filename,
                media_type=media_type,
                created_at=self._clock.now(),
            )
        return media_id

    def get_media(self, appid: str | None, media_id: str) -> MPMedia:
        """The media file, or 40007 when unknown, of another account or older than 3 days."""
        with self._lock:
            media = self.media.get(media_id)
            if media is None or (appid is not None and media.appid != appid):
                raise MPError(40007)
            if self._clock.now() - media.created_at >= MEDIA_TTL_SECONDS:
                raise MPError(40007)
            return media

    # -- templates and menus -------------------------------------------------------------------------------------

    def add_template(self, appid: str, template_id: str, title: str, content: str) -> MPTemplate:
        """Register a template; once an account has any, template/send only accepts registered ids."""
        template = MPTemplate(template_id=template_id, title=title, content=content)
        with self._lock:
            self.templates.setdefault(appid, {})[template_id] = template
        return template

    def template(self, appid: str, template_id: str) -> MPTemplate | None:
        """The registered template; raises 40037 if the account has templates but not this one."""
        with self._lock:
            registered = self.templates.get(appid)
            if not registered:
                return None  # no templates registered: accept any id, so quick tests need no setup
            if template_id not in registered:
                raise MPError(40037)
            return registered[template_id]

    def set_menu(self, appid: str, menu: dict[str, Any]) -> None:
        """Store the custom menu."""
        with self._lock:
            self.menus[appid] = menu

    def menu(self, appid: str) -> dict[str, Any] | None:
        """The custom menu, if created."""
        with self._lock:
            return self.menus.get(appid)

    # -- message logs ----------------------------------------------------------------------------------------------

    def next_msg_id(self) -> int:
        """A fresh 64-bit id for MsgId (callbacks) and msgid (template/send)."""
        with self._lock:
            self._msg_id += 1 + secrets.randbelow(1000)
            return self._msg_id

    def record_sent(
        self,
        *,
        appid: str,
        touser: str,
        kind: SentKind,
        msgtype: str,
        body: dict[str, Any],
        msgid: int | None = None,
        title: str | None = None,
        rendered: str | None = None,
    ) -> SentMessage:
        """Append to the log of what customers received."""
        with self._lock:
            message = SentMessage(
                id=self._next_id(),
                appid=appid,
                touser=touser,
                kind=kind,
                msgtype=msgtype,
                body=body,
                time=self._clock.now(),
                msgid=msgid,
                title=title,
                rendered=rendered,
            )
            self.sent.append(message)
            return message

    def record_received(
        self,
        *,
        appid: str,
        openid: str,
        msgtype: str,
        fields: dict[str, Any],
        xml: str,
        msg_id: int | None,
        event: str | None,
    ) -> ReceivedMessage:
        """Append to the log of what customers sent."""
        with self._lock:
            message = ReceivedMessage(
                id=self._next_id(),
                appid=appid,
                openid=openid,
                msgtype=msgtype,
                fields=fields,
                xml=xml,
                time=self._clock.now(),
                msg_id=msg_id,
                event=event,
            )
            self.received.append(message)
            return message

    def sent_messages(
        self,
        appid: str | None = None,
        touser: str | None = None,
        *,
        since_id: int = 0,
        kind: SentKind | None = None,
    ) -> list[SentMessage]:
        """What the desk sent, oldest first, filtered."""
        with self._lock:
            return [
                m
                for m in self.sent
                if (appid is None or m.appid == appid)
                and (touser is None or m.touser == touser)
                and (kind is None or m.kind == kind)
                and m.id > since_id
            ]

    def received_messages(
        self, appid: str | None = None, openid: str | None = None, *, since_id: int = 0
    ) -> list[ReceivedMessage]:
        """What customers sent, oldest first, filtered."""
        with self._lock:
            return [
                m
                for m in self.received
                if (appid is None or m.appid == appid) and (openid is None or m.openid == openid) and m.id > since_id
            ]


def _media_type_for(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return {"image": "image", "audio": "voice", "video": "video"}.get(major, "image")
