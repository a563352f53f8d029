"""A company's website, as the simulator plays it: ``GET /_sim/shop`` is a small shop page in Chinese that embeds the
desk's web chat widget with the snippet the desk gives out (``state.shop_snippet``, pasted verbatim, as a site owner
pastes it). The page is served from the simulator's own origin, so the widget runs cross-origin as on a real site
and the desk checks that origin against the site's allow-list.
"""

from __future__ import annotations

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.chat import _env as pages
from simulator.state import SimulatorState

__all__ = ["shop_routes"]

#: what the shop sells (name, price in yuan, one line), for a page that looks like a shop
PRODUCTS = [
    ("无线蓝牙耳机", 299, "降噪，续航 30 小时"),
    ("智能手环", 199, "心率、睡眠监测，14 天续航"),
    ("家用打印机", 899, "无线打印，支持手机直连"),
]


async def shop(request: Request) -> Response:
    """The demo shop page with the widget embedded (404 when the desk gave the simulator no snippet)."""
    state: SimulatorState = request.app.state.sim
    if not state.shop_snippet:
        return HTMLResponse("演示商城未配置网页聊天（由 gongdan run 配置）", status_code=404)
    # the snippet comes from the desk (escaped there), like the code a site owner pastes into their page
    html = pages.get_template("shop.html").render(snippet=Markup(state.shop_snippet), products=PRODUCTS)
    return HTMLResponse(html)


def shop_routes() -> list[BaseRoute]:
    return [Route("/_sim/shop", shop, methods=["GET"])]
