"""Callback routes of every installed channel."""

from __future__ import annotations

from starlette.routing import BaseRoute

from app.channels.wechat_mp import endpoints as wechat_mp

routes: list[BaseRoute] = [*wechat_mp.routes]
