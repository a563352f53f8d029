"""Jobs of the Official Account channel: unionid lookup (merging customers across accounts) and media download."""

from __future__ import annotations

import mimetypes
import uuid
from typing import Any

from app.channels.models import ChannelAccount
from app.channels.wechat_mp import accounts
from app.conversations.models import Message
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.db import dialect_sql
from app.logs import get_logger
from app.queue import enqueue
from app.settings import get_settings
from app.timeutil import local, utcnow

log = get_logger(__name__)


async def sync_mp_user(ctx: dict[str, Any], account_id: int, openid: str) -> str:
    """Fetch user/info; a unionid joins this follower to the same person on other accounts and channels."""
    account = await accounts.by_id(account_id)
    if account is None:
        return "no-account"
    identity = await CustomerIdentity.get_or_none(kind="mp_openid", scope=account.key, value=openid)
    if identity is None or "unionid_checked" in identity.data:
        return "skipped"
    customer = await customers.find_by_identity(kind="mp_openid", scope=account.key, value=openid)
    assert customer is not None
    await _learn_unionid(account=account, identity=identity, customer=customer)
    return "done"


#: once per new follower, on the path of their first message: SQL written once (`app.db.dialect_sql`), as tortoise's
#: query building cost more CPU than the round trip
_SET_DATA = "UPDATE {q}customer_identity{q} SET {q}data{q}={m} WHERE {q}id{q}={m}"


def _checked(data: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """An openid identity's data once user/info has answered for it."""
    return {**data, "unionid_checked": True, "subscribed": bool(info.get("subscribe", 0))}


async def user_info(*, row: ChannelAccount, openid: str) -> dict[str, Any] | None:
    """user/info for a follower, None when the platform cannot say now (the usual path asks again, then the job)."""
    try:
        return await accounts.api(accounts.from_row(row)).get_user(openid)
    except Exception as exc:  # slow or down: routing must not wait for it
        log.info("wechat_mp.identify_deferred", error=type(exc).__name__)
        return None


async def new_follower(*, row: ChannelAccount, openid: str, info: dict[str, Any]) -> list[customers.IdentityRow] | None:
    """The identities of a sender nobody holds yet, from user/info's answer (openid, and unionid when bound): None
    when the unionid names a person we know (they are merged the usual way)."""
    found = [customers.IdentityRow(id=0, customer_id=0, kind="mp_openid", scope=row.key, value=openid,
                                   data=_checked({}, info))]
    unionid = info.get("unionid")
    if unionid:
        if await customers.identity_row(kind="unionid", value=unionid) is not None:
            return None
        found.append(customers.IdentityRow(id=0, customer_id=0, kind="unionid", scope="", value=unionid, data={}))
    return found


async def _learn_unionid(*, account: accounts.MPAccount, identity: CustomerIdentity | customers.IdentityRow,
                         customer: Customer, info: dict[str, Any] | None = None) -> Customer:
    """Read user/info once for this follower (``info``: its answer, when the caller has it); a unionid merges them
    with the person it names. The customer after."""
    if info is None:
        info = await accounts.api(account).get_user(identity.value)
    unionid = info.get("unionid")
    data = _checked(identity.data, info)
    conn: Any = CustomerIdentity._meta.db
    stored = CustomerIdentity._meta.fields_map["data"].to_db_value(data, CustomerIdentity)
    await conn.execute_query(dialect_sql(_SET_DATA, conn.capabilities.dialect), [stored, identity.id])
    identity.data = data
    if not unionid:
        return customer
    merged = await customers.add_identity(customer=customer, kind="unionid", value=unionid)
    log.info("wechat_mp.unionid", customer_id=merged.id, merged=merged.id != customer.id)
    return merged


async def identify_follower(*, account_id: int, identity: CustomerIdentity | customers.IdentityRow,
                            customer: Customer, row: ChannelAccount | None = None,
                            info: dict[str, Any] | None = None) -> Customer:
    """Learn a new follower's unionid before their first message is routed (merging them with the person we
    know); when the platform cannot say now, the job retries in the background and intake goes on as they are
    (``row``: the account's row the caller holds already, spared a read; ``info``: user/info's answer, if asked)."""
    account = accounts.from_row(row) if row is not None and row.kind == accounts.KIND else await accounts.by_id(
        account_id)
    if account is None:
        return customer
    try:
        return await _learn_unionid(account=account, identity=identity, customer=customer, info=info)
    except Exception as exc:  # the platform is slow or down: routing must not wait for it
        log.info("wechat_mp.identify_deferred", error=type(exc).__name__)
        await enqueue("sync_mp_user", account_id, identity.value, job_id=f"mpuser:{account_id}:{identity.value}")
        return customer


async def download_mp_media(ctx: dict[str, Any], message_id: int) -> str:
    """Download a message's media into storage and link it to the message (skips what is already stored)."""
    message = await Message.get_or_none(id=message_id)
    if message is None or message.channel_account_id is None:  # type: ignore[attr-defined]
        return "skipped"
    account = await accounts.by_id(message.channel_account_id)  # type: ignore[attr-defined]
    if account is None:
        return "skipped"
    media = list(message.media or [])
    changed = False
    root = get_settings().media_dir
    for item in media:
        if item.get("path") or not item.get("provider_media_id"):
            continue
        content, content_type, filename = await accounts.api(account).download_media(item["provider_media_id"])
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        rel = f"{local(utcnow()):%Y/%m}/{uuid.uuid4().hex}{ext}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        item.update(path=rel, content_type=content_type, size=len(content), filename=filename)
        changed = True
    if changed:
        await Message.filter(id=message.id).update(media=media)
    return "done" if changed else "skipped"
