"""`gongdan channel ...`: add and list channel accounts (more Official Accounts beside the env-configured one)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def _add_wechat_mp(args: argparse.Namespace) -> None:
    from app.channels.wechat_mp.accounts import upsert_account
    from app.cli import _settings
    from app.db import close_db, init_db

    settings = _settings()

    async def run() -> Any:
        await init_db(settings)
        try:
            return await upsert_account(
                key=args.key, name=args.name or args.key, appid=args.app_id, secret=args.app_secret,
                token=args.token, aes_key=args.aes_key or "", template_id=args.template_id or "",
            )
        finally:
            await close_db()

    account = asyncio.run(run())
    url = f"{settings.public_url}/callbacks/wechat/{account.key}"
    print(f"added wechat-mp account {account.key!r}; callback URL: {url}")


def _add_email(args: argparse.Namespace) -> None:
    from app.channels.email.accounts import upsert_account
    from app.cli import _settings
    from app.db import close_db, init_db

    settings = _settings()

    async def run() -> Any:
        await init_db(settings)
        try:
            return await upsert_account(
                key=args.key, name=args.name or args.address, address=args.address, imap_host=args.imap_host,
                imap_port=args.imap_port, smtp_host=args.smtp_host, smtp_port=args.smtp_port,
                username=args.username or args.address, password=args.password,
                imap_security=args.imap_security or "", smtp_security=args.smtp_security or "",
                folder=args.folder,
            )
        finally:
            await close_db()

    account = asyncio.run(run())
    print(f"added email account {account.key!r} ({account.config['address']}); the worker polls it every minute")


def _add_webchat(args: argparse.Namespace) -> None:
    from app.channels.webchat.accounts import upsert_account
    from app.cli import _settings
    from app.db import close_db, init_db

    settings = _settings()

    async def run() -> Any:
        await init_db(settings)
        try:
            return await upsert_account(key=args.key, name=args.name, origins=list(args.origin),
                                        bot=not args.no_bot, group_id=args.group_id)
        finally:
            await close_db()

    account = asyncio.run(run())
    base = settings.public_url.rstrip("/")
    print(f"added webchat site {account.key!r} ({', '.join(account.config['origins'])}); embed:")
    print(f'<script src="{base}/static/webchat/widget.js" data-site="{account.key}" async></script>')


def _list(args: argparse.Namespace) -> None:
    from app.channels.models import ChannelAccount
    from app.cli import _settings
    from app.db import close_db, init_db

    settings = _settings()

    async def run() -> list[ChannelAccount]:
        await init_db(settings)
        try:
            return await ChannelAccount.all().order_by("id")
        finally:
            await close_db()

    for row in asyncio.run(run()):
        print(f"{row.id}\t{row.kind}\t{row.key}\t{row.name}\t{'active' if row.active else 'inactive'}")


def add_channel_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the channel subcommands."""
    p = sub.add_parser("channel", help="channel accounts (Official Accounts, ...)")
    csub = p.add_subparsers(dest="channel_command", required=True)
    add = csub.add_parser("add", help="add or update a channel account")
    asub = add.add_subparsers(dest="channel_kind", required=True)
    mp = asub.add_parser("wechat-mp", help="an Official Account (公众号); callback URL /callbacks/wechat/KEY")
    mp.add_argument("--key", required=True, help="slug used in the callback URL")
    mp.add_argument("--name", default="")
    mp.add_argument("--app-id", required=True)
    mp.add_argument("--app-secret", required=True)
    mp.add_argument("--token", required=True, help="the callback Token")
    mp.add_argument("--aes-key", default="", help="the 43-character EncodingAESKey (safe/compat mode)")
    mp.add_argument("--template-id", default="", help="template for updates outside the 48-hour window")
    mp.set_defaults(func=_add_wechat_mp)
    em = asub.add_parser("email", help="a mailbox: IMAP in, SMTP out, every mail a ticket")
    em.add_argument("--key", required=True, help="slug naming the mailbox (the customers' identity scope)")
    em.add_argument("--name", default="", help="the sender name customers see")
    em.add_argument("--address", required=True)
    em.add_argument("--imap-host", required=True)
    em.add_argument("--imap-port", type=int, default=993)
    em.add_argument("--imap-security", choices=["ssl", "starttls", "none"], default="",
                    help="default by port: 993 ssl, 143 starttls")
    em.add_argument("--smtp-host", required=True)
    em.add_argument("--smtp-port", type=int, default=465)
    em.add_argument("--smtp-security", choices=["ssl", "starttls", "none"], default="",
                    help="default by port: 465 ssl, 587/25 starttls")
    em.add_argument("--username", default="", help="the login (default: the address)")
    em.add_argument("--password", required=True, help="the password or the client authorisation code (授权码)")
    em.add_argument("--folder", default="INBOX")
    em.set_defaults(func=_add_email)
    wc = asub.add_parser("webchat", help="a website chat widget; WebSocket /webchat/ws?site=KEY")
    wc.add_argument("--key", required=True, help="the site key in the embed snippet")
    wc.add_argument("--name", default="", help="the name the widget shows")
    wc.add_argument("--origin", action="append", required=True,
                    help="an origin allowed to embed the widget, e.g. https://shop.example.com (repeatable)")
    wc.add_argument("--group-id", type=int, default=None, help="the group whose calendar says when we are open")
    wc.add_argument("--no-bot", action="store_true", help="people answer first (the bot stays out)")
    wc.set_defaults(func=_add_webchat)
    ls = csub.add_parser("list", help="list channel accounts")
    ls.set_defaults(func=_list)
