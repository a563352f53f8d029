"""MP custom menu endpoints."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.mp.api import MPCall, mp_route
from simulator.mp.errors import MPError

__all__ = ["routes"]

# 创建接口 https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Creating_Custom-Defined_Menu.html
MENU_CREATE_PATH = "menu/create"
# 查询接口 https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Querying_Custom_Menus.html
MENU_GET_PATH = "menu/get"


async def create_menu(call: MPCall) -> dict[str, Any]:
    """Store the menu; at most 3 top-level buttons with at most 5 sub-buttons each (40016 otherwise)."""
    data = call.json()
    buttons = data.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise MPError(40016)
    for button in buttons:
        if not isinstance(button, dict) or len(button.get("sub_button") or []) > 5:
            raise MPError(40016)
    call.state.mp.set_menu(call.appid, {"button": buttons})
    return {"errcode": 0, "errmsg": "ok"}


async def get_menu(call: MPCall) -> dict[str, Any]:
    """``{"menu": {"button": [...]}}``, or 46003 before any menu exists."""
    menu = call.state.mp.menu(call.appid)
    if menu is None:
        raise MPError(46003)
    return {"menu": menu}


routes: list[Route] = [
    mp_route(MENU_CREATE_PATH, create_menu, methods=["POST"]),
    mp_route(MENU_GET_PATH, get_menu, methods=["GET"]),
]
