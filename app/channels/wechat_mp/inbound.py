"""Official Account payloads → InboundMessage (pure), and the processor the inbound job calls for them.

Formats: 接收普通消息 / 接收事件推送 (see the package docstring); TEMPLATESENDJOBFINISH carries `MsgID` (capital D).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError

from app.channels.base import InboundMessage, MediaRef
from app.channels.models import ChannelAccount, InboundEvent, bounded_dedupe_key
from app.logs import get_logger
from app.wecom.callback import parse_xml

if TYPE_CHECKING:
    from app.intake import Outcome

log = get_logger(__name__)

KNOWN_MSG_TYPES = frozenset({"text", "image", "voice", "video", "shortvideo", "location", "link", "event"})
KNOWN_EVENTS = frozenset({"subscribe", "unsubscribe", "CLICK", "VIEW", "SCAN", "TEMPLATESENDJOBFINISH"})
#: platform event → our event name
EVENTS = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "CLICK": "menu_click", "VIEW": "menu_view",
          "SCAN": "scan", "TEMPLATESENDJOBFINISH": "template_finished"}
MEDIA_TYPES = frozenset({"image", "voice", "video", "shortvideo"})


def dedupe_key(appid: str, fields: dict[str, str]) -> str:
    """MsgId for messages; the template's MsgID for delivery reports; FromUserName+CreateTime+Event otherwise.

    Keys longer than the column are hashed (``bounded_dedupe_key``), never truncated.
    """
    if fields.get("MsgType") != "event" and fields.get("MsgId"):
        return bounded_dedupe_key(f"wechat_mp:{appid}:msg:{fields['MsgId']}")
    if fields.get("Event") == "TEMPLATESENDJOBFINISH":
        return bounded_dedupe_key(f"wechat_mp:{appid}:tpl:{fields.get('MsgID', '')}")
    return bounded_dedupe_key("wechat_mp:{}:evt:{}:{}:{}:{}".format(
        appid, fields.get("FromUserName", ""), fields.get("CreateTime", ""), fields.get("Event", ""),
        fields.get("EventKey", "")[:40],
    ))


def _created(fields: dict[str, str]) -> datetime:
    try:
        return datetime.fromtimestamp(int(fields.get("CreateTime", "0")), UTC)
    except ValueError:
        return datetime.now(UTC)


def _text_of(msg_type: str, f: dict[str, str]) -> str:
    if msg_type == "text":
        return f.get("Content", "")
    if msg_type == "voice":
        return f.get("Recognition", "") or "[语音]"
    if msg_type == "image":
        return "[图片]"
    if msg_type in ("video", "shortvideo"):
        return "[视频]"
    if msg_type == "location":
        return f"[位置] {f.get('Label', '')} ({f.get('Location_X', '')}, {f.get('Location_Y', '')})"
    if msg_type == "link":
        return f"[链接] {f.get('Title', '')} {f.get('Url', '')}"
    return ""


def to_inbound(fields: dict[str, str], account_id: int) -> InboundMessage:
    """Map one decrypted payload to the channel-neutral message."""
    msg_type = fields.get("MsgType", "")
    event = EVENTS.get(fields.get("Event", "")) if msg_type == "event" else None
    media = []
    if msg_type in MEDIA_TYPES and fields.get("MediaId"):
        kind = "video" if msg_type == "shortvideo" else msg_type
        media.append(MediaRef(kind=kind, provider_media_id=fields["MediaId"], url=fields.get("PicUrl", "")))
    data: dict[str, Any] = {}
    if msg_type == "location":
        data = {"lat": fields.get("Location_X"), "lng": fields.get("Location_Y"), "label": fields.get("Label")}
    elif msg_type == "link":
        data = {"title": fields.get("Title"), "url": fields.get("Url"), "description": fields.get("Description")}
    elif msg_type == "voice":
        data = {"format": fields.get("Format")}
    return InboundMessage(
        channel="wechat_mp",
        channel_account_id=account_id,
        sender_kind="mp_openid",
        sender_id=fields.get("FromUserName", ""),
        msg_type="event" if event else msg_type,
        provider_msg_id=fields.get("MsgId") if msg_type != "event" else None,
        created_at=_created(fields),
        text=_text_of(msg_type, fields),
        media=media,
        event=event,
        event_key=fields.get("EventKey") or None,
        data=data,
    )


async def process(event: InboundEvent, account: ChannelAccount | None) -> str:
    """Handle one stored Official Account callback; idempotent."""
    from app import intake
    from app.channels.inbound_jobs import in_order
    from app.channels.wechat_mp import jobs as mp_jobs
    from app.customers import service as customers
    from app.customers.models import CustomerIdentity
    from app.outbox import service as outbox
    from app.queue import enqueue

    if account is None:
        return "ignored"
    fields = parse_xml(event.payload)
    inbound = to_inbound(fields, account.id)
    inbound.data["inbound_event_id"] = event.id

    if inbound.event == "template_finished":
        updated = await outbox.record_delivery_report(provider_msg_id=fields.get("MsgID", ""),
                                                      state=fields.get("Status", ""))
        return "done" if updated else "ignored"

    async with in_order(f"{account.id}:{inbound.sender_id}"):
        known = await customers.identity_row(kind="mp_openid", scope=account.key, value=inbound.sender_id)
        info: dict[str, Any] | None = None
        if known is None and inbound.event is None:
            info = await mp_jobs.user_info(row=account, openid=inbound.sender_id)
            first = await _first_contact(inbound=inbound, account=account, info=info) if info is not None else None
            if first is not None:
                return await _after(first)
        identity, created = (known, None) if known is not None else await customers.resolve_identity_ref(
            kind="mp_openid", scope=account.key, value=inbound.sender_id)
        if inbound.event in ("subscribe", "unsubscribe"):
            subscribed = inbound.event == "subscribe"
            changed_at = inbound.created_at.isoformat()
            await CustomerIdentity.filter(id=identity.id).update(
                data={**identity.data, "subscribed": subscribed, "subscribe_changed_at": changed_at})
        if inbound.event in ("subscribe", "unsubscribe", "menu_view", "scan"):
            if "unionid_checked" not in identity.data and inbound.event != "unsubscribe":
                await enqueue("sync_mp_user", account.id, inbound.sender_id,
                              job_id=f"mpuser:{account.id}:{inbound.sender_id}")
            customer = created or await customers.load(customer_id=identity.customer_id)
            log.info("wechat_mp.event", kind=inbound.event, customer_id=customer.id)
            return "done"
        if "unionid_checked" not in identity.data:
            # a first message: learn the unionid now, so routing sees the person we already know (a VIP from
            # another account or from WeCom) before it decides; the job is ours, the API call is allowed here
            customer = created or await customers.load(customer_id=identity.customer_id)
            # user/info's answer when the first-contact path asked already (a unionid we know): not asked twice
            customer = await mp_jobs.identify_follower(account_id=account.id, identity=identity, customer=customer,
                                                       row=account, info=info)
            # a follower created for this message whose unionid named nobody we know: nothing of theirs to read
            first_contact = created is not None and customer.id == created.id
            outcome = await intake.receive(inbound=inbound, account=account, customer=customer,
                                           first_contact=first_contact)
        else:
            # a known follower: intake reads the customer under the row lock it takes anyway
            outcome = await intake.receive(inbound=inbound, account=account, customer_id=identity.customer_id)
    return await _after(outcome)


async def _first_contact(*, inbound: InboundMessage, account: ChannelAccount, info: dict[str, Any]) -> Outcome | None:
    """A message from a sender nobody holds: when user/info names nobody we know either, the customer and their
    identities are written in the message's own transaction (None: the usual path, which merges)."""
    from app import intake
    from app.channels.wechat_mp import jobs as mp_jobs

    identities = await mp_jobs.new_follower(row=account, openid=inbound.sender_id, info=info)
    if identities is None:
        return None
    try:
        return await intake.receive(inbound=inbound, account=account, new_identities=identities)
    except IntegrityError:
        return None  # someone took the openid or the unionid meanwhile (nothing was written): the usual path


async def _after(outcome: Outcome) -> str:
    from app.queue import enqueue

    if outcome.message is not None and not outcome.duplicate and outcome.message.media:
        await enqueue("download_mp_media", outcome.message.id, job_id=f"mpmedia:{outcome.message.id}")
    return "done"
