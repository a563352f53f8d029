"""A Tencent Cloud SMS stand-in on a real port (the simulator) and settings pointing the desk at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.datastructures import Secret

from app.settings import SmsSettings
from app.sms.tencent import breaker
from simulator import SimulatorServer, SimulatorState
from simulator.sms import (
    DEMO_SMS_SDK_APP_ID,
    DEMO_SMS_SECRET_ID,
    DEMO_SMS_SECRET_KEY,
    DEMO_SMS_SIGN_NAME,
    DEMO_SMS_TEMPLATE_ID,
)


@pytest.fixture(scope="session")
def sms_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorState()) as server:
        yield server


@pytest.fixture
def sms(sms_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The simulator with no message sent yet, and the sender's cool-down closed."""
    sms_server.state.reset()
    breaker.reset()
    yield sms_server
    breaker.reset()


def sms_settings(server: SimulatorServer, **overrides: object) -> SmsSettings:
    """The simulator's demo SMS application, as the desk would be configured for it."""
    fields: dict[str, object] = {
        "secret_id": DEMO_SMS_SECRET_ID, "secret_key": Secret(DEMO_SMS_SECRET_KEY), "sdk_app_id": DEMO_SMS_SDK_APP_ID,
        "sign_name": DEMO_SMS_SIGN_NAME, "template_id": DEMO_SMS_TEMPLATE_ID, "endpoint": server.url, **overrides}
    return SmsSettings(**fields)  # type: ignore[arg-type]
