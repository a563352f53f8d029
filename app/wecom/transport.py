"""The event loop's HTTP client for WeCom's JSON API (aiohttp): one connection pool per running loop.

Follows 服务端API https://developer.work.weixin.qq.com/document/path/90664 (HTTPS, JSON bodies, ``access_token`` in
the query string). ``SharedTokenClient.request_async`` sends through it; what an answer means (errcodes, the one
token refresh) stays wechatpy's and ours, as for the calls made with wechatpy's ``requests`` session in a thread.

Why not that session in a thread, as the other calls: a ``WeComApi`` call cost 0.85 ms of CPU there against
0.30 ms here (``batch/get_by_user`` pages of 100 contacts, decoding included, measured alone against the simulator),
and during the first external-contact sync the thread took 5–6 s of CPU for 2,406 calls while it contended for the
GIL with the event loop applying the pages (issue 15).

A session belongs to the loop it was made in (each test runs its own loop), so there is one per loop, made on
first use and closed by ``close`` (``app.setup.shutdown``: web, worker and command ends).
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp

__all__ = ["close", "session"]

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def session() -> aiohttp.ClientSession:
    """The running loop's client session: keep-alive connections reused across calls."""
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop)
    if found is None or found.closed:
        # proxies are the client's to choose (resolved once from the environment, as for its requests session)
        found = _sessions[loop] = aiohttp.ClientSession(trust_env=False, raise_for_status=False)
    return found


async def close() -> None:
    """Close the running loop's session, if it made one."""
    found = _sessions.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
