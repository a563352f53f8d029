"""The floor of a WeChat callback: verify, decrypt, insert one row, answer `success`; and a bare route beside it.

    python -m app.listen bench.minimal_callback:app --workers N       # the minimal handler (DATABASE_URL, WECHAT_*)
    python -m app.listen bench.minimal_callback:bare_app --workers N  # the bare route: reads the body, answers success

(`app.listen` serves them as `gongdan serve` serves the desk: uvicorn, each web process on its own socket.)

`app` does what any correct safe-mode callback endpoint must do and nothing more: the 4-value `msg_signature`
(compared in constant time) and the timestamp window, AES decryption with wechatpy's `WeChatCrypto` (as
app.wecom.callback does), defusedxml parsing of the envelope and of the plaintext (for MsgId), one INSERT into its
own table `bench_minimal_inbox` (UNIQUE dedupe key = MsgId) through an aiomysql pool sized like gongdan's
(DB_POOL_SIZE, default 64), and `success` (also for a duplicate). No ORM, no queue, no middleware, no logging.

`bare_app` answers the same POST with `success` without looking at it: the ceiling of uvicorn and the load client
for this request shape on this machine. Both serve `/readyz` for the benchmark harness.
"""

from __future__ import annotations

import hmac
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import defusedxml
import defusedxml.ElementTree as DET
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

TABLE = "bench_minimal_inbox"
CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS `{TABLE}` (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    dedupe_key VARCHAR(191) NOT NULL,
    payload LONGTEXT NOT NULL,
    received_at DATETIME(6) NOT NULL,
    UNIQUE KEY uniq_{TABLE}_dedupe (dedupe_key)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"""
INSERT = f"INSERT INTO `{TABLE}` (dedupe_key, payload, received_at) VALUES (%s, %s, UTC_TIMESTAMP(6))"
MAX_BODY_BYTES = 64 * 1024
DUPLICATE_KEY = 1062

SUCCESS = PlainTextResponse("success")


def _refuse(reason: str, status: int) -> Response:
    return PlainTextResponse(reason, status_code=status)


def _conn_args(database_url: str) -> dict[str, Any]:
    parts = urlsplit(database_url)
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306, "user": parts.username or "root",
            "password": parts.password or "", "db": parts.path.lstrip("/"), "charset": "utf8mb4"}


def _parse(text: str | bytes) -> ET.Element:
    root: ET.Element = DET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    return root


class Handler:
    """The callback endpoint and its per-process state (crypto, pool)."""

    def __init__(self) -> None:
        self.appid = os.environ["WECHAT_APP_ID"]
        self.token = os.environ["WECHAT_TOKEN"]
        self.crypto = WeChatCrypto(self.token, os.environ["WECHAT_AES_KEY"], self.appid)
        self.prp = PrpCrypto(self.crypto.key)
        self.window = int(os.environ.get("CALLBACK_WINDOW_SECONDS", "300"))
        self.pool: aiomysql.Pool | None = None

    async def open(self) -> None:
        size = int(os.environ.get("DB_POOL_SIZE", "64"))
        self.pool = await aiomysql.create_pool(minsize=1, maxsize=size, autocommit=True,
                                               **_conn_args(os.environ["DATABASE_URL"]))
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(CREATE_TABLE)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

    async def receive(self, request: Request) -> Response:
        params = request.query_params
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _refuse("body_too_large", 413)
        timestamp, nonce = params.get("timestamp", ""), params.get("nonce", "")
        if params.get("encrypt_type") != "aes" or not timestamp.isdigit() or not nonce:
            return _refuse("missing_parameter", 400)
        try:
            encrypt = _parse(body).findtext("Encrypt") or ""
        except (ET.ParseError, ValueError, defusedxml.DefusedXmlException):
            return _refuse("malformed_body", 400)
        signer = WeChatSigner()
        signer.add_data(self.token, timestamp, nonce, encrypt)
        given = params.get("msg_signature", "")
        if not encrypt or not hmac.compare_digest(signer.signature.encode(), given.encode("utf-8", "replace")):
            return _refuse("bad_signature", 403)
        if abs(time.time() - int(timestamp)) > self.window:
            return _refuse("stale_timestamp", 403)
        try:
            plaintext: str = self.prp.decrypt(encrypt, self.appid)
            msg_id = _parse(plaintext).findtext("MsgId") or ""
        except InvalidAppIdException:
            return _refuse("wrong_receiver", 400)
        except (ET.ParseError, ValueError, UnicodeDecodeError, IndexError, defusedxml.DefusedXmlException):
            return _refuse("decrypt_failed", 400)
        if not msg_id:
            return SUCCESS  # events are not this baseline's business
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                await cur.execute(INSERT, (f"wechat_mp:{self.appid}:msg:{msg_id}", plaintext))
            except aiomysql.IntegrityError as exc:
                if exc.args and exc.args[0] != DUPLICATE_KEY:
                    raise
        return SUCCESS


handler: Handler | None = None


async def _receive(request: Request) -> Response:
    assert handler is not None
    return await handler.receive(request)


async def readyz(request: Request) -> Response:
    return PlainTextResponse("ok")


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    global handler
    handler = Handler()
    await handler.open()
    try:
        yield
    finally:
        await handler.close()


app = Starlette(routes=[Route("/callbacks/wechat", _receive, methods=["POST"]), Route("/readyz", readyz)],
                lifespan=_lifespan)


async def _bare(request: Request) -> Response:
    await request.body()
    return SUCCESS


bare_app = Starlette(routes=[Route("/callbacks/wechat", _bare, methods=["POST"]), Route("/readyz", readyz)])
