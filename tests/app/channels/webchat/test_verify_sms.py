"""找回记录 by mobile number: the code goes by Tencent Cloud SMS (the simulator, which verifies the signature), comes
back with the e-mail flow's expiry, tries and limits, and a proven number makes the visitor the customer who holds it
verified; a number or code never reaches the logs, and a provider refusal is one clear Chinese message."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import Secret

from app.channels.webchat import verify, visitors
from app.customers import service as customers
from app.customers.models import ContactVerification, Customer, CustomerIdentity, CustomerMerge
from app.settings import Settings, set_settings
from simulator import SimulatorServer
from tests.app.channels.webchat.conftest import Desk, Socket
from tests.app.sms.conftest import sms, sms_server, sms_settings

__all__ = ["sms", "sms_server"]

NUMBER = "13912345678"
E164 = "+8613912345678"


@pytest.fixture
def with_sms(settings: Settings, sms: SimulatorServer) -> Iterator[SimulatorServer]:
    set_settings(settings.with_overrides(sms=sms_settings(sms)))
    verify.send_limiter.reset()
    verify.ip_send_limiter.reset()
    yield sms
    verify.send_limiter.reset()
    verify.ip_send_limiter.reset()


async def _chat(desk: Desk, text: str, **hello: Any) -> tuple[Socket, dict[str, Any], int]:
    ws = await desk.socket()
    welcome = await ws.hello(**hello)
    await ws.send({"type": "message", "text": text, "client_id": "c1"})
    ack = await ws.receive_until("ack")
    await desk.jobs.drain()
    return ws, welcome, int(ack["id"])


async def _code(sim: SimulatorServer, ws: Socket, typed: str) -> str:
    before = len(sim.state.sms_to(E164))
    await ws.send({"type": "verify_start", "contact": typed})
    sent = await ws.receive_until("verify_sent")
    assert sent == {"type": "verify_sent", "to": "139****5678", "by": "phone"}
    messages = sim.state.sms_to(E164)
    assert len(messages) == before + 1
    found = re.match(r"【工单演示】(\d{6})为您的验证码，请于10分钟内填写。", messages[-1].text)
    assert found is not None
    return found.group(1)


async def test_a_proven_number_makes_the_returning_visitor_the_same_customer(
        desk: Desk, with_sms: SimulatorServer, at_work: None, log_output: io.StringIO) -> None:
    first, first_welcome, first_msg = await _chat(desk, "上次的订单还没到")
    assert first_welcome["verify_sms"] is True
    code = await _code(with_sms, first, "139 1234 5678")
    await first.send({"type": "verify_code", "code": code})
    await first.receive_until("verify_ok")
    await first.close()
    old = await CustomerIdentity.get(kind="visitor", value=visitors.verify(first_welcome["visitor"]))
    assert await ContactVerification.filter(customer_id=old.customer_id, kind="phone").count() == 1  # type: ignore[attr-defined]

    with_sms.state.advance(31)  # Tencent's own limit: one message per number per 30 s
    second, second_welcome, second_msg = await _chat(desk, "我又来问一下")
    new = await CustomerIdentity.get(kind="visitor", value=visitors.verify(second_welcome["visitor"]))
    assert new.customer_id != old.customer_id  # type: ignore[attr-defined]
    code = await _code(with_sms, second, "+86 139-1234-5678")
    await second.send({"type": "verify_code", "code": code})
    await second.receive_until("verify_ok")
    history = [await second.receive_until("message") for _ in range(2)]
    assert [m["id"] for m in history if m["direction"] == "in"][:2] == [first_msg, second_msg]
    await second.close()

    survivor = await Customer.get(id=old.customer_id)  # type: ignore[attr-defined]
    merged = await Customer.get(id=new.customer_id)  # type: ignore[attr-defined]
    assert (merged.merged_into_id, survivor.merged_into_id) == (survivor.id, None)  # type: ignore[attr-defined]
    assert customers.phone_of(survivor) == E164
    record = await CustomerMerge.get(merged_id=merged.id)
    assert (record.survivor_id, record.reason) == (survivor.id, "phone")  # type: ignore[attr-defined]
    logs = log_output.getvalue()
    assert "sms.sent" in logs
    for secret in (NUMBER, code, "5678"):
        assert secret not in logs


async def test_a_number_staff_verified_is_the_same_person_and_a_typed_one_is_not(
        desk: Desk, with_sms: SimulatorServer, at_work: None) -> None:
    known = await customers.create(name="王先生", phone=NUMBER, verified=True)
    typed = await customers.create(name="别人", phone="13800138000")  # typed in a chat, never proven
    ws, welcome, _ = await _chat(desk, "你好")
    code = await _code(with_sms, ws, NUMBER)
    await ws.send({"type": "verify_code", "code": code})
    await ws.receive_until("verify_ok")
    await ws.close()
    identity = await CustomerIdentity.get(kind="visitor", value=visitors.verify(welcome["visitor"]))
    assert identity.customer_id == known.id  # type: ignore[attr-defined]
    assert (await Customer.get(id=typed.id)).merged_into_id is None  # type: ignore[attr-defined]


async def test_sms_codes_share_the_expiry_tries_and_limits_of_e_mail(
        desk: Desk, with_sms: SimulatorServer, at_work: None) -> None:
    ws, _, _ = await _chat(desk, "你好")
    code = await _code(with_sms, ws, NUMBER)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(verify.MAX_TRIES - 1):
        await ws.send({"type": "verify_code", "code": wrong})
        assert (await ws.receive_until("error"))["code"] == "verify_wrong"
    await ws.send({"type": "verify_code", "code": wrong})
    assert (await ws.receive_until("error"))["code"] == "verify_expired"
    await ws.send({"type": "verify_code", "code": code})
    assert (await ws.receive_until("error"))["code"] == "verify_expired"
    assert await ContactVerification.all().count() == 0

    # Tencent refuses a second message within 30 s: the visitor hears it, and it counts against our limit too
    await ws.send({"type": "verify_start", "contact": NUMBER})
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == ("verify_rate_limited", "验证码发送太频繁，请稍后再试")
    with_sms.state.advance(31)
    await ws.send({"type": "verify_start", "contact": NUMBER})  # the third code in ten minutes
    await ws.receive_until("verify_sent")
    with_sms.state.advance(31)
    await ws.send({"type": "verify_start", "contact": NUMBER})
    assert (await ws.receive_until("error"))["code"] == "verify_rate_limited"
    assert len(with_sms.state.sms_to(E164)) == 2  # our limit held this one back: Tencent never saw it
    await ws.close()


@pytest.mark.parametrize(("typed", "code", "message"), [
    ("010-12345678", "verify_bad_phone", "请填写正确的中国大陆手机号"),  # a landline gets no SMS
    ("+1 202 555 0123", "verify_bad_phone", "请填写正确的中国大陆手机号"),
    ("12345678901", "verify_bad_phone", "请填写正确的中国大陆手机号"),
    ("not a contact", "verify_bad_contact_any", "请填写正确的手机号或邮箱"),  # SMS on: the hint names both
])
async def test_numbers_that_cannot_get_an_sms_are_refused_before_sending(
        desk: Desk, with_sms: SimulatorServer, at_work: None, typed: str, code: str, message: str) -> None:
    ws, _, _ = await _chat(desk, "你好")
    await ws.send({"type": "verify_start", "contact": typed})
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == (code, message)
    assert with_sms.state.api_calls_for(platform="sms") == []
    await ws.close()


async def test_a_refused_configuration_tells_the_visitor_to_try_later(
        desk: Desk, settings: Settings, sms: SimulatorServer, at_work: None) -> None:
    set_settings(settings.with_overrides(sms=sms_settings(sms, secret_key=Secret("rotated-away"))))
    verify.send_limiter.reset()
    ws, _, _ = await _chat(desk, "你好")
    await ws.send({"type": "verify_start", "contact": NUMBER})
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == ("verify_unavailable", "暂时无法发送验证码，请稍后再试")
    assert [c.path for c in sms.state.api_calls_for(platform="sms")] == ["SendSms"]
    assert sms.state.sms_to(E164) == []
    await ws.close()


async def test_without_sms_settings_numbers_are_refused_and_the_widget_is_told(
        desk: Desk, sms: SimulatorServer, at_work: None) -> None:
    ws, welcome, _ = await _chat(desk, "你好")
    assert welcome["verify_sms"] is False
    await ws.send({"type": "verify_start", "contact": NUMBER})
    error = await ws.receive_until("error")
    assert (error["code"], error["message"]) == ("verify_phone_unsupported", "暂不支持短信验证，请填写邮箱")
    assert sms.state.api_calls_for(platform="sms") == []
    await ws.close()
