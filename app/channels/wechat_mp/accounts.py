"""Official Account credentials: the env-configured default account and those added with `gongdan channel add`.

Secrets are kept Fernet-encrypted in ChannelAccount.secrets_enc. The callback path reads them from an in-process
cache so that verifying a callback costs no database query.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from app.channels.models import ChannelAccount
from app.errors import ConfigError
from app.security.crypto import decrypt_field, encrypt_field
from app.settings import Settings, get_settings
from app.wecom.callback import CallbackCredentials
from app.wecom.mp import MPApi, mp_api_for

KIND = "wechat_mp"
DEFAULT_KEY = "default"
CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class MPAccount:
    account_id: int
    key: str
    appid: str
    secret: str
    template_id: str
    template_fields: dict[str, str]
    callback: CallbackCredentials


#: the default mapping of our template fields to the template's data keys
DEFAULT_TEMPLATE_FIELDS = {"first": "subject", "keyword1": "number", "keyword2": "status", "keyword3": "time",
                           "remark": "remark"}

_cache: dict[str, tuple[float, MPAccount | None]] = {}


async def upsert_account(*, key: str, name: str, appid: str, secret: str, token: str, aes_key: str,
                         previous_aes_key: str = "", template_id: str = "", is_default: bool = False,
                         accept_plain: bool = False) -> ChannelAccount:
    """Create or update an Official Account channel (``accept_plain``: take plain mode despite an AES key)."""
    if aes_key and len(aes_key) != 43:
        raise ConfigError("the EncodingAESKey must have 43 characters")
    secrets = {"secret": secret, "token": token, "aes_key": aes_key, "previous_aes_key": previous_aes_key}
    account, _ = await ChannelAccount.update_or_create(
        key=key,
        defaults={
            "kind": KIND, "name": name, "is_default": is_default, "active": True,
            "config": {"appid": appid, "template_id": template_id, "template_fields": DEFAULT_TEMPLATE_FIELDS,
                       "accept_plain": accept_plain},
            "secrets_enc": encrypt_field(json.dumps(secrets)),
        },
    )
    _cache.pop(key, None)
    return account


async def ensure_env_account(settings: Settings | None = None) -> ChannelAccount | None:
    """Mirror the WECHAT_* settings into the 'default' account row (start-up)."""
    s = settings or get_settings()
    if not s.wechat.configured:
        return None
    return await upsert_account(
        key=DEFAULT_KEY, name="公众号", appid=s.wechat.app_id, secret=str(s.wechat.app_secret),
        token=str(s.wechat.token), aes_key=str(s.wechat.aes_key), previous_aes_key=str(s.wechat.previous_aes_key),
        template_id=s.wechat.template_id, is_default=True, accept_plain=s.wechat.accept_plain,
    )


#: from_row's accounts by the row's stored content (a changed row is another key): decrypting the secrets cost more
#: CPU than the rest of a new follower's first message's account handling
_by_content: dict[tuple[int, str, str | None, str], MPAccount] = {}


def from_row(row: ChannelAccount) -> MPAccount:
    """An account as the API and the callbacks use it, from its row (secrets decrypted once per row content)."""
    key = (row.id, row.key, row.secrets_enc, json.dumps(row.config, sort_keys=True, default=str))
    account = _by_content.get(key)
    if account is None:
        if len(_by_content) >= 64:
            _by_content.clear()
        account = _by_content[key] = _from_row(row)
    return account


def _from_row(row: ChannelAccount) -> MPAccount:
    secrets = json.loads(decrypt_field(row.secrets_enc)) if row.secrets_enc else {}
    appid = str(row.config.get("appid", ""))
    return MPAccount(
        account_id=row.id,
        key=row.key,
        appid=appid,
        secret=secrets.get("secret", ""),
        template_id=str(row.config.get("template_id", "")),
        template_fields=dict(row.config.get("template_fields") or DEFAULT_TEMPLATE_FIELDS),
        callback=CallbackCredentials(
            token=secrets.get("token", ""), aes_key=secrets.get("aes_key") or None, receive_id=appid,
            previous_aes_key=secrets.get("previous_aes_key") or None,
            accept_plain=bool(row.config.get("accept_plain", False)),
        ),
    )


async def by_key(key: str) -> MPAccount | None:
    """The active account for a callback URL key (cached for a minute)."""
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = await ChannelAccount.get_or_none(key=key, kind=KIND, active=True)
    account = _from_row(row) if row is not None else None
    _cache[key] = (now + CACHE_SECONDS, account)
    return account


async def by_id(account_id: int) -> MPAccount | None:
    """The account of an outbox row or a message."""
    row = await ChannelAccount.get_or_none(id=account_id, kind=KIND)
    return _from_row(row) if row is not None else None


def api(account: MPAccount) -> MPApi:
    """The API client of an account (one per appid in this process, token shared across processes)."""
    return mp_api_for(account.appid, account.secret, get_settings())


def forget_cache() -> None:
    _cache.clear()
    _by_content.clear()
