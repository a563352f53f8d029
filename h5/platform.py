"""The platform calls the H5 login needs: OAuth2 code exchanges and the JS-SDK tickets.

Follows 网页授权 (MP) https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
(``snsapi_base``: the authorize page, then ``sns/oauth2/access_token`` returns the openid), 构造网页授权链接 and
获取访问用户身份 (WeCom) https://developer.work.weixin.qq.com/document/path/91022 and
https://developer.work.weixin.qq.com/document/path/91023 (``auth/getuserinfo`` returns ``userid`` for a member and
``openid``/``external_userid`` for anyone else), and JS-SDK tickets https://developer.work.weixin.qq.com/document/path/96909.

Why these calls run on a request path (the rule elsewhere is "platform calls only from jobs"): a login code is
single-use, lives five minutes, and the person is waiting on the redirect, so the exchange cannot be queued. Each
call has a short timeout, and the code exchange is exempt from WeCom's rate limits (path/90454). The WeCom
access_token and both tickets live in the shared token store (``app.wecom.tokens``: Redis in production), under the
same key as the WeCom client's token, fetched once across processes under its lock; the corp ticket and the app
ticket have separate keys (two apps, or one app's two tickets, must never overwrite each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
import httpx

from app.errors import DomainError
from app.logs import get_logger
from app.settings import Settings
from app.wecom.tokens import CachedToken, make_token_store, wecom_token_key

__all__ = [
    "OAuthFailed",
    "WeComIdentity",
    "exchange_mp_code",
    "exchange_wecom_code",
    "jsapi_tickets",
    "mp_authorize_url",
    "sns_base",
    "wecom_authorize_url",
]

log = get_logger(__name__)
TIMEOUT = 5.0


class OAuthFailed(DomainError):
    """The platform refused the login code (used, expired) or could not be reached."""

    status_code = 502
    code = "oauth_failed"


@dataclass(frozen=True)
class WeComIdentity:
    """Who ``auth/getuserinfo`` says is in the browser: a corp member (userid) or an outsider (openid)."""

    userid: str | None
    openid: str | None = None
    external_userid: str | None = None


def _authorize(settings: Settings, params: dict[str, str]) -> str:
    # The fragment is part of the documented URL: WeChat's WebView needs it, other browsers ignore it.
    return f"{settings.wechat_oauth_base}/connect/oauth2/authorize?{urlencode(params, quote_via=quote)}#wechat_redirect"


def mp_authorize_url(settings: Settings, *, appid: str, redirect_uri: str, state: str) -> str:
    """The Official Account's silent (``snsapi_base``) authorize URL."""
    return _authorize(settings, {"appid": appid, "redirect_uri": redirect_uri, "response_type": "code",
                                 "scope": "snsapi_base", "state": state})


def wecom_authorize_url(settings: Settings, *, redirect_uri: str, state: str) -> str:
    """WeCom's silent member login URL for our self-built app."""
    return _authorize(settings, {"appid": settings.wecom.corp_id, "redirect_uri": redirect_uri,
                                 "response_type": "code", "scope": "snsapi_base", "state": state,
                                 "agentid": settings.wecom.agent_id})


def sns_base(settings: Settings) -> str:
    """``https://api.weixin.qq.com/sns/``: the MP API host's OAuth endpoints sit beside ``cgi-bin/``."""
    base = settings.wechat_api_base.rstrip("/")
    if base.endswith("/cgi-bin"):
        base = base[: -len("/cgi-bin")]
    return base + "/sns/"


