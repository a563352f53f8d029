"""A customer's consent before we collect a phone number or photos from them (the customer H5 pages).

The page shows `CONSENT_TEXT` next to a checkbox; submitting a phone number or photos without it ticked is refused
with `CONSENT_REQUIRED`, and a ticked box is recorded per kind of data collected (`ConsentRecord`: what, when,
which version of the text), kept with the customer. Changing the wording means a new `CONSENT_VERSION`.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.errors import ValidationFailed
from app.security.models import ConsentRecord

CONSENT_VERSION = "2026-12-v1"
CONSENT_TEXT = ("我同意提供联系电话和图片，仅用于处理本工单及就本工单与我联系；"
                "相关信息加密保存，工单关闭后按保存期限清除。")
CONSENT_REQUIRED = "提交联系电话或图片前，请先阅读并勾选同意《个人信息使用说明》。"
PURPOSES = ("phone", "photos")


def require(*, purposes: Iterable[str], agreed: bool) -> list[str]:
    """The purposes that need consent for this submission; refused (422) when there are some and no consent."""
    wanted = [p for p in purposes if p in PURPOSES]
    if wanted and not agreed:
        raise ValidationFailed(CONSENT_REQUIRED, code="consent_required")
    return wanted


async def record(*, customer_id: int, purposes: Iterable[str], source: str = "customer_h5") -> list[ConsentRecord]:
    """Record the customer's consent, one row per purpose, with the current text version."""
    return [await ConsentRecord.create(customer_id=customer_id, purpose=p, text_version=CONSENT_VERSION,
                                       source=source) for p in purposes]


async def has_consent(*, customer_id: int, purpose: str) -> bool:
    """Whether the customer ever agreed to this purpose with the current text version."""
    return await ConsentRecord.filter(customer_id=customer_id, purpose=purpose,
                                      text_version=CONSENT_VERSION).exists()
