"""Async façade over the Official Account (公众号/MP) API: what the channel code calls.

Follows 客服消息 https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage,
模板消息 https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage.md,
获取用户基本信息 https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html,
获取临时素材 https://developers.weixin.qq.com/doc/service/api/material/temporary/api_getmedia and
新增临时素材 https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/New_temporary_materials.html.

Each method runs the synchronous wechatpy call in a worker thread (``anyio.to_thread``), so the event loop never
blocks on HTTP. Errors are those of ``app.wecom.errors``: ``TemporaryChannelError`` subclasses (retry later) and
``PermanentChannelError`` subclasses with a stable ``code`` (for example ``mp_window_closed`` when the 48-hour
customer-service window is closed: fall back to a template message).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import requests

from app.settings import Settings
from app.wecom.clients import MPClient
from app.wecom.errors import PlatformUnavailable
from app.wecom.tokens import TokenStore, make_token_store

__all__ = ["MPApi", "TokenBucket", "mp_api_for", "reset_mp_apis"]

T = TypeVar("T")

_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?["']?([^"';]+)""", re.IGNORECASE)


class TokenBucket:
    """A per-process token bucket: ``rate`` calls per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _take(self) -> float:
        """Take a token if one is there (0.0), else say how long to wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a call is allowed."""
        # Waiting on time passing, not on an event another task would set.
        while (wait := self._take()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)


class MPApi:
    """The MP calls Gongdan makes, as coroutines; one instance per Official Account (see ``mp_api_for``)."""

    def __init__(self, client: MPClient, *, limiter: TokenBucket | None = None) -> None:
        self.client = client
        self.limiter = limiter

    @property
    def appid(self) -> str:
        """The Official Account's AppID."""
        appid: str = self.client.appid
        return appid

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        if self.limiter is not None:
            await self.limiter.acquire()
        return await anyio.to_thread.run_sync(func, *args)

    async def send_text(self, openid: str, content: str) -> dict[str, Any]:
        """Send a customer-service text message (only inside the customer-service window)."""
        result: dict[str, Any] = await self._call(self.client.message.send_text, openid, content)
        return result

    async def send_image(self, openid: str, media_id: str) -> dict[str, Any]:
        """Send a customer-service image message (``media_id`` from ``upload_image``)."""
        result: dict[str, Any] = await self._call(self.client.message.send_image, openid, media_id)
        return result

    async def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None) -> str:
        """Send a template message (allowed outside the window); return its msgid as a string (it is 64-bit)."""
        result: dict[str, Any] = await self._call(self.client.message.send_template, openid, template_id, data, url)
        return str(result.get("msgid", ""))

    async def get_user(self, openid: str) -> dict[str, Any]:
        """``user/info`` for a follower (no nickname or avatar since 2021; ``unionid`` only if bound)."""
        result: dict[str, Any] = await self._call(self.client.user.get, openid)
        return result

    async def download_media(self, media_id: str) -> tuple[bytes, str, str]:
        """Fetch temporary media; return ``(content, content_type, filename)``."""
        return await self._call(self._download_media, media_id)

    async def upload_image(self, content: bytes, filename: str) -> str:
        """Upload an image as temporary media (kept 3 days) and return its media_id."""
        return await self._call(self._upload_image, content, filename)

    def _download_media(self, media_id: str) -> tuple[bytes, str, str]:
        result = self.client.media.download(media_id)
        if isinstance(result, dict):
            # Videos come back as JSON with a download link instead of the bytes.
            video_url = result.get("video_url")
            if not video_url:
                raise PlatformUnavailable("media/get answered JSON without the media")
            try:
                result = self.client._http.get(video_url, timeout=self.client.timeout)
                result.raise_for_status()
            except requests.RequestException:
                raise PlatformUnavailable("the video download failed") from None
        response: requests.Response = result
        content_type = response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        match = _FILENAME.search(response.headers.get("Content-disposition", ""))
        filename = match.group(1) if match else media_id + (mimetypes.guess_extension(content_type) or "")
        return response.content, content_type, filename

    def _upload_image(self, content: bytes, filename: str) -> str:
        content_type = mimetypes.guess_type(filename)[0] or "image/jpeg"
        # A (name, bytes, type) tuple rather than a file object, so a token retry can send it again.
        result: dict[str, Any] = self.client.media.upload("image", (filename, content, content_type))
        return str(result["media_id"])


_apis: dict[tuple[str, str, str, int], MPApi] = {}
_apis_guard = threading.Lock()


def mp_api_for(
    appid: str,
    secret: str,
    settings: Settings,
    *,
    store: TokenStore | None = None,
    limiter: TokenBucket | None = None,
) -> MPApi:
    """The process-wide ``MPApi`` for an Official Account (one client per appid, API base, secret and store)."""
    token_store = store if store is not None else make_token_store(settings)
    secret_digest = hashlib.sha256(secret.encode()).hexdigest()
    key = (appid, settings.wechat_api_base, secret_digest, id(token_store))
    with _apis_guard:
        api = _apis.get(key)
        if api is None:
            client = MPClient(appid, secret, api_base=settings.wechat_api_base, store=token_store)
            api = MPApi(client, limiter=limiter)
            _apis[key] = api
        return api


def reset_mp_apis() -> None:
    """Forget cached clients (tests, settings reload)."""
    with _apis_guard:
        _apis.clear()
