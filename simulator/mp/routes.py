"""All MP API routes, mounted at ``/cgi-bin/...`` (API index:
https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Overview.html)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from simulator.mp import media, menu, message, token, user

__all__ = ["mp_routes"]


def mp_routes() -> list[BaseRoute]:
    """Every MP API route."""
    return [*token.routes, *user.routes, *message.routes, *media.routes, *menu.routes]
