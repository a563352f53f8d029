"""wechatpy clients pointed at our settings, with our token store and our retry and error rules.

Follows 获取 Access token https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
and 全局返回码说明 https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html (MP).

What the subclass changes in wechatpy (2.0.0a26):

* ``API_BASE_URL`` becomes an instance attribute from settings, and ``fetch_access_token`` calls
  ``{api_base}token``: wechatpy hard-codes the production host there, so tests and dev could not use the simulator.
* ``auto_retry=False``: wechatpy's own retry on 40001/40014/42001 recurses without bound. Instead ``_request`` retries
  once: the rejected token is compare-and-deleted from the store, a new one is fetched under the store's lock, and
  the call is repeated; a second rejection raises ``TokenRejected`` (a ``TemporaryChannelError``).
* ``access_token`` reads ``CachedToken`` over a ``TokenStore`` (Redis in production), so web and worker processes
  share one token and only one of them refreshes it. wechatpy's ``session`` is left unused.
* The HTTP session resolves proxies for ``api_base`` from the environment once (``HTTPS_PROXY``, ``NO_PROXY``) and
  then stops consulting it: requests otherwise re-reads the proxy variables and looks for ``~/.netrc`` on every
  call, about a tenth of a call's CPU (issue 15). Answers decode with orjson, falling back to wechatpy's lenient
  decoding (raw control characters, bad UTF-8, non-JSON bodies such as media); an integer beyond 64 bits, which
  neither API sends, would come back as a float.
* Every failure leaves as one of our errors (mapping table in ``app.wecom.errors``): an errcode through
  ``map_errcode``, an HTTP error status or a connection failure as ``PlatformUnavailable``, and a read timeout (the
  request went out, its answer did not come) as ``PlatformTimedOut``: the outcome is unknown.

These clients are synchronous (``requests``); call them from threads (``app.wecom.mp.MPApi`` does), or, for a JSON
answer, await ``request_async``, which exchanges on the running loop through ``app.wecom.transport`` (aiohttp) and
keeps every rule above (``app.wecom.work.WeComApi`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio.to_thread
import orjson
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from app.logs import get_logger
from app.wecom import transport
from app.wecom.errors import TOKEN_ERRCODES, PlatformTimedOut, PlatformUnavailable, TokenRejected, map_errcode
from app.wecom.tokens import CachedToken, TokenStore, mp_token_key

__all__ = ["DEFAULT_TIMEOUT", "MPClient", "SharedTokenClient"]

log = get_logger(__name__)

#: seconds for connect and read; WeChat answers in well under a second when healthy
DEFAULT_TIMEOUT = 10.0


def _http_error(exc: Exception) -> PlatformUnavailable:
    """The HTTP error status on ``exc``'s response, else ``exc``: the platform was not reached."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return _answered(int(status))
    return PlatformUnavailable(f"the platform could not be reached ({type(exc).__name__})")


def _answered(status: int) -> PlatformUnavailable:
    return PlatformUnavailable(f"the platform answered HTTP {status}", status_code=status)


def _timed_out(timeout: float) -> PlatformTimedOut:
    # connected and sent, then no answer: unlike a refused connection, the platform may have acted
    return PlatformTimedOut(f"the platform did not answer within {timeout:g} s")


