"""Fixtures for the simulator tests: a fresh state with one MP account, an in-process client, a live server."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

# `pytest` run straight from the venv does not put the repository root on sys.path (`python -m pytest` and an
# editable install do); make `import simulator` work either way.
if importlib.util.find_spec("simulator") is None:  # pragma: no cover - depends on how pytest is launched
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from simtestdata import AES_KEY, APPID, SECRET, TOKEN

from simulator import MPAccount, SimulatorServer, SimulatorState, create_simulator_app


@pytest.fixture
def state() -> SimulatorState:
    sim = SimulatorState(template_job_finish=False)
    sim.add_mp_account(MPAccount(appid=APPID, secret=SECRET, token=TOKEN, aes_key=AES_KEY, mode="safe"))
    return sim


@pytest.fixture
def account(state: SimulatorState) -> MPAccount:
    return state.mp_account(APPID)


@pytest_asyncio.fixture
async def client(state: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    """httpx against the ASGI app in-process (no retries/timeouts involved)."""
    transport = httpx.ASGITransport(app=create_simulator_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as c:
        yield c


@pytest_asyncio.fixture
async def token(client: httpx.AsyncClient) -> str:
    response = await client.get(
        "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    )
    value: str = response.json()["access_token"]
    return value


@pytest.fixture
def server(state: SimulatorState) -> Iterator[SimulatorServer]:
    with SimulatorServer(state) as running:
        yield running
