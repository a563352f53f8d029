"""A visitor proves an e-mail address or a mainland mobile number with a code, and becomes the customer who
already holds it.

``verify_start`` {contact}: a six-digit code goes out by one of two senders, the rest of the flow being the same:
an e-mail through the outbox, by a mailbox of the desk (the site's ``verify_mailbox`` key, else the first active
mailbox), or an SMS through Tencent Cloud SMS (``app.sms.tencent``, sent at once so that a refusal reaches the
visitor; when SMS is not configured, numbers are refused with a clear message). ``verify_code`` {code}: the code
comes back within ``TTL`` and ``MAX_TRIES`` tries, and ``customers.merging.claim_proven_contact`` marks the contact
verified and merges the visitor with whoever holds it proven, so the visitor's widget shows their earlier
conversation. The rate limits count every attempt, sent or refused by the provider.

The challenge lives with the socket (one code at a time per socket; a reconnect asks for a new code). Neither the
address, the number nor the code is ever logged.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import phonenumbers

from app.channels.models import ChannelAccount
from app.channels.webchat.visitors import EMAIL, PHONE, RateLimiter
from app.customers.merging import claim_proven_contact
from app.customers.models import Customer
from app.outbox import service as outbox
from app.security.pii import mask_email, mask_phone
from app.settings import get_settings
from app.sms.tencent import SmsError, TencentSms

#: seconds a code is valid, and wrong codes allowed before it is void
TTL = 600.0
MAX_TRIES = 5
#: codes one visitor, and one IP address, may ask for per ten minutes
send_limiter = RateLimiter(limit=3, window=600.0)
ip_send_limiter = RateLimiter(limit=10, window=600.0)

ERRORS = {
    "verify_phone_unsupported": "暂不支持短信验证，请填写邮箱",
    "verify_bad_contact": "请填写正确的邮箱",
    "verify_bad_contact_any": "请填写正确的手机号或邮箱",
    "verify_bad_phone": "请填写正确的中国大陆手机号",
    "verify_phone_unreachable": "该手机号暂时无法接收短信，请检查号码或改用邮箱",
    "verify_unavailable": "暂时无法发送验证码，请稍后再试",
    "verify_rate_limited": "验证码发送太频繁，请稍后再试",
    "verify_wrong": "验证码不正确",
    "verify_expired": "验证码已失效，请重新获取",
}


@dataclass
class Challenge:
    kind: str
    value: str
    code: str
    expires: float
    tries: int = 0


class VerifyError(Exception):
    """A refused step; ``code`` names the Chinese message in ERRORS."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def _mailbox(site: ChannelAccount) -> ChannelAccount | None:
    key = (site.config or {}).get("verify_mailbox")
    query = ChannelAccount.filter(kind="email", active=True)
    if key:
        return await query.filter(key=str(key)).first()
    return await query.order_by("id").first()


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


def mainland_mobile(raw: str) -> str | None:
    """A mainland China mobile number in E.164 (+8613812345678), or None (landlines cannot get an SMS)."""
    try:
        parsed = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code != 86 or not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.number_type(parsed) not in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


#: sends the code to the contact (raises VerifyError)
Sender = Callable[[str], Awaitable[None]]


async def _by_mail(site: ChannelAccount, address: str) -> Sender:
    mailbox = await _mailbox(site)
    if mailbox is None:
        raise VerifyError("verify_unavailable")

    async def send(code: str) -> None:
        text = f"您的验证码是 {code}，{int(TTL // 60)} 分钟内有效。如非本人操作，请忽略本邮件。"
        await outbox.create(channel="email", kind="verify_code", recipient=address, channel_account_id=mailbox.id,
                            payload={"subject": f"{site.name} 验证码", "plain": True, "text": text})

    return send


def sms_available() -> bool:
    """Whether codes can go by SMS (Tencent Cloud SMS is configured)."""
    return get_settings().sms.configured


_SMS_ERRORS = {"bad_number": "verify_phone_unreachable", "rate_limited": "verify_rate_limited"}


def _by_sms(phone: str) -> Sender:
    settings = get_settings().sms
    if not settings.configured:
        raise VerifyError("verify_phone_unsupported")

    async def send(code: str) -> None:
        try:
            # the approved template takes the code and its validity in minutes ({1}, {2})
            await TencentSms(settings).send(phone=phone, params=[code, str(int(TTL // 60))])
        except SmsError as exc:
            raise VerifyError(_SMS_ERRORS.get(exc.reason, "verify_unavailable")) from None

    return send


async def start(*, site: ChannelAccount, visitor_key: str, ip: str, contact: str) -> tuple[Challenge, str]:
    """Send a code to the contact; the challenge to keep and the masked contact it went to."""
    contact = contact.strip()
    if PHONE.match(contact):
        phone = mainland_mobile(contact)
        send = _by_sms(phone or "")
        if phone is None:
            raise VerifyError("verify_bad_phone")
        kind, value, masked = "phone", phone, mask_phone(phone)
    else:
        if not EMAIL.match(contact) or len(contact) > 128:
            raise VerifyError("verify_bad_contact_any" if sms_available() else "verify_bad_contact")
        value = contact.lower()
        send = await _by_mail(site, value)
        kind, masked = "email", mask_email(value)
    if not (send_limiter.allow(visitor_key) and ip_send_limiter.allow(ip)):
        raise VerifyError("verify_rate_limited")
    code = new_code()
    await send(code)
    return Challenge(kind=kind, value=value, code=code, expires=time.monotonic() + TTL), masked


async def check(*, challenge: Challenge | None, code: str, customer: Customer) -> Customer:
    """Check the code; on success the visitor's customer after the merge (raises VerifyError otherwise)."""
    if challenge is None or time.monotonic() > challenge.expires or challenge.tries >= MAX_TRIES:
        raise VerifyError("verify_expired")
    challenge.tries += 1
    if not hmac.compare_digest(code.strip().encode(), challenge.code.encode()):
        raise VerifyError("verify_wrong" if challenge.tries < MAX_TRIES else "verify_expired")
    challenge.tries = MAX_TRIES  # one use
    return await claim_proven_contact(customer=customer, kind=challenge.kind, value=challenge.value)