class SharedTokenClient:
    """What the MP and WeCom clients share: the token in a ``CachedToken``, the token endpoint's answer checked, and
    wechatpy's request with exactly one token refresh. Subclasses say which errcodes mean "token rejected" and how
    errcodes map to our errors. Mix in before wechatpy's client class."""

    #: errcodes that mean the token was refused (refresh once, then give up)
    token_errcodes: frozenset[int] = frozenset()
    token: CachedToken
    API_BASE_URL: str
    timeout: float
    _http: requests.Session
    _proxy: str | None
    _timeouts: aiohttp.ClientTimeout

    def _map_error(self, errcode: int, errmsg: str) -> Exception:
        raise NotImplementedError

    def _settle_session(self, api_base: str) -> None:
        """Send every call to ``api_base``, through the environment's proxy for it as it stands now: the session
        stops re-reading the environment (proxy variables, ``~/.netrc``) per call, and ``request_async`` takes the
        same proxy."""
        self.API_BASE_URL = api_base if api_base.endswith("/") else api_base + "/"
        self._http.proxies = requests.utils.get_environ_proxies(self.API_BASE_URL)
        self._http.trust_env = False
        scheme = self.API_BASE_URL.split(":", 1)[0].lower()
        self._proxy = self._http.proxies.get(scheme) or self._http.proxies.get("all")
        # requests' timeout: to connect, and between bytes of the answer
        self._timeouts = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout)

    def _decode_result(self, res: requests.Response) -> Any:
        try:
            return orjson.loads(res.content)
        except orjson.JSONDecodeError:
            return super()._decode_result(res)  # type: ignore[misc]

    def _map_token_error(self, errcode: int, errmsg: str) -> Exception:
        return self._map_error(errcode, errmsg)

    def _log_label(self) -> str:
        return type(self).__name__

    @property
    def access_token(self) -> str:
        """The shared token, fetched once across processes when missing."""
        return self.token.get()

    def _get_token_json(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        """``GET {api_base}<endpoint>`` for a token, checked: an errcode or a missing token is one of our errors."""
        try:
            response = self._http.get(self.API_BASE_URL + endpoint, params=params, timeout=self.timeout)
            response.raise_for_status()
            result = response.json()
        except requests.RequestException as exc:
            raise _http_error(exc) from None
        except ValueError:
            raise PlatformUnavailable(f"{endpoint} answered something other than JSON") from None
        if not isinstance(result, dict):
            raise PlatformUnavailable(f"{endpoint} answered something other than a JSON object")
        errcode = int(result.get("errcode") or 0)
        if errcode:
            raise self._map_token_error(errcode, str(result.get("errmsg", "")))
        if not result.get("access_token"):
            raise PlatformUnavailable(f"{endpoint} answered without an access_token")
        return result

    def fetch_access_token(self) -> dict[str, Any]:
        raise NotImplementedError

    def _fetch_token(self) -> tuple[str, int]:
        result = self.fetch_access_token()
        return str(result["access_token"]), int(result.get("expires_in") or 7200)

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        """wechatpy's request with one token refresh on a rejected token and our error mapping.

        wechatpy's exceptions are not chained (``from None``): they carry the request URL, access_token included.
        """
        base_params = kwargs.pop("params", None)
        explicit_token = isinstance(base_params, dict) and "access_token" in base_params
        for attempt in (1, 2):
            params = dict(base_params) if isinstance(base_params, dict) else {}
            token = params["access_token"] if explicit_token else self.access_token
            params["access_token"] = token
            try:
                return super()._request(method, url_or_endpoint, params=params, **kwargs)  # type: ignore[misc]
            except WeChatClientException as exc:
                error = self._refused(exc, may_refresh=attempt == 1 and not explicit_token)
                if error is not None:
                    raise error from None
                self.token.invalidate(token)
            except requests.ReadTimeout:
                raise _timed_out(self.timeout) from None
            except requests.RequestException as exc:
                raise _http_error(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def request_async(self, method: str, endpoint: str, *, params: dict[str, Any] | None = None,
                            data: dict[str, Any] | None = None) -> dict[str, Any]:
        """``_request`` for a JSON answer, exchanged on the running loop (``app.wecom.transport``) instead of in a
        thread: the same token, the same single refresh, the same errors. Reading the token store or fetching a
        token (blocking I/O) still runs in a thread, as does dropping a rejected token."""
        url = self.API_BASE_URL + endpoint
        body = None if data is None else orjson.dumps(data)
        headers = None if data is None else _JSON_BODY
        query = {k: v for k, v in (params or {}).items() if v is not None}  # requests leaves None out
        for attempt in (1, 2):
            token = self.token.peek()
            if token is None:
                token = await anyio.to_thread.run_sync(self.token.get)
            try:
                async with transport.session().request(
                        method, url, params={**query, "access_token": token}, data=body, headers=headers,
                        proxy=self._proxy, timeout=self._timeouts) as response:
                    status, content = response.status, await response.read()
            except aiohttp.SocketTimeoutError:
                raise _timed_out(self.timeout) from None
            except (TimeoutError, aiohttp.ClientError) as exc:  # refused, reset, connect timeout, bad HTTP
                raise _http_error(exc) from None
            if status >= 400:
                raise _answered(status)
            try:
                result = self._handle_result(_Answer(content), method, url)  # type: ignore[attr-defined]
            except WeChatClientException as exc:
                error = self._refused(exc, may_refresh=attempt == 1)
                if error is not None:
                    raise error from None
                await anyio.to_thread.run_sync(self.token.invalidate, token)
                continue
            if not isinstance(result, dict):
                raise PlatformUnavailable(f"{endpoint} answered something other than a JSON object")
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, exc: WeChatClientException, *, may_refresh: bool) -> Exception | None:
        """The error a failed answer raises, or None for a rejected token worth the one refresh."""
        if exc.errcode is None:  # raise_for_status failed: HTTP 4xx/5xx without an errcode
            return _http_error(exc)
        errcode = int(exc.errcode)
        if errcode in self.token_errcodes:
            if may_refresh:
                log.info("access_token_rejected", client=self._log_label(), errcode=errcode)
                return None
            return TokenRejected(errcode, str(exc.errmsg or ""))
        return self._map_error(errcode, str(exc.errmsg or ""))


#: the header of a JSON body (wechatpy's requests sent none; WeCom reads the body either way)
_JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class _Answer:
    """What wechatpy's ``_handle_result`` reads of a response (``content``; ``request`` for its exceptions)."""

    content: bytes
    request: None = None


class MPClient(SharedTokenClient, WeChatClient):  # type: ignore[misc]
    """wechatpy's Official Account client against ``api_base``, with tokens in ``store``."""

    token_errcodes = frozenset(TOKEN_ERRCODES)

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        api_base: str,
        store: TokenStore,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self._settle_session(api_base)
        self.token = CachedToken(store, mp_token_key(appid), self._fetch_token)

    def __repr__(self) -> str:
        return f"MPClient(appid={self.appid!r}, api_base={self.API_BASE_URL!r})"

    def _map_error(self, errcode: int, errmsg: str) -> Exception:
        return map_errcode(errcode, errmsg)

    def _map_token_error(self, errcode: int, errmsg: str) -> Exception:
        return map_errcode(errcode, errmsg, token_fetch=True)

    def _log_label(self) -> str:
        return f"mp:{self.appid}"

    def fetch_access_token(self) -> dict[str, Any]:
        """``GET {api_base}token`` and return the JSON; called by ``CachedToken`` while it holds the lock."""
        return self._get_token_json(
            "token", {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        )
