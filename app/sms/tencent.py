"""Tencent Cloud SMS (腾讯云短信) ``SendSms``, API version 2021-01-11.

API: https://cloud.tencent.com/document/api/382/55981 (SendSms); errors: https://cloud.tencent.com/document/api/382/52075
Signing: TC3-HMAC-SHA256, https://cloud.tencent.com/document/api/382/52072 (签名方法 v3).

The call goes through Tencent's own SDK (``tencentcloud-sdk-python-sms``), using its httpx-based ``SmsClient`` from
``sms_client_async`` so it never blocks the event loop; ``HttpProfile(protocol, endpoint)`` points it at our
simulator in `make run` and tests. The SDK signs; the simulator verifies the signature independently.

Errors (``SmsError.reason``), each a distinct message to the visitor::

    SmsError
      bad_number    the number cannot receive (invalid, blacklisted, not a mainland mobile)
      rate_limited  Tencent's per-number limits (30 s, 1 h, daily)
      unavailable   credentials, app, signature or template refused; network; anything else

No retries: a visitor asks again by clicking. After a refusal of our own configuration (``AuthFailure.*``,
``UnauthorizedOperation.*``, signature/template not approved) nothing is sent for ``COOL_DOWN`` seconds, since every
visitor's attempt would fail the same way. The number, the code and the secret key are never logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from app.logs import get_logger
from app.settings import SmsSettings

__all__ = ["COOL_DOWN", "SmsError", "TencentSms", "breaker"]

log = get_logger(__name__)

#: seconds nothing is sent after Tencent refused our own configuration
COOL_DOWN = 60.0
#: seconds one SendSms may take before the visitor is told to try later
TIMEOUT = 10.0

_BAD_NUMBER = {
    "InvalidParameterValue.IncorrectPhoneNumber",
    "FailedOperation.PhoneNumberInBlacklist",
    "FailedOperation.PhoneNumberParseFail",
    "UnsupportedOperation.ContainInternationalPhoneNumber",
    "UnsupportedOperation.UnsupportedRegion",
}
_OUR_CONFIG = ("AuthFailure.", "UnauthorizedOperation.", "InvalidParameterValue.SdkAppIdNotExist",
               "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.TemplateIncorrectOrUnapproved",
               "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "FailedOperation.InsufficientBalance")


class SmsError(Exception):
    """SendSms did not send; ``reason`` is bad_number, rate_limited or unavailable, ``code`` Tencent's code."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason, code)
        self.reason = reason
        self.code = code


@dataclass
class Breaker:
    """Holds sends back for a while after Tencent refused our configuration."""

    down_until: float = 0.0

    def open(self) -> None:
        self.down_until = time.monotonic() + COOL_DOWN

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.down_until

    def reset(self) -> None:
        self.down_until = 0.0


breaker = Breaker()


def classify(code: str) -> str:
    """The reason an error code means for the visitor."""
    if code in _BAD_NUMBER:
        return "bad_number"
    if code.startswith("LimitExceeded.PhoneNumber"):
        return "rate_limited"
    return "unavailable"


class TencentSms:
    """SendSms with the desk's SMS application, signature and template."""

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        # the SDK logs whole requests (numbers, codes) at DEBUG; they must not reach our logs
        logging.getLogger("tencentcloud_sdk_common").setLevel(logging.WARNING)

    def _client(self) -> SmsClient:
        scheme, _, host = self.settings.endpoint.partition("://")
        http = HttpProfile(protocol=scheme, endpoint=host, reqTimeout=TIMEOUT)
        profile = ClientProfile(httpProfile=http)  # no retryer: one click, one request
        credential = Credential(self.settings.secret_id, str(self.settings.secret_key))
        return SmsClient(credential, self.settings.region, profile)

    async def send(self, *, phone: str, params: list[str]) -> str:
        """Send the template with ``params`` to one E.164 number; Tencent's SerialNo (raises SmsError)."""
        if breaker.is_open:
            raise SmsError("unavailable", "CoolingDown")
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [phone]
        request.SmsSdkAppId = self.settings.sdk_app_id
        request.SignName = self.settings.sign_name
        request.TemplateId = self.settings.template_id
        request.TemplateParamSet = params
        try:
            async with self._client() as client:
                response = await client.SendSms(request)
        except TencentCloudSDKException as exc:
            raise self._failed(str(exc.code or "ClientError"), getattr(exc, "requestId", None)) from None
        except httpx.HTTPError as exc:
            log.warning("sms.send_failed", code="NetworkError", error=type(exc).__name__)
            raise SmsError("unavailable", "NetworkError") from None
        statuses = response.SendStatusSet or []
        if not statuses:
            raise self._failed("EmptySendStatusSet", response.RequestId)
        status = statuses[0]
        if status.Code != "Ok":
            raise self._failed(str(status.Code), response.RequestId)
        log.info("sms.sent", serial_no=status.SerialNo, fee=status.Fee, request_id=response.RequestId)
        return str(status.SerialNo)

    def _failed(self, code: str, request_id: str | None) -> SmsError:
        reason = classify(code)
        if code.startswith(_OUR_CONFIG):
            breaker.open()
            log.error("sms.refused_configuration", code=code, request_id=request_id, cool_down=COOL_DOWN)
        else:
            log.warning("sms.send_failed", code=code, request_id=request_id)
        return SmsError(reason, code)
