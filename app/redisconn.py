"""Redis connections from REDIS_URL: a plain server, or a master found through Redis Sentinel.

    redis://[user:password@]host:6379/0          one server (also rediss:// and unix://)
    redis+sentinel://[user:password@]s1:26379,s2:26379/mymaster/0[?sentinel_password=...]
                                                 the master named `mymaster`, asked of the sentinels listed
    rediss+sentinel://...                        the same over TLS

With Sentinel the clients ask the sentinels for the current master on every new connection (redis-py's
``Sentinel.master_for``; arq's ``RedisSettings(sentinel=True)``), so a failover needs no restart: connections to the
old master fail, and the next ones go to the promoted replica.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from arq.connections import RedisSettings

from app.batching import GroupCommit
from app.errors import ConfigError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES)
#: what a sentinel URL names when it names no master
DEFAULT_MASTER = "mymaster"


@dataclass(frozen=True)
class SentinelTarget:
    """A master behind sentinels, as a sentinel REDIS_URL names it."""

    sentinels: list[tuple[str, int]] = field(default_factory=list)
    master: str = DEFAULT_MASTER
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel(url: str) -> bool:
    """Whether REDIS_URL names a master behind sentinels."""
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def validate(url: str) -> str:
    """``url`` when it is a REDIS_URL we can use, else ConfigError."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError("REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or "
                          "rediss+sentinel://")
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel(url)
    return url


def parse_sentinel(url: str) -> SentinelTarget:
    """The sentinels, master name and database of a ``redis+sentinel://`` URL."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for item in filter(None, netloc.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
            host, port = item, ""
        try:
            sentinels.append((host.strip("[]"), int(port) if port else 26379))
        except ValueError:
            raise ConfigError(f"REDIS_URL: bad sentinel port in {item!r}") from None
    if not sentinels:
        raise ConfigError("REDIS_URL: a sentinel URL lists at least one sentinel host:port")
    path = [p for p in parts.path.split("/") if p]
    master = unquote(path[0]) if path else DEFAULT_MASTER
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise ConfigError("REDIS_URL: the database after the master name must be a number") from None
    query = parse_qs(parts.query)
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    return SentinelTarget(
        sentinels=sentinels, master=master, db=db, username=unquote(username) or None,
        password=unquote(password) or None, sentinel_password=next(iter(query.get("sentinel_password", [])), None),
        ssl=parts.scheme.lower().startswith("rediss"),
    )


def redis_settings_from_url(url: str) -> RedisSettings:
    """arq's RedisSettings for REDIS_URL (sentinel-aware)."""
    if not is_sentinel(url):
        return RedisSettings.from_dsn(url)
    t = parse_sentinel(url)
    # arq passes host (the sentinel list) to redis-py's Sentinel and asks it for `sentinel_master`
    return RedisSettings(host=list(t.sentinels), sentinel=True, sentinel_master=t.master, database=t.db,
                         username=t.username, password=t.password, ssl=t.ssl)


def _sentinel_kwargs(t: SentinelTarget) -> dict[str, Any]:
    return {"password": t.sentinel_password} if t.sentinel_password else {}


def async_client(url: str) -> Any:
    """A ``redis.asyncio.Redis`` for REDIS_URL (through the sentinels when it names them)."""
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

    if not is_sentinel(url):
        return Redis.from_url(url)
    t = parse_sentinel(url)
    sentinel = Sentinel(t.sentinels, sentinel_kwargs=_sentinel_kwargs(t), ssl=t.ssl)  # type: ignore[no-untyped-call]
    return sentinel.master_for(t.master, db=t.db, username=t.username,  # type: ignore[no-untyped-call]
                               password=t.password)


def sync_client(url: str) -> Any:
    """A synchronous ``redis.Redis`` for REDIS_URL (wechatpy's token storage needs one)."""
    from redis import Redis
    from redis.sentinel import Sentinel

    if not is_sentinel(url):
        return Redis.from_url(url)
    t = parse_sentinel(url)
    sentinel = Sentinel(t.sentinels, sentinel_kwargs=_sentinel_kwargs(t), ssl=t.ssl)  # type: ignore[no-untyped-call]
    return sentinel.master_for(t.master, db=t.db, username=t.username,  # type: ignore[no-untyped-call]
                               password=t.password)


class Pipeliner(GroupCommit[tuple[Any, ...], Any]):
    """Redis commands that concurrent requests issue while a round trip is in flight go together in the next one,
    as one pipeline (`app.batching.GroupCommit`)."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client

    async def execute(self, *args: Any) -> Any:
        """Run one command (``"SET", key, value, "NX"``) in the next batch and return its answer."""
        return await self.add(args)

    async def _write(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            self._fail(batch, exc)
            return
        for (_, fut), answer in zip(batch, answers, strict=True):
            if fut.done():
                continue
            if isinstance(answer, Exception):
                fut.set_exception(answer)
            else:
                fut.set_result(answer)
