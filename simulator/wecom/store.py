"""In-memory WeCom (企业微信) platform state: one corp, its apps (one per secret), tokens, the directory, external
contacts, corp tags, app messages sent, and the rate limits.

The rules it enforces come from the official docs:

* gettoken https://developer.work.weixin.qq.com/document/path/91039 — one token per secret, 7200 s, the same token
  is returned until it expires;
* 频率限制 https://developer.work.weixin.qq.com/document/path/90454 — per corp and API 10,000 calls a minute and
  150,000 an hour (past them: 45009, blocked for the rest of the window); an app message reaches one member at
  most 30 times a minute, the excess is silently dropped;
* 发送应用消息 https://developer.work.weixin.qq.com/document/path/90236 — ``enable_duplicate_check`` suppresses the
  same content within ``duplicate_check_interval`` (default 1800 s); userids come back lower-cased in
  ``invaliduser``; 81013 when every recipient is invalid;
* 通讯录 https://developer.work.weixin.qq.com/document/path/90193 — since 2022-06-20 self-built apps do not get
  mobile/email without member authorisation: an app sees them only when ``sees_private`` is set (the 通讯录同步
  secret does); ``user/list_id`` works only with the 通讯录同步 secret;
* 客户联系 https://developer.work.weixin.qq.com/document/path/92994 — ``batch/get_by_user``: at most 100 userids,
  ``limit`` at most 100 (default 50), an opaque cursor; unionid only for apps allowed to see it.

Other helpers hang their own state on ``WeComStore.extension(name, factory)`` (kf queues, approvals) so that
``SimulatorState.reset`` clears it with the rest. Every method takes the shared lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from simulator.clock import Clock
from simulator.wecom.errors import WeComError

__all__ = [
    "DEFAULT_CORP_ID",
    "TOKEN_TTL_SECONDS",
    "IssuedWeComToken",
    "RateLimits",
    "SentAppMessage",
    "SimCorpTag",
    "SimDepartment",
    "SimExternalContact",
    "SimFollow",
    "SimTag",
    "SimUser",
    "WeComApp",
    "WeComStore",
]

T = TypeVar("T")

DEFAULT_CORP_ID = "wwsimcorp0000000001"
TOKEN_TTL_SECONDS = 7200
MEMBER_MESSAGES_PER_MINUTE = 30
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"


@dataclass
class WeComApp:
    """One secret of the corp: a self-built app, the 通讯录同步 assistant or the 客户联系 secret."""

    name: str
    secret: str
    agent_id: int | None = None
    #: callback URL token and EncodingAESKey configured for this app's 接收消息 (None: no callback)
    token: str = ""
    aes_key: str = ""
    callback_url: str | None = None
    #: mobile and email appear in user/get and user/list (通讯录同步, or member-authorised fields)
    sees_private: bool = False
    #: user/list_id is allowed (only the 通讯录同步 secret)
    may_list_ids: bool = False
    #: unionid appears in external-contact reads (the corp is bound to an Open Platform account)
    sees_unionid: bool = True
    #: external-contact APIs are allowed (「客户联系-可调用接口的应用」)
    customer_contact: bool = True

    def to_json(self) -> dict[str, Any]:
        """The app without its secrets."""
        return {"name": self.name, "agent_id": self.agent_id, "callback_url": self.callback_url,
                "sees_private": self.sees_private, "may_list_ids": self.may_list_ids}


@dataclass
class IssuedWeComToken:
    token: str
    secret: str
    issued_at: float
    expires_at: float


@dataclass(slots=True)
class SimDepartment:
    id: int
    name: str
    parentid: int
    order: int = 0
    name_en: str = ""
    department_leader: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The department/list shape."""
        return {"id": self.id, "name": self.name, "name_en": self.name_en, "department_leader":
                list(self.department_leader), "parentid": self.parentid, "order": self.order}


@dataclass(slots=True)
class SimUser:
    userid: str
    name: str
    department: list[int]
    is_leader_in_dept: list[int]
    position: str = ""
    mobile: str = ""
    email: str = ""
    gender: str = "0"
    #: 1 active, 2 disabled, 4 not activated, 5 quit
    status: int = 1
    avatar: str = ""
    main_department: int = 0
    direct_leader: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    alias: str = ""

    def to_json(self, *, private: bool) -> dict[str, Any]:
        """The user/get shape; mobile and email only when the app may see them."""
        data: dict[str, Any] = {
            "userid": self.userid, "name": self.name, "department": list(self.department),
            "order": list(self.order) or [0] * len(self.department), "position": self.position,
            "gender": self.gender, "is_leader_in_dept": list(self.is_leader_in_dept),
            "direct_leader": list(self.direct_leader), "avatar": self.avatar, "thumb_avatar": self.avatar,
            "status": self.status, "main_department": self.main_department or (self.department or [1])[0],
            "alias": self.alias, "open_userid": "wo" + hashlib.sha1(self.userid.encode()).hexdigest()[:28],
        }
        if private:
            data["mobile"] = self.mobile
            data["email"] = self.email
        return data


