"""A desk wired to the WeCom side of the simulator: the simulator's API on a real port (wechatpy talks HTTP), the
desk's ASGI app in-process, and ``WeComDriver``s posting encrypted callbacks into it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.datastructures import Secret

from app import queue as jobqueue
from app.settings import Settings, WeComSettings, set_settings
from app.wecom.tokens import reset_token_stores
from app.wecom.work import WeComApi, reset_wecom_apis, wecom_api
from simulator import SimulatorServer, SimulatorState
from simulator.wecom.driver import WeComDriver
from simulator.wecom.orggen import add_default_apps, load_demo_org

AGENT_ID = 1000002
APP_SECRET = "sim-agent-secret"
CONTACT_SECRET = "sim-contact-secret"
CUSTOMER_SECRET = "sim-customer-secret"
TOKEN = "simwecomtoken"
AES_KEY = "SimWeComAesKey0123456789abcdefghijklmnopqrs"
CONTACT_TOKEN = "simcontacttoken"
CONTACT_AES_KEY = "SimContactAesKey0123456789abcdefghijklmnopq"


def wecom_settings(settings: Settings, server: SimulatorServer, **overrides: object) -> Settings:
    """Settings pointing the desk's WeCom clients at the simulator."""
    wecom = WeComSettings(
        corp_id=server.state.wecom.corp_id, agent_id=str(AGENT_ID), agent_secret=Secret(APP_SECRET),
        token=Secret(TOKEN), aes_key=Secret(AES_KEY), contact_secret=Secret(CONTACT_SECRET),
        contact_token=Secret(CONTACT_TOKEN), contact_aes_key=Secret(CONTACT_AES_KEY),
        customer_secret=Secret(CUSTOMER_SECRET), rate_per_minute=100000, rate_per_hour=1000000,
    )
    return settings.with_overrides(wecom=wecom, wecom_api_base=server.wecom_api_base_url,
                                   public_url="http://desk", **overrides)


@pytest.fixture(scope="module")
def wecom_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorState()) as server:
        yield server


@dataclass
class WeComEnv:
    sim: SimulatorState
    server: SimulatorServer
    settings: Settings
    client: httpx.AsyncClient
    app_driver: WeComDriver
    contacts_driver: WeComDriver
    jobs: jobqueue.InProcessQueue

    def api(self, purpose: str = "contacts") -> WeComApi:
        return wecom_api(purpose, self.settings)  # type: ignore[arg-type]

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.jobs.drain(timeout)


@pytest.fixture
async def wecom(db: None, settings: Settings, wecom_server: SimulatorServer,
                jobs: jobqueue.InProcessQueue) -> AsyncIterator[WeComEnv]:
    from app.main import create_app

    sim = wecom_server.state
    sim.reset()
    sim.wecom.apps.clear()
    add_default_apps(sim.wecom, app_callback_url="http://desk/callbacks/wecom/app",
                     contacts_callback_url="http://desk/callbacks/wecom/contacts")
    load_demo_org(sim.wecom)
    s = wecom_settings(settings, wecom_server)
    set_settings(s)
    reset_wecom_apis()
    reset_token_stores()
    app = create_app(s, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield WeComEnv(
            sim=sim, server=wecom_server, settings=s, client=client,
            app_driver=WeComDriver(sim, sim.wecom.app("app"), transport=transport, retries=0),
            contacts_driver=WeComDriver(sim, sim.wecom.app("contacts"), transport=transport, retries=0),
            jobs=jobs,
        )
    reset_wecom_apis()
