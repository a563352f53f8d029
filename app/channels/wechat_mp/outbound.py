"""Delivery to Official Account followers: customer-service messages inside the 48-hour window, template
messages outside it (客服消息 / 模板消息 pages, see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.channels.base import DeliveryResult
from app.channels.wechat_mp import accounts
from app.errors import PermanentChannelError

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage

#: customer-service sending refused for window or quota reasons: a template message still gets through
WINDOW_CODES = frozenset({"mp_window_closed", "mp_quota_exceeded"})


def template_data(account: accounts.MPAccount, fields: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Map our template fields (number, status, time, subject, remark) to the account's template keys."""
    return {key: {"value": str(fields.get(ours, ""))[:200]} for key, ours in account.template_fields.items()}


class WeChatMPAdapter:
    kind = "wechat_mp"
    #: custom/send and template/send take no idempotency key: a send that timed out may have reached the customer,
    #: so the outbox marks it "unknown" for staff to resend instead of sending it again blindly
    resend_safe = False

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        account_id = message.channel_account_id  # type: ignore[attr-defined]
        account = await accounts.by_id(account_id) if account_id is not None else None
        if account is None:
            raise PermanentChannelError("the Official Account of this message is gone", code="no_account")
        if not message.recipient:
            raise PermanentChannelError("the customer has no openid on this account", code="no_recipient")
        payload = message.payload
        if payload.get("type") == "template":
            return await self._template(account, message.recipient, payload)
        try:
            await accounts.api(account).send_text(message.recipient, str(payload.get("text", "")))
        except PermanentChannelError as exc:
            if exc.code in WINDOW_CODES and payload.get("template") and account.template_id:
                result = await self._template(account, message.recipient, payload)
                result.detail.update(fallback="template", reason=exc.code)
                return result
            raise
        return DeliveryResult(detail={"sent_as": "custom"})

    async def _template(self, account: accounts.MPAccount, openid: str, payload: dict[str, Any]) -> DeliveryResult:
        if not account.template_id:
            raise PermanentChannelError("no template configured for this Official Account", code="no_template")
        template = payload.get("template") or {}
        msgid = await accounts.api(account).send_template(
            openid, account.template_id, template_data(account, template.get("fields", {})), template.get("url")
        )
        return DeliveryResult(provider_msg_id=msgid, detail={"sent_as": "template"})
