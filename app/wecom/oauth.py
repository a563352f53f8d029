"""Official Account web authorisation (网页授权): exchanging a login code for the openid.

Follows https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
(``snsapi_base``: the authorize page, then ``GET sns/oauth2/access_token`` returns the openid). The exchange runs on
the request path of the login callback: the code is single-use, lives five minutes and the person is waiting, so it
cannot be queued. A short timeout bounds it; the URL carries the app secret, so only the error's type is logged.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.errors import PermanentChannelError, TemporaryChannelError
from app.logs import get_logger
from app.settings import Settings

__all__ = ["mp_openid_for_code", "sns_base"]

log = get_logger(__name__)
TIMEOUT = 5.0


def sns_base(settings: Settings) -> str:
    """``https://api.weixin.qq.com/sns/``: the MP host's OAuth endpoints sit beside ``cgi-bin/``."""
    base = settings.wechat_api_base.rstrip("/")
    if base.endswith("/cgi-bin"):
        base = base[: -len("/cgi-bin")]
    return base + "/sns/"


async def mp_openid_for_code(settings: Settings, *, appid: str, secret: str, code: str) -> str:
    """The openid of the WeChat user who came back from the authorize page with ``code``."""
    params = {"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(sns_base(settings) + "oauth2/access_token", params=params)
            response.raise_for_status()
            data: Any = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("wechat.oauth_unreachable", error=type(exc).__name__)
        raise TemporaryChannelError("the WeChat OAuth endpoint could not be reached") from None
    if not isinstance(data, dict):
        raise TemporaryChannelError("the WeChat OAuth endpoint answered something unreadable")
    errcode = int(data.get("errcode") or 0)
    if errcode or not data.get("openid"):
        log.info("wechat.oauth_code_refused", errcode=errcode)
        raise PermanentChannelError("the login code was refused", code=f"oauth_{errcode or 'no_openid'}")
    return str(data["openid"])
