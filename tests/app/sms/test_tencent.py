"""SendSms through Tencent's SDK against the simulator, which verifies the TC3 signature; every failure becomes one
reason for the visitor, nothing is retried, and a refused configuration holds further sends back."""

from __future__ import annotations

import io
import json
import socket

import pytest
from starlette.datastructures import Secret

from app.errors import ConfigError
from app.settings import load_settings
from app.sms.tencent import COOL_DOWN, SmsError, TencentSms, breaker, classify
from simulator import SimulatorServer
from simulator.sms import DEMO_SMS_SECRET_KEY, DEMO_SMS_SIGN_NAME, DEMO_SMS_TEMPLATE_ID
from tests.app.sms.conftest import sms_settings

PHONE = "+8613812345678"


def _calls(server: SimulatorServer) -> int:
    return len(server.state.api_calls_for(platform="sms"))


async def test_the_code_goes_out_signed_with_the_configured_application(sms: SimulatorServer) -> None:
    serial = await TencentSms(sms_settings(sms)).send(phone=PHONE, params=["042917", "10"])
    sent = sms.state.last_sms(PHONE)
    assert sent is not None and sent.serial_no == serial
    assert sent.text == "【工单演示】042917为您的验证码，请于10分钟内填写。如非本人操作，请忽略本短信。"
    [call] = sms.state.api_calls_for("SendSms", platform="sms")
    assert json.loads(call.body) == {"PhoneNumberSet": [PHONE], "SmsSdkAppId": "1400000001",
                                     "SignName": DEMO_SMS_SIGN_NAME, "TemplateId": DEMO_SMS_TEMPLATE_ID,
                                     "TemplateParamSet": ["042917", "10"]}


async def test_a_wrong_secret_is_refused_once_then_nothing_is_sent_for_a_while(
        sms: SimulatorServer, log_output: io.StringIO) -> None:
    wrong = TencentSms(sms_settings(sms, secret_key=Secret("leaked-and-rotated-key")))
    with pytest.raises(SmsError) as refused:
        await wrong.send(phone=PHONE, params=["042917", "10"])
    assert (refused.value.reason, refused.value.code) == ("unavailable", "AuthFailure.SignatureFailure")
    assert _calls(sms) == 1 and sms.state.sms_to(PHONE) == []
    # every visitor's click would fail the same way: not even the right key is tried until the cool-down ends
    right = TencentSms(sms_settings(sms))
    for _ in range(3):
        with pytest.raises(SmsError) as held:
            await right.send(phone=PHONE, params=["042917", "10"])
        assert held.value.reason == "unavailable"
    assert _calls(sms) == 1
    breaker.down_until -= COOL_DOWN
    await right.send(phone=PHONE, params=["042917", "10"])
    assert _calls(sms) == 2
    logs = log_output.getvalue()
    assert "AuthFailure.SignatureFailure" in logs
    for secret in ("leaked-and-rotated-key", DEMO_SMS_SECRET_KEY, "13812345678", "042917"):
        assert secret not in logs


@pytest.mark.parametrize(("phone", "reason", "code"), [
    ("+12025550123", "bad_number", "InvalidParameterValue.IncorrectPhoneNumber"),
    (PHONE, "rate_limited", "LimitExceeded.PhoneNumberThirtySecondLimit"),
])
async def test_number_level_failures_are_not_retried(
        sms: SimulatorServer, phone: str, reason: str, code: str) -> None:
    sender = TencentSms(sms_settings(sms))
    if reason == "rate_limited":
        await sender.send(phone=phone, params=["111111", "10"])
    before = _calls(sms)
    with pytest.raises(SmsError) as failed:
        await sender.send(phone=phone, params=["222222", "10"])
    assert (failed.value.reason, failed.value.code) == (reason, code)
    assert _calls(sms) == before + 1
    assert not breaker.is_open  # the number's problem, not ours


async def test_an_unreachable_endpoint_is_unavailable(db: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load_settings({"GONGDAN_ENV": "test", "TENCENT_SMS_ENDPOINT": f"http://127.0.0.1:{port}"},
                             env_file=None).sms
    from dataclasses import replace

    sender = TencentSms(replace(settings, secret_id="AKIDx", secret_key=Secret("k"), sdk_app_id="1400000001",
                                sign_name="s", template_id="1"))
    with pytest.raises(SmsError) as failed:
        await sender.send(phone=PHONE, params=["1", "10"])
    assert failed.value.reason == "unavailable"
    assert not breaker.is_open


def test_error_codes_map_to_what_the_visitor_is_told() -> None:
    expected = {
        "InvalidParameterValue.IncorrectPhoneNumber": "bad_number",
        "FailedOperation.PhoneNumberInBlacklist": "bad_number",
        "LimitExceeded.PhoneNumberDailyLimit": "rate_limited",
        "LimitExceeded.PhoneNumberOneHourLimit": "rate_limited",
        "AuthFailure.SignatureFailure": "unavailable",
        "FailedOperation.InsufficientBalance": "unavailable",
        "InternalError.Timeout": "unavailable",
    }
    assert {code: classify(code) for code in expected} == expected


def test_sms_settings_are_read_from_the_environment_and_checked() -> None:
    env = {"GONGDAN_ENV": "test", "TENCENT_SMS_SECRET_ID": "AKIDabc", "TENCENT_SMS_SECRET_KEY": "s3cr3t-sms-key",
           "TENCENT_SMS_SDK_APP_ID": "1400123456", "TENCENT_SMS_SIGN_NAME": "示例商城",
           "TENCENT_SMS_TEMPLATE_ID": "2001"}
    sms = load_settings(env, env_file=None).sms
    assert sms.configured and sms.endpoint == "https://sms.tencentcloudapi.com" and sms.region == "ap-guangzhou"
    assert "s3cr3t-sms-key" not in repr(sms)  # the SecretKey is a starlette Secret
    assert not load_settings({"GONGDAN_ENV": "test"}, env_file=None).sms.configured
    assert not load_settings({**env, "TENCENT_SMS_TEMPLATE_ID": ""}, env_file=None).sms.configured
    for bad, message in ((("TENCENT_SMS_ENDPOINT", "https://sms.tencentcloudapi.com/v3"), "TENCENT_SMS_ENDPOINT"),
                         (("TENCENT_SMS_SECRET_KEY", ""), "TENCENT_SMS_SECRET_KEY"),
                         (("TENCENT_SMS_SDK_APP_ID", "app-1"), "TENCENT_SMS_SDK_APP_ID")):
        with pytest.raises(ConfigError, match=message):
            load_settings({**env, bad[0]: bad[1]}, env_file=None)


def test_make_run_points_sms_at_the_simulator() -> None:
    from app.devserver import embedded_defaults

    env = embedded_defaults(host="127.0.0.1", port=8000, simulator_port=8001)
    sms = load_settings({"GONGDAN_ENV": "test", **env}, env_file=None).sms
    assert sms.configured and sms.endpoint == "http://127.0.0.1:8001"
