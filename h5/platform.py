"""What the H5 login needs from the platforms: authorize URLs, code exchanges and JS-SDK tickets, the calls made
through ``app.wecom`` (the one place that holds WeChat/WeCom credentials).

Follows 网页授权 (MP) https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
(``snsapi_base``: the authorize page, then ``sns/oauth2/access_token`` returns the openid), 构造网页授权链接 and
获取访问用户身份 (WeCom) https://developer.work.weixin.qq.com/document/path/91022 and
https://developer.work.weixin.qq.com/document/path/91023 (``auth/getuserinfo`` returns ``userid`` for a member and
``openid``/``external_userid`` for anyone else), and JS-SDK tickets https://developer.work.weixin.qq.com/document/path/96909.

Why these calls run on a request path (the rule elsewhere is "platform calls only from jobs"): a login code is
single-use, lives five minutes, and the person is waiting on the redirect, so the exchange cannot be queued. Each
call has a short timeout, and the code exchange is exempt from WeCom's rate limits (path/90454). The WeCom client
keeps its access_token and both tickets in the shared token store (Redis in production), fetched once across
processes under its lock; the corp ticket and the app ticket have separate keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from app.errors import DomainError, PermanentChannelError, TemporaryChannelError
from app.logs import get_logger
from app.settings import Settings
from app.wecom.oauth import mp_openid_for_code
from app.wecom.work import wecom_api

__all__ = [
    "OAuthFailed",
    "WeComIdentity",
    "exchange_mp_code",
    "exchange_wecom_code",
    "jsapi_tickets",
    "mp_authorize_url",
    "wecom_authorize_url",
]

log = get_logger(__name__)


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


async def exchange_mp_code(settings: Settings, *, appid: str, secret: str, code: str) -> str:
    """The openid of the WeChat user who came back with ``code`` (``app.wecom.oauth``)."""
    try:
        return await mp_openid_for_code(settings, appid=appid, secret=secret, code=code)
    except PermanentChannelError as exc:
        raise OAuthFailed("微信授权已失效，请重新打开页面", code=exc.code) from None
    except TemporaryChannelError:
        raise OAuthFailed("微信服务暂时无法访问，请稍后重试") from None


async def exchange_wecom_code(settings: Settings, *, code: str) -> WeComIdentity:
    """``auth/getuserinfo`` through the WeCom client: who the WeCom user coming back with ``code`` is."""
    try:
        data = await wecom_api("app", settings).get_user_info_by_code(code)
    except PermanentChannelError as exc:
        log.info("h5.wecom_code_refused", code=exc.code)
        raise OAuthFailed("企业微信授权已失效，请重新打开页面", code="oauth_refused") from None
    except TemporaryChannelError:
        raise OAuthFailed("企业微信服务暂时无法访问，请稍后重试") from None
    userid = data.get("userid") or data.get("UserId")  # legacy user/getuserinfo spelled it UserId
    return WeComIdentity(userid=str(userid) if userid else None, openid=data.get("openid") or None,
                         external_userid=data.get("external_userid") or None)


async def jsapi_tickets(settings: Settings) -> tuple[str, str]:
    """(corp jsapi_ticket for wx.config, app agent_config ticket for wx.agentConfig), cached by the WeCom client."""
    api = wecom_api("app", settings)
    try:
        return await api.jsapi_ticket(), await api.agent_jsapi_ticket()
    except (PermanentChannelError, TemporaryChannelError):
        log.warning("h5.jsapi_ticket_unavailable")
        raise OAuthFailed("暂时无法使用企业微信接口，请稍后重试", code="jsapi_ticket_refused") from None