async def _get_json(url: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(url, params=params)
            response.raise_for_status()
            data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # the URL carries the secret or the access_token: log the exception type only
        log.warning("h5.oauth_unreachable", error=type(exc).__name__)
        raise OAuthFailed("微信服务暂时无法访问，请稍后重试") from None
    if not isinstance(data, dict):
        raise OAuthFailed("微信服务返回了无法识别的内容")
    return data


async def exchange_mp_code(settings: Settings, *, appid: str, secret: str, code: str) -> str:
    """``GET sns/oauth2/access_token``: the openid of the WeChat user who came back with ``code``."""
    data = await _get_json(sns_base(settings) + "oauth2/access_token",
                           {"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"})
    errcode = int(data.get("errcode") or 0)
    if errcode or not data.get("openid"):
        log.info("h5.mp_code_refused", errcode=errcode)
        raise OAuthFailed("微信授权已失效，请重新打开页面", code=f"oauth_{errcode or 'no_openid'}")
    return str(data["openid"])


def _wecom_token(settings: Settings) -> CachedToken:
    corp_id, secret = settings.wecom.corp_id, str(settings.wecom.agent_secret)

    def fetch() -> tuple[str, int]:
        try:
            response = httpx.get(settings.wecom_api_base + "gettoken",
                                 params={"corpid": corp_id, "corpsecret": secret}, timeout=TIMEOUT)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("h5.wecom_token_unreachable", error=type(exc).__name__)
            raise OAuthFailed("企业微信服务暂时无法访问，请稍后重试") from None
        if int(data.get("errcode") or 0) or not data.get("access_token"):
            log.warning("h5.wecom_token_refused", errcode=data.get("errcode"))
            raise OAuthFailed("企业微信应用配置有误，请联系管理员", code="wecom_token_refused")
        return str(data["access_token"]), int(data.get("expires_in") or 7200)

    return CachedToken(make_token_store(settings), wecom_token_key(corp_id, secret), fetch)


def _wecom_get_sync(settings: Settings, path: str, params: dict[str, str]) -> dict[str, Any]:
    """A WeCom GET with the app's access_token (in a worker thread); a rejected token is dropped, tried once more."""
    token = _wecom_token(settings)
    for attempt in (1, 2):
        access_token = token.get()
        try:
            data = httpx.get(settings.wecom_api_base + path, params={"access_token": access_token, **params},
                             timeout=TIMEOUT).json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("h5.wecom_unreachable", path=path, error=type(exc).__name__)
            raise OAuthFailed("企业微信服务暂时无法访问，请稍后重试") from None
        if not isinstance(data, dict):
            raise OAuthFailed("企业微信服务返回了无法识别的内容")
        errcode = int(data.get("errcode") or 0)
        if errcode in (40014, 42001) and attempt == 1:
            token.invalidate(access_token)
            continue
        return data
    raise AssertionError("unreachable")  # pragma: no cover


async def _wecom_get(settings: Settings, path: str, params: dict[str, str]) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_wecom_get_sync, settings, path, params)


async def exchange_wecom_code(settings: Settings, *, code: str) -> WeComIdentity:
    """``GET auth/getuserinfo``: who the WeCom user coming back with ``code`` is."""
    data = await _wecom_get(settings, "auth/getuserinfo", {"code": code})
    errcode = int(data.get("errcode") or 0)
    if errcode:
        log.info("h5.wecom_code_refused", errcode=errcode)
        raise OAuthFailed("企业微信授权已失效，请重新打开页面", code=f"oauth_{errcode}")
    userid = data.get("userid") or data.get("UserId")  # legacy user/getuserinfo spelled it UserId
    return WeComIdentity(userid=str(userid) if userid else None, openid=data.get("openid") or None,
                         external_userid=data.get("external_userid") or None)


def _ticket_key(settings: Settings, kind: str) -> str:
    if kind == "corp":
        return f"wecom:{settings.wecom.corp_id}:jsapi_ticket"
    return f"wecom:{settings.wecom.corp_id}:agent:{settings.wecom.agent_id}:agent_config_ticket"


def _ticket_cache(settings: Settings, kind: str) -> CachedToken:
    path, params = ("get_jsapi_ticket", {}) if kind == "corp" else ("ticket/get", {"type": "agent_config"})

    def fetch() -> tuple[str, int]:
        data = _wecom_get_sync(settings, path, params)
        if int(data.get("errcode") or 0) or not data.get("ticket"):
            log.warning("h5.jsapi_ticket_refused", kind=kind, errcode=data.get("errcode"))
            raise OAuthFailed("暂时无法使用企业微信接口，请稍后重试", code="jsapi_ticket_refused")
        return str(data["ticket"]), int(data.get("expires_in") or 7200)

    # the lock makes N processes fetch once: WeCom allows 100 ticket fetches an hour per app
    return CachedToken(make_token_store(settings), _ticket_key(settings, kind), fetch)


async def jsapi_tickets(settings: Settings) -> tuple[str, str]:
    """(corp jsapi_ticket for wx.config, app agent_config ticket for wx.agentConfig), cached ~2 h."""
    corp = await anyio.to_thread.run_sync(_ticket_cache(settings, "corp").get)
    agent = await anyio.to_thread.run_sync(_ticket_cache(settings, "agent").get)
    return corp, agent
