"""The Tencent Cloud SMS stand-in: SendSms at ``POST /``, TC3-HMAC-SHA256 verified, Tencent's response shapes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from simulator import SimulatorServer, SimulatorState
from simulator.sms import (
    DEMO_SMS_SDK_APP_ID,
    DEMO_SMS_SECRET_ID,
    DEMO_SMS_SECRET_KEY,
    DEMO_SMS_SIGN_NAME,
    DEMO_SMS_TEMPLATE_ID,
    canonical_request,
    sign_tc3,
)

PHONE = "+8613812345678"


def test_canonical_request_matches_tencents_documented_example() -> None:
    # 签名方法 v3, step 1 and 2 (https://cloud.tencent.com/document/api/213/30654): DescribeInstances on cvm
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    assert hashlib.sha256(payload).hexdigest() == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    canonical = canonical_request(
        method="POST", path="/", query="", payload=payload, signed_headers=["content-type", "host", "x-tc-action"],
        headers={"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com",
                 "x-tc-action": "DescribeInstances"})
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84")


def _body(**overrides: Any) -> dict[str, Any]:
    return {"PhoneNumberSet": [PHONE], "SmsSdkAppId": DEMO_SMS_SDK_APP_ID, "SignName": DEMO_SMS_SIGN_NAME,
            "TemplateId": DEMO_SMS_TEMPLATE_ID, "TemplateParamSet": ["123456", "10"], **overrides}


def _signed(body: dict[str, Any], *, secret_id: str = DEMO_SMS_SECRET_ID, secret_key: str = DEMO_SMS_SECRET_KEY,
            timestamp: int | None = None, tamper: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    date = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d")
    headers = {"content-type": "application/json", "host": "sim.test", "x-tc-action": "SendSms",
               "x-tc-version": "2021-01-11", "x-tc-timestamp": ts, "x-tc-region": "ap-guangzhou"}
    canonical = canonical_request(method="POST", path="/", query="", headers=headers,
                                  signed_headers=["content-type", "host"], payload=raw)
    signature = sign_tc3(secret_key=secret_key, date=date, service="sms", timestamp=ts, canonical=canonical)
    headers["authorization"] = (f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/sms/tc3_request, "
                                f"SignedHeaders=content-type;host, Signature={signature}")
    return tamper if tamper is not None else raw, headers


async def _post(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    raw, headers = _signed(body, **kw)
    response = await client.post("/", content=raw, headers=headers)
    assert response.status_code == 200  # Tencent answers API errors with 200 too
    data: dict[str, Any] = response.json()["Response"]
    assert len(data["RequestId"]) == 36
    return data


async def test_a_signed_send_sms_answers_tencents_shape_and_records_the_text(
        client: httpx.AsyncClient, state: SimulatorState) -> None:
    data = await _post(client, _body(PhoneNumberSet=["13812345678"]))
    [status] = data["SendStatusSet"]
    assert status["SerialNo"].startswith("2433:")
    assert {k: v for k, v in status.items() if k != "SerialNo"} == {
        "PhoneNumber": PHONE, "Fee": 1, "SessionContext": "", "Code": "Ok", "Message": "send success",
        "IsoCode": "CN"}
    sent = state.last_sms("13812345678")
    assert sent is not None and sent.phone == PHONE and sent.params == ["123456", "10"]
    assert sent.text == "【工单演示】123456为您的验证码，请于10分钟内填写。如非本人操作，请忽略本短信。"
    assert sent.serial_no == status["SerialNo"]
    listed = (await client.get("/_sim/sms/messages", params={"phone": PHONE})).json()["messages"]
    assert [m["text"] for m in listed] == [sent.text]
    assert state.api_calls_for("SendSms", platform="sms")[0].errcode is None


@pytest.mark.parametrize(("kw", "code"), [
    ({"secret_key": "not-the-key"}, "AuthFailure.SignatureFailure"),
    ({"tamper": json.dumps(_body(PhoneNumberSet=["+8613900000000"])).encode()}, "AuthFailure.SignatureFailure"),
    ({"secret_id": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
    ({"timestamp": int(time.time()) - 3600}, "AuthFailure.SignatureExpire"),
])
async def test_bad_signatures_are_refused_and_nothing_is_sent(
        client: httpx.AsyncClient, state: SimulatorState, kw: dict[str, Any], code: str) -> None:
    data = await _post(client, _body(), **kw)
    assert data["Error"]["Code"] == code and "SendStatusSet" not in data
    assert state.sms_to(PHONE) == [] and state.sms_to("+8613900000000") == []


@pytest.mark.parametrize(("body", "code"), [
    (_body(SmsSdkAppId="1400999999"), "InvalidParameterValue.SdkAppIdNotExist"),
    (_body(SignName="别人的签名"), "FailedOperation.SignatureIncorrectOrUnapproved"),
    (_body(TemplateId="999"), "FailedOperation.TemplateIncorrectOrUnapproved"),
    (_body(TemplateParamSet=["123456"]), "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
    (_body(PhoneNumberSet=[]), "MissingParameter.EmptyPhoneNumberSet"),
])
async def test_configuration_errors_have_tencents_codes(
        client: httpx.AsyncClient, state: SimulatorState, body: dict[str, Any], code: str) -> None:
    assert (await _post(client, body))["Error"]["Code"] == code
    assert state.sms_to(PHONE) == []


async def test_number_level_failures_are_send_statuses(client: httpx.AsyncClient, state: SimulatorState) -> None:
    data = await _post(client, _body(PhoneNumberSet=["+12025550123", "010-12345678"]))
    assert [(s["Code"], s["Fee"], s["SerialNo"]) for s in data["SendStatusSet"]] == [
        ("InvalidParameterValue.IncorrectPhoneNumber", 0, "")] * 2
    assert "Error" not in data
    assert await _post(client, _body())
    again = await _post(client, _body())
    assert again["SendStatusSet"][0]["Code"] == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert len(state.sms_to(PHONE)) == 1
    state.advance(31)
    assert (await _post(client, _body()))["SendStatusSet"][0]["Code"] == "Ok"
    assert len(state.sms_to(PHONE)) == 2


def test_tencents_own_sdk_signs_requests_the_simulator_accepts(server: SimulatorServer) -> None:
    async def send(secret_key: str) -> Any:
        scheme, _, host = server.url.partition("://")
        profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host))
        request = models.SendSmsRequest()
        request.from_json_string(json.dumps(_body()))
        async with SmsClient(Credential(DEMO_SMS_SECRET_ID, secret_key), "ap-guangzhou", profile) as client:
            return await client.SendSms(request)

    response = asyncio.run(send(DEMO_SMS_SECRET_KEY))
    assert response.SendStatusSet[0].Code == "Ok"
    assert server.state.last_sms(PHONE) is not None
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    with pytest.raises(TencentCloudSDKException) as refused:
        asyncio.run(send("wrong-key"))
    assert refused.value.code == "AuthFailure.SignatureFailure"
    assert len(server.state.sms_to(PHONE)) == 1


async def test_the_simulator_page_shows_the_messages_sent(client: httpx.AsyncClient) -> None:
    assert "还没有短信" in (await client.get("/_sim/")).text
    await _post(client, _body())
    page = (await client.get("/_sim/")).text
    assert "+8613812345678 · 【工单演示】123456为您的验证码" in page