@dataclass(slots=True)
class SimTag:
    tagid: int
    tagname: str
    userids: list[str] = field(default_factory=list)
    partylist: list[int] = field(default_factory=list)


@dataclass(slots=True)
class SimCorpTag:
    id: str
    name: str
    group_id: str
    group_name: str
    order: int = 0


@dataclass(slots=True)
class SimFollow:
    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tag_ids: list[str] = field(default_factory=list)
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    oper_userid: str = ""
    add_way: int = 1
    state: str = ""

    def to_json(self) -> dict[str, Any]:
        """The batch/get_by_user ``follow_info`` shape (tag ids only)."""
        return {"userid": self.userid, "remark": self.remark, "description": self.description,
                "createtime": self.createtime, "tag_id": list(self.tag_ids), "remark_corp_name": self.remark_corp_name,
                "remark_mobiles": list(self.remark_mobiles), "oper_userid": self.oper_userid or self.userid,
                "add_way": self.add_way, "state": self.state}


@dataclass(slots=True)
class SimExternalContact:
    external_userid: str
    name: str
    #: 1 WeChat user, 2 WeCom user
    type: int = 1
    gender: int = 0
    unionid: str = ""
    avatar: str = ""
    corp_name: str = ""
    position: str = ""
    follows: dict[str, SimFollow] = field(default_factory=dict)

    def to_json(self, *, unionid: bool) -> dict[str, Any]:
        """The ``external_contact`` object."""
        data: dict[str, Any] = {"external_userid": self.external_userid, "name": self.name, "type": self.type,
                                "avatar": self.avatar, "gender": self.gender}
        if self.type == 2:
            data.update(corp_name=self.corp_name, corp_full_name=self.corp_name, position=self.position)
        if unionid and self.unionid and self.type == 1:
            data["unionid"] = self.unionid
        return data


