"""Callback routes of every installed channel."""

from __future__ import annotations

from starlette.routing import BaseRoute

from app.channels import health
from app.channels.webchat import endpoint as webchat
from app.channels.wechat_mp import endpoints as wechat_mp
from app.channels.wecom_app import endpoints as wecom_app

# wrapped here, not edited in: the endpoints stay verify -> store -> ack; health reads what they answered
routes: list[BaseRoute] = [*health.observe_routes([*wechat_mp.routes, *wecom_app.routes]), *webchat.routes]
