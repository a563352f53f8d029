"""The MP channel against the simulator: its API in a real uvicorn thread, callbacks into the desk's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import queue as jobqueue
from app.channels.wechat_mp import accounts
from app.settings import Settings, set_settings
from app.wecom.mp import reset_mp_apis
from app.wecom.tokens import reset_token_stores
from simulator import SimulatorServer, SimulatorState, WeChatDriver

APPID = "wx1234567890abcdef"
SECRET = "sim-secret-abcdef0123456789"
TOKEN = "gongdantest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TEMPLATE_ID = "TPL_ticket_update"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimulatorState(template_job_finish=False))
    server.start()
    yield server
    server.stop()


@dataclass
class MPEnv:
    sim: SimulatorState
    server: SimulatorServer
    driver: WeChatDriver
    client: httpx.AsyncClient
    account: Any
    jobs: jobqueue.InProcessQueue
    transport: httpx.AsyncBaseTransport

    async def settle(self) -> None:
        await self.jobs.drain()


@pytest.fixture
async def mp(db: None, settings: Settings, sim_server: SimulatorServer,
             jobs: jobqueue.InProcessQueue) -> AsyncIterator[MPEnv]:
    from app.main import create_app
    from app.seed import ensure_org

    sim = sim_server.state
    sim.reset(keep_accounts=False)
    account = sim.add_mp_account(APPID, SECRET, TOKEN, AES_KEY, callback_url="http://desk/callbacks/wechat",
                                 mode="safe")
    s = settings.with_overrides(wechat_api_base=sim_server.api_base_url)
    set_settings(s)
    reset_mp_apis()
    reset_token_stores()
    accounts.forget_cache()
    await ensure_org()
    await accounts.upsert_account(key="default", name="测试号", appid=APPID, secret=SECRET, token=TOKEN,
                                  aes_key=AES_KEY, template_id=TEMPLATE_ID, is_default=True)
    app = create_app(s, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        driver = WeChatDriver(sim, account, "http://desk/callbacks/wechat", transport=transport)
        yield MPEnv(sim=sim, server=sim_server, driver=driver, client=client, account=account, jobs=jobs,
                    transport=transport)
    accounts.forget_cache()
    reset_mp_apis()