@dataclass
class SentAppMessage:
    """One message/send request as WeCom accepted it."""

    id: int
    agentid: int
    touser: list[str]
    msgtype: str
    body: dict[str, Any]
    msgid: str
    time: float
    #: recipients the message actually reached (not invalid, not throttled, not a duplicate)
    delivered_to: list[str] = field(default_factory=list)
    duplicate: bool = False
    throttled: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON for the admin API."""
        return {"id": self.id, "agentid": self.agentid, "touser": self.touser, "msgtype": self.msgtype,
                "body": self.body, "msgid": self.msgid, "time": self.time, "delivered_to": self.delivered_to,
                "duplicate": self.duplicate, "throttled": self.throttled}


@dataclass
class RateLimits:
    """Per corp and API path; ``None`` disables a window."""

    per_minute: int | None = 10_000
    per_hour: int | None = 150_000


class _Window:
    """Calls in a sliding window, counted in one-second buckets (cheap at 150,000 calls an hour)."""

    __slots__ = ("blocked_until", "buckets", "length", "total")

    def __init__(self, length: float) -> None:
        self.length = length
        self.buckets: deque[list[float]] = deque()
        self.total = 0
        self.blocked_until = 0.0

    def count(self, now: float) -> int:
        while self.buckets and self.buckets[0][0] <= now - self.length:
            self.total -= int(self.buckets.popleft()[1])
        return self.total

    def add(self, now: float) -> None:
        second = float(int(now))
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([second, 1.0])
        self.total += 1


class WeComStore:
    """State of the WeCom platform; the HTTP routes, the driver and the organisation generator go through here."""

    def __init__(self, *, lock: threading.RLock, clock: Clock, next_id: Callable[[], int],
                 corp_id: str = DEFAULT_CORP_ID) -> None:
        self._lock = lock
        self._clock = clock
        self._next_id = next_id
        self.corp_id = corp_id
        self.apps: dict[str, WeComApp] = {}
        self.rate_limits = RateLimits()
        self._init_dynamic()
        self._init_directory()

    def _init_dynamic(self) -> None:
        self.tokens: dict[str, IssuedWeComToken] = {}
        self.current_token: dict[str, str] = {}
        self.token_fetches: dict[str, int] = {}
        self.tickets: dict[str, tuple[str, float]] = {}
        self.sent: list[SentAppMessage] = []
        self._windows: dict[tuple[str, str], tuple[_Window, _Window]] = {}
        self._member_sends: dict[str, deque[float]] = {}
        self._recent_content: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.rejected_45009 = 0
        self.extensions: dict[str, Any] = {}

    def _init_directory(self) -> None:
        self.departments: dict[int, SimDepartment] = {1: SimDepartment(id=1, name="企业", parentid=0)}
        self.users: dict[str, SimUser] = {}
        self.tags: dict[int, SimTag] = {}
        self.corp_tags: dict[str, SimCorpTag] = {}
        self.contacts: dict[str, SimExternalContact] = {}
        #: follow userid -> external_userids in the order they were added (batch/get_by_user pages over it)
        self.contacts_by_user: dict[str, list[str]] = {}

    def reset(self, *, keep_directory: bool = True) -> None:
        """Forget tokens, messages, limits and extensions; keep apps and (unless asked) the organisation."""
        with self._lock:
            self._init_dynamic()
            if not keep_directory:
                self._init_directory()

    def extension(self, name: str, factory: Callable[[], T]) -> T:
        """Per-feature state owned by another simulator module (kf, approvals); created on first use."""
        with self._lock:
            if name not in self.extensions:
                self.extensions[name] = factory()
            value: T = self.extensions[name]
            return value

    # -- apps and tokens ----------------------------------------------------------------------------------------

    def add_app(self, app: WeComApp) -> WeComApp:
        """Register a secret (self-built app, 通讯录同步, 客户联系)."""
        with self._lock:
            self.apps[app.secret] = app
        return app

    def app(self, name: str) -> WeComApp:
        """The app with this name; KeyError if unknown."""
        with self._lock:
            for app in self.apps.values():
                if app.name == name:
                    return app
        raise KeyError(name)

    def app_by_agent(self, agent_id: int) -> WeComApp | None:
        """The self-built app with this AgentId."""
        with self._lock:
            return next((a for a in self.apps.values() if a.agent_id == agent_id), None)

    def issue_token(self, corpid: str, secret: str) -> IssuedWeComToken:
        """``gettoken``: the same token until it expires (one token per secret)."""
        with self._lock:
            if corpid != self.corp_id:
                raise WeComError(40013)
            app = self.apps.get(secret)
            if app is None:
                raise WeComError(40001)
            now = self._clock.now()
            self.token_fetches[secret] = self.token_fetches.get(secret, 0) + 1
            current = self.current_token.get(secret)
            if current is not None and self.tokens[current].expires_at > now:
                return self.tokens[current]
            token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(64))
            issued = IssuedWeComToken(token=token, secret=secret, issued_at=now, expires_at=now + TOKEN_TTL_SECONDS)
            self.tokens[token] = issued
            self.current_token[secret] = token
            return issued

    def check_token(self, token: str | None) -> WeComApp:
        """Validate an access_token and return its app, or raise what WeCom would."""
        if not token:
            raise WeComError(41001)
        with self._lock:
            issued = self.tokens.get(token)
            if issued is None:
                raise WeComError(40014)
            if self._clock.now() >= issued.expires_at:
                raise WeComError(42001)
            return self.apps[issued.secret]

    def expire_tokens(self) -> None:
        """Make every issued token expired (the next call answers 42001)."""
        with self._lock:
            now = self._clock.now()
            for issued in self.tokens.values():
                issued.expires_at = min(issued.expires_at, now)

    def token_fetch_count(self, name: str | None = None) -> int:
        """gettoken calls, for one app name or all."""
        with self._lock:
            return sum(n for secret, n in self.token_fetches.items()
                       if name is None or self.apps[secret].name == name)

    def ticket(self, key: str) -> tuple[str, int]:
        """A JS-SDK ticket (``corp`` or ``agent:<id>``): the same until it expires."""
        with self._lock:
            now = self._clock.now()
            current = self.tickets.get(key)
            if current is None or current[1] <= now:
                current = (secrets.token_urlsafe(60), now + 7200)
                self.tickets[key] = current
            return current[0], int(current[1] - now)

    # -- rate limits ------------------------------------------------------------------------------------------

    def check_rate(self, path: str) -> None:
        """Count one call of ``path`` for the corp; 45009 past a window's limit (blocked until the window ends)."""
        limits = self.rate_limits
        with self._lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            now = self._clock.now()
            windows = self._windows.get((self.corp_id, path))
            if windows is None:
                windows = (_Window(60.0), _Window(3600.0))
                self._windows[(self.corp_id, path)] = windows
            for window, limit in zip(windows, (limits.per_minute, limits.per_hour), strict=True):
                if limit is None:
                    continue
                if now < window.blocked_until or window.count(now) >= limit:
                    if now >= window.blocked_until:
                        window.blocked_until = now + (window.length - now % window.length)
                    self.rejected_45009 += 1
                    raise WeComError(45009)
            for window in windows:
                window.add(now)

    # -- directory --------------------------------------------------------------------------------------------

    def set_department(self, dept_id: int, name: str, parentid: int, order: int = 0) -> SimDepartment:
        """Create or change a department."""
        with self._lock:
            dept = self.departments.get(dept_id)
            if dept is None:
                dept = SimDepartment(id=dept_id, name=name, parentid=parentid, order=order)
                self.departments[dept_id] = dept
            else:
                dept.name, dept.parentid, dept.order = name, parentid, order
            return dept

    def delete_department(self, dept_id: int) -> None:
        """Remove an (empty) department."""
        with self._lock:
            self.departments.pop(dept_id, None)

    def set_user(self, userid: str, **fields: Any) -> SimUser:
        """Create or change a member, e.g. ``set_user("zhangsan", name="张三", department=[2])``."""
        with self._lock:
            user = self.users.get(userid)
            if user is None:
                user = SimUser(userid=userid, name=fields.pop("name", userid), department=[1], is_leader_in_dept=[0])
                self.users[userid] = user
            for key, value in fields.items():
                setattr(user, key, value)
            if len(user.is_leader_in_dept) != len(user.department):
                user.is_leader_in_dept = (list(user.is_leader_in_dept) + [0] * len(user.department))[
                    : len(user.department)]
            if user.main_department not in user.department:
                user.main_department = user.department[0] if user.department else 0
            return user

    def delete_user(self, userid: str) -> None:
        """Remove a member (people who leave are deleted from WeCom's directory)."""
        with self._lock:
            self.users.pop(userid, None)
            for tag in self.tags.values():
                if userid in tag.userids:
                    tag.userids.remove(userid)

    def set_tag(self, tagid: int, tagname: str, userids: Iterable[str] = (), partylist: Iterable[int] = ()) -> SimTag:
        """Create or replace a directory tag."""
        with self._lock:
            tag = SimTag(tagid=tagid, tagname=tagname, userids=list(userids), partylist=list(partylist))
            self.tags[tagid] = tag
            return tag

    def department_subtree(self, dept_id: int) -> list[SimDepartment]:
        """``dept_id`` and every department below it, parents before children."""
        with self._lock:
            children: dict[int, list[int]] = {}
            for d in self.departments.values():
                children.setdefault(d.parentid, []).append(d.id)
            out: list[SimDepartment] = []
            todo = [dept_id]
            while todo:
                current = todo.pop(0)
                dept = self.departments.get(current)
                if dept is None:
                    continue
                out.append(dept)
                todo.extend(sorted(children.get(current, [])))
            return out

    def users_in(self, dept_id: int) -> list[SimUser]:
        """Members directly in a department (``fetch_child`` was removed in 2022), by userid."""
        with self._lock:
            return sorted((u for u in self.users.values() if dept_id in u.department), key=lambda u: u.userid)

    # -- external contacts ------------------------------------------------------------------------------------

    def add_corp_tag(self, tag_id: str, name: str, group_id: str, group_name: str, order: int = 0) -> SimCorpTag:
        """Register an external-contact (corp) tag."""
        with self._lock:
            tag = SimCorpTag(id=tag_id, name=name, group_id=group_id, group_name=group_name, order=order)
            self.corp_tags[tag_id] = tag
            return tag

    def set_external_contact(self, external_userid: str, **fields: Any) -> SimExternalContact:
        """Create or change an external contact (not its follow users; see ``follow``)."""
        with self._lock:
            contact = self.contacts.get(external_userid)
            if contact is None:
                contact = SimExternalContact(external_userid=external_userid, name=fields.pop("name", ""))
                self.contacts[external_userid] = contact
            for key, value in fields.items():
                setattr(contact, key, value)
            return contact

    def follow(self, external_userid: str, userid: str, **fields: Any) -> SimFollow:
        """Make ``userid`` a follow user of the contact (adds or edits the relation)."""
        with self._lock:
            contact = self.contacts[external_userid]
            relation = contact.follows.get(userid)
            if relation is None:
                relation = SimFollow(userid=userid, createtime=int(self._clock.now()))
                contact.follows[userid] = relation
                self.contacts_by_user.setdefault(userid, []).append(external_userid)
            for key, value in fields.items():
                setattr(relation, key, value)
            return relation

    def unfollow(self, external_userid: str, userid: str) -> None:
        """End the relation (del_external_contact / del_follow_user); the contact goes when nobody follows it."""
        with self._lock:
            contact = self.contacts.get(external_userid)
            if contact is None or userid not in contact.follows:
                return
            del contact.follows[userid]
            listing = self.contacts_by_user.get(userid, [])
            if external_userid in listing:
                listing.remove(external_userid)
            if not contact.follows:
                del self.contacts[external_userid]

    def follow_users(self) -> list[str]:
        """get_follow_user_list: members with at least one external contact, sorted."""
        with self._lock:
            return sorted(u for u, items in self.contacts_by_user.items() if items)

    def contact_page(self, userids: list[str], cursor: str, limit: int) -> tuple[list[tuple[str, str]], str]:
        """One batch/get_by_user page: (external_userid, follow userid) pairs and the next cursor ("" at the end)."""
        with self._lock:
            user_index, offset = _decode_cursor(cursor) if cursor else (0, 0)
            out: list[tuple[str, str]] = []
            while user_index < len(userids) and len(out) < limit:
                listing = self.contacts_by_user.get(userids[user_index], [])
                take = listing[offset: offset + limit - len(out)]
                out.extend((ext, userids[user_index]) for ext in take)
                offset += len(take)
                if offset >= len(listing):
                    user_index, offset = user_index + 1, 0
            more = user_index < len(userids) and (
                len(self.contacts_by_user.get(userids[user_index], [])) > offset
                or any(self.contacts_by_user.get(u) for u in userids[user_index + 1:])
            )
            return out, (_encode_cursor(user_index, offset) if more else "")

    # -- app messages -----------------------------------------------------------------------------------------

    def record_message(self, app: WeComApp, body: dict[str, Any]) -> dict[str, Any]:
        """Apply message/send's rules and log it; returns the API answer."""
        with self._lock:
            now = self._clock.now()
            touser_raw = str(body.get("touser") or "")
            wanted = [u for u in touser_raw.split("|") if u]
            everyone = touser_raw == "@all"
            valid = sorted(self.users) if everyone else [u for u in wanted if u in self.users]
            invalid = [] if everyone else [u for u in wanted if u not in self.users]
            if not valid and not body.get("toparty") and not body.get("totag"):
                raise WeComError(81013, invaliduser="|".join(u.lower() for u in invalid))
            msgtype = str(body.get("msgtype") or "")
            msgid = secrets.token_urlsafe(24)
            sent = SentAppMessage(id=self._next_id(), agentid=int(body.get("agentid") or 0), touser=wanted,
                                  msgtype=msgtype, body=body, msgid=msgid, time=now)
            if int(body.get("enable_duplicate_check") or 0):
                interval = int(body.get("duplicate_check_interval") or 1800)
                content = {k: v for k, v in body.items() if k not in ("enable_duplicate_check",
                                                                     "duplicate_check_interval")}
                digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
                last = self._recent_content.get(digest)
                if last is not None and now - last < interval:
                    sent.duplicate = True
                else:
                    self._recent_content[digest] = now
            if not sent.duplicate:
                for userid in valid:
                    times = self._member_sends.setdefault(userid, deque())
                    while times and times[0] <= now - 60:
                        times.popleft()
                    if len(times) >= MEMBER_MESSAGES_PER_MINUTE:
                        sent.throttled.append(userid)  # WeCom drops these silently
                        continue
                    times.append(now)
                    sent.delivered_to.append(userid)
            self.sent.append(sent)
            answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(u.lower() for u in invalid),
                                      "msgid": msgid}
            if msgtype == "template_card":
                answer["response_code"] = secrets.token_urlsafe(32)
            return answer

    def messages_to(self, userid: str, *, include_duplicates: bool = False) -> list[SentAppMessage]:
        """Messages that reached a member (what their WeCom client shows)."""
        with self._lock:
            return [m for m in self.sent if userid in m.delivered_to or (include_duplicates and userid in m.touser)]


def _encode_cursor(user_index: int, offset: int) -> str:
    raw = json.dumps([user_index, offset, secrets.randbelow(1 << 16)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        user_index, offset, _ = json.loads(raw)
        return int(user_index), int(offset)
    except (ValueError, TypeError) as exc:
        raise WeComError(40058, "invalid cursor") from exc
