"""Callback routes of every installed channel."""

from __future__ import annotations

from starlette.routing import BaseRoute

from app.channels.webchat import endpoint as webchat
from app.channels.wechat_mp import endpoints as wechat_mp
from app.channels.wecom_app import endpoints as wecom_app

routes: list[BaseRoute] = [*wechat_mp.routes, *wecom_app.routes, *webchat.routes]
