"""Tencent Cloud SMS (腾讯云短信) ``SendSms`` 2021-01-11, served at ``POST /`` as sms.tencentcloudapi.com serves it.

API: https://cloud.tencent.com/document/api/382/55981 · errors: https://cloud.tencent.com/document/api/382/52075
Signature v3 (TC3-HMAC-SHA256): https://cloud.tencent.com/document/api/382/52072

Every request's signature is recomputed here from the documented steps (canonical request → string to sign →
HMAC chain from ``"TC3" + SecretKey``), independently of the SDK the desk uses. Errors come back as Tencent's
do: HTTP 200 with ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``; a number-level failure (bad number,
per-number limits) is a ``SendStatusSet`` entry whose ``Code`` is not ``"Ok"``. Sent messages are kept in
``SmsStore.sent`` so tests, the driver and the admin page can read the code that was "sent".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulator.clock import Clock

__all__ = [
    "DEMO_SMS_SDK_APP_ID",
    "DEMO_SMS_SECRET_ID",
    "DEMO_SMS_SECRET_KEY",
    "DEMO_SMS_SIGN_NAME",
    "DEMO_SMS_TEMPLATE_ID",
    "SentSms",
    "SmsApp",
    "SmsStore",
    "canonical_request",
    "sign_tc3",
    "sms_routes",
]

DEMO_SMS_SECRET_ID = "AKIDGongdanSimulatorSms000000000000"
DEMO_SMS_SECRET_KEY = "GongdanSimulatorSmsKey0000000000"
DEMO_SMS_SDK_APP_ID = "1400000001"
DEMO_SMS_SIGN_NAME = "工单演示"
DEMO_SMS_TEMPLATE_ID = "1000001"
#: the demo verification template, as approved in the console ({n} are TemplateParamSet entries)
DEMO_SMS_TEMPLATE = "{1}为您的验证码，请于{2}分钟内填写。如非本人操作，请忽略本短信。"

SERVICE = "sms"
VERSION = "2021-01-11"
ALGORITHM = "TC3-HMAC-SHA256"
#: X-TC-Timestamp further than this from the server's clock is refused (AuthFailure.SignatureExpire)
SIGNATURE_WINDOW = 300.0
#: Tencent's default frequency limit: one message to the same number per 30 seconds
THIRTY_SECONDS = 30.0

_MAINLAND_MOBILE = re.compile(r"^(?:\+86)?(1[3-9]\d{9})$")
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)/"
                   r"tc3_request, SignedHeaders=(?P<headers>[a-z0-9;\-]+), Signature=(?P<sig>[0-9a-f]{64})$")


@dataclass
class SmsApp:
    """An SMS application with its API key pair, approved signatures and templates (id → text)."""

    sdk_app_id: str
    secret_id: str
    secret_key: str
    sign_names: set[str] = field(default_factory=set)
    templates: dict[str, str] = field(default_factory=dict)


@dataclass
class SentSms:
    """One message Tencent accepted."""

    id: int
    phone: str
    sdk_app_id: str
    sign_name: str
    template_id: str
    params: list[str]
    text: str
    serial_no: str
    time: float

    def to_json(self) -> dict[str, Any]:
        """JSON for the admin API."""
        return asdict(self)


class SmsStore:
    """SMS applications and the messages sent; guarded by the simulator's lock."""

    def __init__(self, *, lock: threading.RLock, clock: Clock, next_id: Callable[[], int]) -> None:
        self.lock = lock
        self.clock = clock
        self.next_id = next_id
        self.apps: dict[str, SmsApp] = {}
        self.sent: list[SentSms] = []
        self.add_app(SmsApp(sdk_app_id=DEMO_SMS_SDK_APP_ID, secret_id=DEMO_SMS_SECRET_ID,
                            secret_key=DEMO_SMS_SECRET_KEY, sign_names={DEMO_SMS_SIGN_NAME},
                            templates={DEMO_SMS_TEMPLATE_ID: DEMO_SMS_TEMPLATE}))

    def add_app(self, app: SmsApp) -> SmsApp:
        """Register (or replace) an SMS application."""
        with self.lock:
            self.apps[app.sdk_app_id] = app
            return app

    def secret_for(self, secret_id: str) -> str | None:
        """The SecretKey paired with a SecretId, if any application uses it."""
        with self.lock:
            return next((a.secret_key for a in self.apps.values() if a.secret_id == secret_id), None)

    def messages(self, phone: str | None = None) -> list[SentSms]:
        """Sent messages, oldest first, optionally to one number (E.164 or national)."""
        wanted = _e164(phone) if phone else None
        with self.lock:
            return [m for m in self.sent if wanted is None or m.phone == wanted]

    def last(self, phone: str) -> SentSms | None:
        """The last message sent to a number."""
        found = self.messages(phone)
        return found[-1] if found else None

    def reset(self) -> None:
        """Forget the messages sent (applications stay)."""
        with self.lock:
            self.sent.clear()

    def send_one(self, *, app: SmsApp, phone: str, sign_name: str, template_id: str,
                 params: list[str]) -> dict[str, Any]:
        """One ``SendStatusSet`` entry: sent and recorded, or the number-level failure."""
        e164 = _e164(phone)
        if e164 is None:
            return _status(phone, "InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number")
        with self.lock:
            now = self.clock.now()
            if any(m.phone == e164 and now - m.time < THIRTY_SECONDS for m in self.sent):
                return _status(e164, "LimitExceeded.PhoneNumberThirtySecondLimit",
                               "the number of sms messages sent from a single mobile number within 30 seconds "
                               "exceeds the upper limit")
            text = f"【{sign_name}】" + re.sub(r"\{(\d+)\}", lambda m: _param(params, int(m.group(1))),
                                               app.templates[template_id])
            serial = f"2433:{uuid.uuid4().int % 10**28:028d}"
            self.sent.append(SentSms(id=self.next_id(), phone=e164, sdk_app_id=app.sdk_app_id, sign_name=sign_name,
                                     template_id=template_id, params=list(params), text=text, serial_no=serial,
                                     time=now))
        return {"SerialNo": serial, "PhoneNumber": e164, "Fee": 1, "SessionContext": "", "Code": "Ok",
                "Message": "send success", "IsoCode": "CN"}


