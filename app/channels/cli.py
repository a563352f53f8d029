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
    from pydantic import ValidationError

    from app.channels.email.service import MailboxIn, save_mailbox
    from app.cli import _settings
    from app.db import close_db, init_db
    from app.errors import ValidationFailed
    from app.security.scope import SYSTEM

    settings = _settings()
    try:  # the console's form check, so both paths refuse the same input
        body = MailboxIn(key=args.key, name=args.name or args.address, address=args.address,
                         imap_host=args.imap_host, imap_port=args.imap_port, imap_security=args.imap_security or "",
                         smtp_host=args.smtp_host, smtp_port=args.smtp_port,
                         smtp_security=args.smtp_security or "", username=args.username or args.address,
                         password=args.password, folder=args.folder, idle=not args.no_idle)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise SystemExit(f"invalid mailbox settings: {fields}") from None

    async def run() -> Any:
        await init_db(settings)
        try:
            return await save_mailbox(actor=SYSTEM, body=body)
        finally:
            await close_db()

    try:
        account = asyncio.run(run())
    except ValidationFailed as exc:
        raise SystemExit(f"invalid mailbox settings: {exc.message}") from None
    print(f"added email account {account.key!r} ({account.config['address']}); the worker polls it every minute")


def _add_webchat(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from app.channels.webchat.service import WebchatSiteIn, save_site, snippet
    from app.cli import _settings
    from app.db import close_db, init_db
    from app.errors import ValidationFailed
    from app.security.scope import SYSTEM

    settings = _settings()
    given = {k: getattr(args, k) for k in ("per_visitor", "per_ip", "max_chars") if getattr(args, k) is not None}
    try:  # the console's form check, so both paths refuse the same input
        body = WebchatSiteIn(key=args.key, name=args.name, origins=list(args.origin), bot=not args.no_bot,
                             group_id=args.group_id, verify_mailbox=args.verify_mailbox or "", **given)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise SystemExit(f"invalid webchat site settings: {fields}") from None

    async def run() -> Any:
        await init_db(settings)
        try:
            return await save_site(actor=SYSTEM, body=body)
        finally:
            await close_db()

    try:
        account = asyncio.run(run())
    except ValidationFailed as exc:
        raise SystemExit(f"invalid webchat site settings: {exc.message}") from None
    print(f"added webchat site {account.key!r} ({', '.join(account.config['origins'])}); embed:")
    print(snippet(account, public_url=settings.public_url))


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
    em.add_argument("--no-idle", action="store_true",
                    help="poll every minute only, even where the server offers IMAP IDLE")
    em.set_defaults(func=_add_email)
    wc = asub.add_parser("webchat", help="a website chat widget; WebSocket /webchat/ws?site=KEY")
    wc.add_argument("--key", required=True, help="the site key in the embed snippet")
    wc.add_argument("--name", default="", help="the name the widget shows")
    wc.add_argument("--origin", action="append", required=True,
                    help="an origin allowed to embed the widget, e.g. https://shop.example.com (repeatable)")
    wc.add_argument("--group-id", type=int, default=None, help="the group whose calendar says when we are open")
    wc.add_argument("--no-bot", action="store_true", help="people answer first (the bot stays out)")
    wc.add_argument("--verify-mailbox", default="",
                    help="the key of the mailbox that sends verification codes (default: the first mailbox)")
    wc.add_argument("--per-visitor", type=int, default=None, help="messages per visitor a minute (default 10)")
    wc.add_argument("--per-ip", type=int, default=None, help="messages per IP address a minute (default 30)")
    wc.add_argument("--max-chars", type=int, default=None, help="the longest message (default 2000)")
    wc.set_defaults(func=_add_webchat)
    ls = csub.add_parser("list", help="list channel accounts")
    ls.set_defaults(func=_list)
