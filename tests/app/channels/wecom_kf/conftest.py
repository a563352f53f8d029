from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.channels.models import ChannelAccount
from app.kb.config import load_bot_config
from simulator.wecom.kf import KfState, kf_state
from tests.wecomenv import WeComEnv, wecom, wecom_server  # noqa: F401

OPEN_KFID = "wkSimKf0001"


@dataclass
class KfEnv:
    env: WeComEnv
    kf: KfState
    account: ChannelAccount

    def customer_says(self, text: str, user: str = "wmCustomer01", **extra: Any) -> dict[str, Any]:
        return self.kf.customer_message(self.env.sim.clock.now(), OPEN_KFID, user, "text",
                                        {"content": text, **extra})

    async def callback(self) -> None:
        token = self.kf.issue_token(self.env.sim.clock.now(), OPEN_KFID)
        delivery = await self.env.app_driver.send_event("kf_msg_or_event", [("Token", token), ("OpenKfId", OPEN_KFID)],
                                                        from_user=None)
        assert delivery.delivered

    async def settle(self) -> None:
        await self.env.settle()


@pytest.fixture
async def kfenv(wecom: WeComEnv) -> AsyncIterator[KfEnv]:  # noqa: F811
    load_bot_config.cache_clear()
    kf = kf_state(wecom.sim)
    kf.add_account(OPEN_KFID, "售后客服")
    account = await ChannelAccount.create(kind="wecom_kf", key=OPEN_KFID, name="售后客服",
                                          config={"open_kfid": OPEN_KFID, "sync_limit": 20, "bot": False})
    yield KfEnv(env=wecom, kf=kf, account=account)
    load_bot_config.cache_clear()