def _param(params: list[str], n: int) -> str:
    return params[n - 1] if 0 < n <= len(params) else ""


def _e164(phone: str) -> str | None:
    found = _MAINLAND_MOBILE.match(phone.strip())
    return f"+86{found.group(1)}" if found else None


def _status(phone: str, code: str, message: str) -> dict[str, Any]:
    return {"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": "", "Code": code, "Message": message,
            "IsoCode": "CN" if phone.startswith("+86") else ""}


def canonical_request(*, method: str, path: str, query: str, headers: dict[str, str], signed_headers: list[str],
                      payload: bytes) -> str:
    """The CanonicalRequest of signature v3 (header names and values lower-cased and trimmed)."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers)
    return "\n".join([method, path, query, canonical_headers, ";".join(signed_headers),
                      hashlib.sha256(payload).hexdigest()])


def sign_tc3(*, secret_key: str, date: str, service: str, timestamp: str, canonical: str) -> str:
    """The hex signature of a canonical request: StringToSign signed with the derived TC3 key."""
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class _ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def _store(request: Request) -> SmsStore:
    store: SmsStore = request.app.state.sim.sms
    return store


def _verify(request: Request, body: bytes, store: SmsStore) -> None:
    auth = _AUTH.match(request.headers.get("authorization", ""))
    if auth is None:
        raise _ApiError("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
    signed = auth.group("headers").split(";")
    if "host" not in signed or "content-type" not in signed:
        raise _ApiError("AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host.")
    timestamp = request.headers.get("x-tc-timestamp", "")
    if not timestamp.isdigit():
        raise _ApiError("MissingParameter", "The request is missing a required parameter `X-TC-Timestamp`.")
    if abs(store.clock.now() - int(timestamp)) > SIGNATURE_WINDOW:
        raise _ApiError("AuthFailure.SignatureExpire", "Signature expired. Timestamp and server time are "
                                                        "different by more than 5 minutes.")
    secret = store.secret_for(auth.group("id"))
    if secret is None:
        raise _ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your "
                                                         "SecretId is correct.")
    day = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
    headers = {k.lower(): v for k, v in request.headers.items()}
    canonical = canonical_request(method=request.method, path=request.url.path, query=request.url.query,
                                  headers=headers, signed_headers=signed, payload=body)
    expected = sign_tc3(secret_key=secret, date=auth.group("date"), service=auth.group("service"),
                        timestamp=timestamp, canonical=canonical)
    if (auth.group("date") != day or auth.group("service") != SERVICE
            or not hmac.compare_digest(expected, auth.group("sig"))):
        raise _ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                                                         "Please check your signature is correct.")


def _params(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise _ApiError("InvalidParameter", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise _ApiError("InvalidParameter", "The request body must be a JSON object.")
    return data


def _send_sms(request: Request, body: bytes, secret_id: str) -> dict[str, Any]:
    store = _store(request)
    if request.headers.get("x-tc-action") != "SendSms":
        raise _ApiError("InvalidAction", f"The action `{request.headers.get('x-tc-action')}` is not supported.")
    if request.headers.get("x-tc-version") != VERSION:
        raise _ApiError("NoSuchVersion", "The requested version does not exist or is not supported.")
    data = _params(body)
    phones = data.get("PhoneNumberSet")
    if not phones or not isinstance(phones, list):
        raise _ApiError("MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty.")
    if len(phones) > 200:
        raise _ApiError("LimitExceeded.PhoneNumberCountLimit", "more than 200 numbers in one request")
    with store.lock:
        app = store.apps.get(str(data.get("SmsSdkAppId") or ""))
    if app is None:
        raise _ApiError("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist.")
    if app.secret_id != secret_id:
        raise _ApiError("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail.")
    sign_name = str(data.get("SignName") or "")
    if sign_name not in app.sign_names:
        raise _ApiError("FailedOperation.SignatureIncorrectOrUnapproved", "signature format is incorrect or "
                                                                          "signature is not approved")
    template_id = str(data.get("TemplateId") or "")
    template = app.templates.get(template_id)
    if template is None:
        raise _ApiError("FailedOperation.TemplateIncorrectOrUnapproved", "template is not approved or request "
                                                                         "content does not match the approved "
                                                                         "template content")
    params = [str(p) for p in data.get("TemplateParamSet") or []]
    if len(params) != len(set(re.findall(r"\{(\d+)\}", template))):
        raise _ApiError("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                        "request content does not match the approved template content")
    statuses = [store.send_one(app=app, phone=str(p), sign_name=sign_name, template_id=template_id, params=params)
                for p in phones]
    return {"SendStatusSet": statuses}


async def tencentcloud_api(request: Request) -> Response:
    """``POST /``: the Tencent Cloud API front door; only ``X-TC-Action: SendSms`` (service sms) is served."""
    body = await request.body()
    request_id = str(uuid.uuid4())
    sim = request.app.state.sim
    try:
        _verify(request, body, _store(request))
        auth = _AUTH.match(request.headers["authorization"])
        assert auth is not None
        response = _send_sms(request, body, auth.group("id"))
        code = None
    except _ApiError as exc:
        response = {"Error": {"Code": exc.code, "Message": exc.message}}
        code = exc.code
    sim.record_api_call(platform="sms", method="POST", path=request.headers.get("x-tc-action") or "/", query={},
                        body=body, appid=None, errcode=None if code is None else -1, http_status=200)
    return JSONResponse({"Response": {**response, "RequestId": request_id}})


async def sms_messages(request: Request) -> Response:
    """``GET /_sim/sms/messages?phone=``: the messages Tencent "sent", oldest first (ours, not Tencent's API)."""
    phone = request.query_params.get("phone") or None
    return JSONResponse({"messages": [m.to_json() for m in _store(request).messages(phone)]})


def sms_routes() -> list[BaseRoute]:
    """The SendSms front door and its inspection route."""
    return [Route("/", tencentcloud_api, methods=["POST"]), Route("/_sim/sms/messages", sms_messages)]
