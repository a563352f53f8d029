"""The WeCom (企业微信) client base and its async façade: one place for every call Gongdan makes to WeCom.

Follows 获取access_token https://developer.work.weixin.qq.com/document/path/91039, 全局错误码
https://developer.work.weixin.qq.com/document/path/90455 and 频率限制
https://developer.work.weixin.qq.com/document/path/90454; the API groups cite their own pages below.

* ``WeComClient`` is wechatpy 2.0.0a26's ``wechatpy.work.WeChatClient`` with the API base from ``WECOM_API_BASE``
  (also for ``gettoken``, which wechatpy hard-codes to the production host), ``auto_retry=False`` (wechatpy's
  retry recurses without bound) and our single retry: on 40014/42001 the rejected token is compare-and-deleted
  from the shared ``TokenStore``, a new one is fetched under the store's lock, the call is repeated once, and a
  second rejection raises ``TokenRejected``. A WeCom 40001 is a wrong secret and is never retried. Tokens are keyed
  per (corp, secret): the self-built app, 通讯录同步 and 客户联系 each have their own.
* The limiter (``app.wecom.ratelimit``) keeps Gongdan under WeCom's per-corp, per-API limits (10,000/min and
  150,000/h; our own ceilings ``WECOM_RATE_PER_MINUTE``/``WECOM_RATE_PER_HOUR`` default to 9,000 and 140,000) and
  the JS-SDK ticket limits (100/h per app, 400/h per corp). With REDIS_URL set its windows live in Redis
  (``RedisRateLimiter``), so every web and worker process draws on one budget per corp; without it
  (``RateLimiter``, embedded mode) they are this process's own. It waits rather than fails, and reports how long
  it waited.
* ``WeComApi`` makes its JSON calls on the event loop (``SharedTokenClient.request_async`` through
  ``app.wecom.transport``), with the token store's blocking reads in threads: directory, external contacts,
  ``message/send``, OAuth ``auth/getuserinfo`` and JS-SDK tickets (cached in the token store, the agent ticket keyed
  per agent; a ticket is fetched with the synchronous client in a worker thread, under the store's lock). Build it
  with ``wecom_api("app" | "contacts" | "customer")``.

Errors leave as ``app.wecom.errors`` exceptions (``map_wecom_errcode``): temporary ones (45009 ``RateLimited`` with
``retry_after``, -1 ``PlatformBusy``, HTTP failures ``PlatformUnavailable``) and permanent ones with a stable
``code`` (``wecom_user_not_found`` for 60111, ``wecom_no_valid_recipient`` for 81013, ...).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.to_thread
from wechatpy.work import WeChatClient

from app.logs import get_logger
from app.settings import Settings, get_settings
from app.wecom.clients import DEFAULT_TIMEOUT, SharedTokenClient
from app.wecom.errors import (
    WECOM_TOKEN_ERRCODES,
    PermanentAPIError,
    map_wecom_errcode,
)
from app.wecom.ratelimit import RateLimiter, RedisRateLimiter, SpecialLimits
from app.wecom.tokens import CachedToken, TokenStore, make_token_store, wecom_token_key

__all__ = [
    "ApiStats",
    "Purpose",
    "RateLimiter",
    "RedisRateLimiter",
    "WeComApi",
    "WeComClient",
    "reset_wecom_apis",
    "wecom_api",
    "wecom_api_for",
]

log = get_logger(__name__)
Purpose = Literal["app", "contacts", "customer"]

# -- endpoints (relative to WECOM_API_BASE) ----------------------------------------------------------------------
# 部门 https://developer.work.weixin.qq.com/document/path/90208, path/95350
DEPARTMENT_LIST = "department/list"
DEPARTMENT_GET = "department/get"
# 成员 https://developer.work.weixin.qq.com/document/path/90196 (get), path/90201 (list), path/96067 (list_id)
USER_GET = "user/get"
USER_LIST = "user/list"
USER_LIST_ID = "user/list_id"
# 标签 https://developer.work.weixin.qq.com/document/path/90216
TAG_LIST = "tag/list"
TAG_GET = "tag/get"
# 客户联系 https://developer.work.weixin.qq.com/document/path/92571, 92114, 92994, 92117
FOLLOW_USER_LIST = "externalcontact/get_follow_user_list"
EXTERNAL_CONTACT_GET = "externalcontact/get"
BATCH_GET_BY_USER = "externalcontact/batch/get_by_user"
CORP_TAG_LIST = "externalcontact/get_corp_tag_list"
# 发送应用消息 https://developer.work.weixin.qq.com/document/path/90236
MESSAGE_SEND = "message/send"
# 网页授权登录 https://developer.work.weixin.qq.com/document/path/91023 (auth/getuserinfo, auth/getuserdetail)
AUTH_GETUSERINFO = "auth/getuserinfo"
AUTH_GETUSERDETAIL = "auth/getuserdetail"
# JS-SDK https://developer.work.weixin.qq.com/document/path/96909
JSAPI_TICKET = "get_jsapi_ticket"
AGENT_TICKET = "ticket/get"


class WeComClient(SharedTokenClient, WeChatClient):  # type: ignore[misc]
    """wechatpy's WeCom client against ``api_base``, with tokens in ``store`` and our retry and error rules.

    Other packages use it for API groups Gongdan has no façade for yet (``client.kf``, ``client.oa``), always
    from a worker thread. The secret is kept out of ``repr``.
    """

    #: a WeCom 40001 is a wrong secret, not a stale token: only these are refreshed
    token_errcodes = frozenset(WECOM_TOKEN_ERRCODES)

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        api_base: str,
        store: TokenStore,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "app",
    ) -> None:
        super().__init__(corp_id, secret, timeout=timeout, auto_retry=False)
        self._settle_session(api_base)
        self.name = name
        self.store = store
        self.token = CachedToken(store, wecom_token_key(corp_id, secret), self._fetch_token)

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id!r}, name={self.name!r}, api_base={self.API_BASE_URL!r})"


    def _map_error(self, errcode: int, errmsg: str) -> Exception:
        return map_wecom_errcode(errcode, errmsg)

    def _log_label(self) -> str:
        return f"wecom:{self.name}"

    def fetch_access_token(self) -> dict[str, Any]:
        """``GET {api_base}gettoken?corpid=&corpsecret=``; called by ``CachedToken`` while it holds the lock."""
        return self._get_token_json("gettoken", {"corpid": self.corp_id, "corpsecret": self.secret})


# -- rate limiting -----------------------------------------------------------------------------------------------


#: APIs with their own, tighter limits: (per minute, per hour) per corp; the agent ticket also counts per app
_SPECIAL_LIMITS: SpecialLimits = {
    JSAPI_TICKET: (None, 400),
    AGENT_TICKET: (None, 100),
}


@dataclass
class ApiStats:
    """What one ``WeComApi`` did: calls per path and seconds spent waiting on the limiter (bench, reports)."""

    calls: dict[str, int] = field(default_factory=dict)
    limiter_wait: float = 0.0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


# -- the async façade --------------------------------------------------------------------------------------------


class WeComApi:
    """The WeCom calls Gongdan makes, as coroutines; one instance per secret (see ``wecom_api``)."""

    def __init__(self, client: WeComClient, *, limiter: RateLimiter | None = None, agent_id: int | None = None) -> None:
        self.client = client
        self.limiter = limiter
        self.agent_id = agent_id
        self.stats = ApiStats()

    @property
    def corp_id(self) -> str:
        """The CorpID."""
        corp_id: str = self.client.corp_id
        return corp_id

    async def _admit(self, path: str) -> None:
        """Wait until the limiter lets ``path`` through, and count the call."""
        if self.limiter is not None:
            self.stats.limiter_wait += await self.limiter.acquire(path)
        self.stats.calls[path] = self.stats.calls.get(path, 0) + 1

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET {api_base}<path>`` with the token added; the JSON answer (errors raised)."""
        await self._admit(path)
        return await self.client.request_async("GET", path, params=params)

    async def post(self, path: str, data: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST {api_base}<path>`` with a JSON body."""
        await self._admit(path)
        return await self.client.request_async("POST", path, params=params, data=data)

    # -- directory --------------------------------------------------------------------------------------------

    async def list_departments(self, dept_id: int | None = None) -> list[dict[str, Any]]:
        """``department/list``: the subtree of ``dept_id`` (the whole tree visible to the secret without it)."""
        result = await self.get(DEPARTMENT_LIST, {"id": dept_id} if dept_id is not None else None)
        return list(result.get("department") or [])

    async def get_department(self, dept_id: int) -> dict[str, Any]:
        """``department/get``: one department (``wecom_department_not_found`` once it is gone)."""
        result = await self.get(DEPARTMENT_GET, {"id": dept_id})
        department: dict[str, Any] = result["department"]
        return department

    async def list_users(self, dept_id: int) -> list[dict[str, Any]]:
        """``user/list``: full members directly in a department (no ``fetch_child`` since 2022)."""
        result = await self.get(USER_LIST, {"department_id": dept_id})
        return list(result.get("userlist") or [])

    async def list_user_ids(self, *, cursor: str = "", limit: int = 10000) -> tuple[list[dict[str, Any]], str]:
        """``user/list_id`` (通讯录同步 secret only): (userid, department) rows and the next cursor ("" at the end)."""
        result = await self.post(USER_LIST_ID, {"cursor": cursor, "limit": limit})
        return list(result.get("dept_user") or []), str(result.get("next_cursor") or "")

    async def get_user(self, userid: str) -> dict[str, Any]:
        """``user/get``: one member (``wecom_user_not_found`` once they left)."""
        return await self.get(USER_GET, {"userid": userid})

    async def list_tags(self) -> list[dict[str, Any]]:
        """``tag/list``."""
        return list((await self.get(TAG_LIST)).get("taglist") or [])

    async def get_tag(self, tagid: int) -> dict[str, Any]:
        """``tag/get``: members (``userlist``) and departments (``partylist``) of a tag."""
        return await self.get(TAG_GET, {"tagid": tagid})

    # -- external contacts ------------------------------------------------------------------------------------

    async def list_follow_users(self) -> list[str]:
        """``externalcontact/get_follow_user_list``: members with the customer-contact feature."""
        return [str(u) for u in (await self.get(FOLLOW_USER_LIST)).get("follow_user") or []]

    async def batch_get_by_user(self, userids: list[str], *, cursor: str = "", limit: int = 100) -> dict[str, Any]:
        """``externalcontact/batch/get_by_user``: one page for up to 100 follow users ("" next_cursor at the end)."""
        if not 1 <= len(userids) <= 100:
            raise ValueError("batch_get_by_user takes 1 to 100 userids")
        return await self.post(BATCH_GET_BY_USER, {"userid_list": userids, "cursor": cursor, "limit": limit})

    async def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """``externalcontact/get`` with every ``follow_user`` page merged."""
        cursor = ""
        follow_user: list[dict[str, Any]] = []
        while True:
            params = {"external_userid": external_userid}
            if cursor:
                params["cursor"] = cursor
            result = await self.get(EXTERNAL_CONTACT_GET, params)
            follow_user.extend(result.get("follow_user") or [])
            cursor = str(result.get("next_cursor") or "")
            if not cursor:
                return {"external_contact": result.get("external_contact") or {}, "follow_user": follow_user}

    async def list_corp_tags(self) -> list[dict[str, Any]]:
        """``externalcontact/get_corp_tag_list``: tag groups with their tags."""
        return list((await self.post(CORP_TAG_LIST, {})).get("tag_group") or [])

    # -- messages ---------------------------------------------------------------------------------------------

    async def send_message(self, *, touser: list[str], msgtype: str, content: dict[str, Any],
                           duplicate_check_interval: int | None = 1800) -> dict[str, Any]:
        """``message/send`` as this app; WeCom's duplicate check is on unless ``duplicate_check_interval`` is None.

        Partially invalid recipients still answer errcode 0 with ``invaliduser`` (lower-cased userids).
        """
        if self.agent_id is None:
            raise PermanentAPIError(0, "", code="wecom_no_agent", reason="message/send needs the self-built app")
        body: dict[str, Any] = {"touser": "|".join(touser), "msgtype": msgtype, "agentid": self.agent_id,
                                msgtype: content}
        if duplicate_check_interval is not None:
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = duplicate_check_interval
        return await self.post(MESSAGE_SEND, body)

    # -- OAuth and JS-SDK -------------------------------------------------------------------------------------

    async def get_user_info_by_code(self, code: str) -> dict[str, Any]:
        """``auth/getuserinfo``: a member gets ``userid`` (and ``user_ticket``), others ``openid``/``external_userid``.

        The code is single-use and lives 5 minutes (``wecom_invalid_code`` otherwise).
        """
        return await self.get(AUTH_GETUSERINFO, {"code": code})

    async def get_user_detail(self, user_ticket: str) -> dict[str, Any]:
        """``auth/getuserdetail``: member-authorised private fields (snsapi_privateinfo)."""
        return await self.post(AUTH_GETUSERDETAIL, {"user_ticket": user_ticket})

    async def jsapi_ticket(self) -> str:
        """The corp's JS-SDK ticket (``wx.config``), cached across processes until 5 minutes before expiry."""
        return await self._ticket(f"wecom:{self.corp_id}:jsapi_ticket", JSAPI_TICKET, {})

    async def agent_jsapi_ticket(self) -> str:
        """The app's ticket (``wx.agentConfig``), cached per agent (two apps of one corp never share it)."""
        key = f"wecom:{self.corp_id}:{self.agent_id}:agent_config_ticket"
        return await self._ticket(key, AGENT_TICKET, {"type": "agent_config"})

    async def _ticket(self, key: str, path: str, params: dict[str, Any]) -> str:
        store = self.client.store
        cached = store.get(key)
        if cached:
            return cached
        # Fetch outside the store lock's thread but under its lock, so N processes fetch once.
        def fetch() -> tuple[str, int]:
            result = self.client.get(path, params=dict(params))
            return str(result["ticket"]), int(result.get("expires_in") or 7200)

        cache = CachedToken(store, key, fetch)
        await self._admit(path)
        return await anyio.to_thread.run_sync(cache.get)


# -- factories ---------------------------------------------------------------------------------------------------

_apis: dict[tuple[str, str, str, int, str], WeComApi] = {}
_limiters: dict[tuple[str, int, int, str], RateLimiter] = {}
_guard = threading.Lock()


def _limiter(corp_id: str, settings: Settings) -> RateLimiter:
    """One limiter per corp and limits: its windows in Redis when REDIS_URL is set, so every process shares
    the corp's budget, else in this process (embedded mode)."""
    per_minute, per_hour = settings.wecom.rate_per_minute, settings.wecom.rate_per_hour
    key = (corp_id, per_minute, per_hour, settings.redis_url or "")
    limiter = _limiters.get(key)
    if limiter is None:
        if settings.redis_url:
            limiter = RedisRateLimiter(corp_id=corp_id, redis_url=settings.redis_url, per_minute=per_minute,
                                       per_hour=per_hour, special=_SPECIAL_LIMITS)
        else:
            limiter = RateLimiter(per_minute=per_minute, per_hour=per_hour, special=_SPECIAL_LIMITS)
        _limiters[key] = limiter
    return limiter


def wecom_api_for(
    corp_id: str,
    secret: str,
    settings: Settings,
    *,
    name: str = "app",
    agent_id: int | None = None,
    store: TokenStore | None = None,
) -> WeComApi:
    """The process-wide ``WeComApi`` for one secret (one client per corp, secret, API base and store)."""
    token_store = store if store is not None else make_token_store(settings)
    digest = hashlib.sha256(f"{corp_id}:{secret}".encode()).hexdigest()
    key = (digest, settings.wecom_api_base, name, id(token_store), str(agent_id))
    with _guard:
        api = _apis.get(key)
        if api is None:
            client = WeComClient(corp_id, secret, api_base=settings.wecom_api_base, store=token_store, name=name)
            api = WeComApi(client, limiter=_limiter(corp_id, settings), agent_id=agent_id)
            _apis[key] = api
        return api


def wecom_api(purpose: Purpose = "app", settings: Settings | None = None, *,
              store: TokenStore | None = None) -> WeComApi:
    """The API for a purpose: ``app`` (messages, OAuth, JS-SDK), ``contacts`` (通讯录同步; falls back to the app's
    secret, which sees less), ``customer`` (客户联系; falls back to the app's secret)."""
    s = settings or get_settings()
    w = s.wecom
    if not w.configured:
        raise PermanentAPIError(0, "", code="wecom_not_configured",
                                reason="WECOM_CORP_ID and WECOM_AGENT_SECRET are not set")
    agent_id = int(w.agent_id) if w.agent_id else None
    secret = str(w.agent_secret)
    if purpose == "contacts" and str(w.contact_secret):
        secret = str(w.contact_secret)
    elif purpose == "customer" and str(w.customer_secret):
        secret = str(w.customer_secret)
    return wecom_api_for(w.corp_id, secret, s, name=purpose, agent_id=agent_id if purpose == "app" else None,
                         store=store)


def reset_wecom_apis() -> None:
    """Forget cached clients and limiters (tests, settings reload)."""
    with _guard:
        _apis.clear()
        _limiters.clear()
