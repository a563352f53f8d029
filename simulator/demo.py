"""A ready-made simulator state with one demo Official Account, for ``python -m simulator`` and ``gongdan run``."""

from __future__ import annotations

import os

from simulator.mp.store import Mode
from simulator.state import SimulatorState

__all__ = [
    "DEMO_AES_KEY",
    "DEMO_APPID",
    "DEMO_KF_CUSTOMER",
    "DEMO_KF_NAME",
    "DEMO_OPEN_KFID",
    "DEMO_SECRET",
    "DEMO_TOKEN",
    "add_demo_kf",
    "build_demo_state",
]

DEMO_APPID = "wx5ee1d0b5a1d2c3f4"
DEMO_SECRET = "demo-secret-0123456789abcdef"
DEMO_TOKEN = "gongdandemo"
DEMO_AES_KEY = "GongdanDemoAesKey0123456789abcdefghijklmnop"  # 43 characters, fixed so restarts keep working

DEMO_TEMPLATE_ID = "TPL_ticket_update_0000000000000000000000000"

#: the demo 微信客服 account of the simulator's WeCom corp (open_kfid in WeCom's shape), and a customer to chat as
DEMO_OPEN_KFID = "wkGongdanDemoKf000000000000001"
DEMO_KF_NAME = "工单演示客服"
DEMO_KF_CUSTOMER = "wmGongdanDemoKfCustomer0000001"


def build_demo_state(
    callback_url: str | None,
    *,
    appid: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    aes_key: str | None = None,
    mode: Mode = "safe",
    name: str = "工单演示服务号",
) -> SimulatorState:
    """A state with one MP account; unset credentials come from WECHAT_APP_ID / WECHAT_APP_SECRET / WECHAT_TOKEN /
    WECHAT_AES_KEY, then from the fixed demo values."""
    state = SimulatorState()
    appid = appid or os.environ.get("WECHAT_APP_ID") or DEMO_APPID
    state.add_mp_account(
        appid,
        secret or os.environ.get("WECHAT_APP_SECRET") or DEMO_SECRET,
        token or os.environ.get("WECHAT_TOKEN") or DEMO_TOKEN,
        aes_key or os.environ.get("WECHAT_AES_KEY") or DEMO_AES_KEY,
        callback_url=callback_url,
        mode=mode,
        name=name,
    )
    # Templates are left unregistered on purpose: template/send then accepts any template_id, which is what a
    # desk configured with its production template ids needs in development. Register them for stricter tests.
    return state


def add_demo_kf(state: SimulatorState, *, open_kfid: str = DEMO_OPEN_KFID, name: str = DEMO_KF_NAME) -> str:
    """Give the simulator's WeCom corp the demo kf account (customers chat with it on ``/_sim/kf/chat``)."""
    from simulator.wecom.kf import kf_state

    kf_state(state).add_account(open_kfid, name)
    return open_kfid
