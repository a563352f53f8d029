"""Sites as channel accounts: the site key, its name and the origins allowed to embed the widget."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.channels.models import ChannelAccount
from app.errors import ConfigError

KIND = "webchat"


def normalise_origin(origin: str) -> str:
    """``https://Shop.example.com/`` -> ``https://shop.example.com`` (scheme://host[:port])."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an origin: {origin!r} (expected https://host)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


async def upsert_account(*, key: str, name: str = "", origins: list[str], bot: bool = True,
                         group_id: int | None = None) -> ChannelAccount:
    """Create or update a web chat site (the bot answers first unless ``bot`` is False)."""
    if not origins:
        raise ConfigError("a web chat site needs at least one allowed origin")
    config = {"origins": sorted({normalise_origin(o) for o in origins}), "bot": bot, "group_id": group_id}
    account, _ = await ChannelAccount.update_or_create(
        key=key, defaults={"kind": KIND, "name": name or key, "active": True, "config": config})
    return account


async def site(key: str) -> ChannelAccount | None:
    """The active web chat site of a key."""
    return await ChannelAccount.get_or_none(key=key, kind=KIND, active=True)


def origin_allowed(account: ChannelAccount, origin: str | None) -> bool:
    """Whether a browser page of ``origin`` may talk to this site (no Origin header: refused)."""
    if not origin:
        return False
    try:
        wanted = normalise_origin(origin)
    except ConfigError:
        return False
    return wanted in set((account.config or {}).get("origins") or [])
