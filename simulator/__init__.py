"""A faithful local stand-in for the WeChat platforms (today: Official Accounts, 公众号/MP).

It plays WeChat in both directions: the desk calls ``/cgi-bin/...`` through wechatpy with its API base pointed here,
and ``WeChatDriver`` delivers signed (and encrypted) callbacks to the desk. Inspection, fault injection and a chat
page for people live under ``/_sim/``.

Layout: ``crypto`` (callback crypto), ``clock``, ``faults``, ``state`` (shared state) and ``mp/`` (MP store and
routes); ``driver`` (WeChat → desk), ``admin``, ``chat`` and ``kfchat`` (``/_sim/``; ``kfchat`` is the 微信客服
customer's chat page), ``app`` (ASGI app), ``server`` (uvicorn in a thread), ``demo`` (``build_demo_state``, the
demo kf account).
"""

from __future__ import annotations

from simulator.app import create_simulator_app
from simulator.clock import Clock
from simulator.demo import build_demo_state
from simulator.driver import Attempt, DeliveryResult, PassiveReply, WeChatDriver
from simulator.faults import Fault
from simulator.mp.store import MPAccount, MPUser, SentMessage
from simulator.server import SimulatorServer
from simulator.state import SimulatorState

__all__ = [
    "Attempt",
    "Clock",
    "DeliveryResult",
    "Fault",
    "MPAccount",
    "MPUser",
    "PassiveReply",
    "SentMessage",
    "SimulatorServer",
    "SimulatorState",
    "WeChatDriver",
    "build_demo_state",
    "create_simulator_app",
]
