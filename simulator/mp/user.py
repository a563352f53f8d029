"""MP user information endpoint."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.mp.api import MPCall, mp_route
from simulator.mp.errors import MPError

__all__ = ["routes"]

# 获取用户基本信息 https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html
USER_INFO_PATH = "user/info"


async def user_info(call: MPCall) -> dict[str, Any]:
    """``GET cgi-bin/user/info?openid=&lang=zh_CN``; unknown openid → 40003."""
    openid = call.query("openid", missing=40003)
    user = call.state.mp.user(call.appid, openid)
    if user is None:
        raise MPError(40003)
    return user.info_json()


routes: list[Route] = [mp_route(USER_INFO_PATH, user_info, methods=["GET"])]
