"""`gongdan run`: the embedded desk for a newcomer: SQLite, in-process jobs, demo data, and the WeChat simulator
standing in for Tencent's servers on its own port, all in one process.

The settings it makes up for the simulator (API hosts, the demo Official Account, the demo WeCom corp and their
secrets) are written to ``DATA_DIR/dev.env`` (development only), which the other ``gongdan`` commands in the same
folder read: ``gongdan sync directory`` in a second shell talks to the running simulator.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import uvicorn
from rich.console import Console
from rich.text import Text

from app.settings import Settings

console = Console(stderr=True)


def embedded_defaults(*, host: str, port: int, simulator_port: int) -> dict[str, str]:
    """The settings `gongdan run` supplies: the simulator in place of Tencent, with its demo accounts."""
    from simulator.demo import DEMO_AES_KEY, DEMO_APPID, DEMO_SECRET, DEMO_TEMPLATE_ID, DEMO_TOKEN
    from simulator.sms import (
        DEMO_SMS_SDK_APP_ID,
        DEMO_SMS_SECRET_ID,
        DEMO_SMS_SECRET_KEY,
        DEMO_SMS_SIGN_NAME,
        DEMO_SMS_TEMPLATE_ID,
    )
    from simulator.wecom.orggen import DEMO_WECOM_ENV

    sim_base = f"http://{host}:{simulator_port}"
    defaults = {
        "GONGDAN_SIMULATOR": "1",
        "WECHAT_API_BASE": f"{sim_base}/cgi-bin/",
        "WECHAT_OAUTH_BASE": sim_base,
        "WECOM_LOGIN_BASE": sim_base,
        "WECOM_API_BASE": f"{sim_base}/qyapi/cgi-bin/",
        "WECHAT_APP_ID": DEMO_APPID,
        "WECHAT_APP_SECRET": DEMO_SECRET,
        "WECHAT_TOKEN": DEMO_TOKEN,
        "WECHAT_AES_KEY": DEMO_AES_KEY,
        "WECHAT_TEMPLATE_ID": DEMO_TEMPLATE_ID,
        "PUBLIC_URL": f"http://{host}:{port}",
        # the web chat's phone verification: Tencent Cloud SMS is the simulator (codes shown on its page)
        "TENCENT_SMS_ENDPOINT": sim_base,
        "TENCENT_SMS_SECRET_ID": DEMO_SMS_SECRET_ID,
        "TENCENT_SMS_SECRET_KEY": DEMO_SMS_SECRET_KEY,
        "TENCENT_SMS_SDK_APP_ID": DEMO_SMS_SDK_APP_ID,
        "TENCENT_SMS_SIGN_NAME": DEMO_SMS_SIGN_NAME,
        "TENCENT_SMS_TEMPLATE_ID": DEMO_SMS_TEMPLATE_ID,
    }
    defaults.update(DEMO_WECOM_ENV)  # the simulator's demo corp (its organisation mirrors app/seed.py)
    return defaults


def apply_defaults(*, defaults: dict[str, str], env_file: str = ".env") -> dict[str, str]:
    """Put each default the user left unset (in the environment and in .env) into os.environ; returns those."""
    configured = set(os.environ)
    if Path(env_file).is_file():
        from dotenv import dotenv_values

        configured |= set(dotenv_values(env_file))
    applied = {key: value for key, value in defaults.items() if key not in configured}
    os.environ.update(applied)
    return applied


def prepare_dev_settings(*, host: str, port: int, simulator_port: int) -> tuple[Settings, Path | None]:
    """Apply the embedded defaults, load the settings, and (development only) write them to DATA_DIR/dev.env."""
    from app.cli import _settings
    from app.settings import write_dev_env

    applied = apply_defaults(defaults=embedded_defaults(host=host, port=port, simulator_port=simulator_port))
    settings = _settings()
    if settings.env != "development":
        return settings, None
    return settings, write_dev_env(data_dir=settings.data_dir, values=applied)


@dataclass(frozen=True)
class BannerLink:
    label: str
    url: str


def banner_lines(*, settings: Settings, desk_url: str, sim_base: str, open_kfid: str, kf_customer: str,
                 token: str | None, dev_env: Path | None) -> list[tuple[str, str]]:
    """The start-up banner as (style, text) lines: every URL alone on its line; secrets only in development."""
    mp_chat = f"{sim_base}/_sim/chat?" + urlencode({"appid": settings.wechat.app_id, "openid": "oDemoCustomer001"})
    kf_chat = f"{sim_base}/_sim/kf/chat?" + urlencode({"open_kfid": open_kfid, "external_userid": kf_customer})
    links = [
        BannerLink("服务台 / desk", f"{desk_url}/"),
        BannerLink("管理后台 / console (dashboards, settings, repair tools; log in as admin)", f"{desk_url}/console/"),
        BannerLink("移动工作台 / staff H5 workbench", f"{desk_url}/h5/"),
        BannerLink("API 文档 / OpenAPI", f"{desk_url}/api/v1/openapi.json"),
        BannerLink("模拟公众号客户 / chat as an Official Account follower", mp_chat),
        BannerLink("模拟微信客服客户 / chat with WeChat Customer Service (微信客服, kf)", kf_chat),
        BannerLink("模拟网站访客 / chat as a website visitor (web chat widget)", f"{sim_base}/_sim/shop"),
        BannerLink("模拟器 / simulator", f"{sim_base}/_sim/"),
    ]
    lines: list[tuple[str, str]] = [
        ("bold", "工单 Gongdan is running (embedded mode: SQLite, in-process jobs, WeChat/WeCom simulator)"), ("", ""),
    ]
    for link in links:
        lines += [("", f"{link.label}:"), ("cyan", link.url)]
    lines.append(("", ""))
    if dev_env is not None:
        lines += [
            ("", f"Other gongdan commands in this folder (a second shell) use these settings from {dev_env}, e.g.:"),
            ("", "  gongdan sync directory        gongdan token create --staff lina        gongdan channel list"),
            ("", ""),
        ]
    if settings.env == "development" and token:
        lines += [
            ("bold yellow", "仅限开发环境 / DEVELOPMENT ONLY: the demo secrets below are printed because this is "
                            "development; production never prints them."),
            ("", "admin API token:"),
            ("", token),
            ("", "try:"),
            ("", f'curl -H "Authorization: Bearer {token}" {desk_url}/api/v1/tickets'),
        ]
    else:
        lines.append(("", "API token: not shown outside development (gongdan token create --staff USERID)"))
    return lines


def print_banner(lines: list[tuple[str, str]], *, out: Console | None = None) -> None:
    """Print the banner line by line, never wrapped (a wrapped URL breaks when copied)."""
    target = out or console
    for style, text in lines:
        target.print(Text(text, style=style), soft_wrap=True, highlight=False)


def run_embedded(*, host: str, port: int, simulator_port: int) -> None:
    """Migrate, seed, start the simulator and serve the desk until interrupted."""
    from simulator import SimulatorServer
    from simulator.demo import DEMO_KF_CUSTOMER, add_demo_kf, build_demo_state

    sim_base = f"http://{host}:{simulator_port}"
    settings, dev_env = prepare_dev_settings(host=host, port=port, simulator_port=simulator_port)

    from app.db import close_db, init_db, migrate
    from app.logs import configure_logging
    from app.main import create_app

    configure_logging(fmt=settings.log_format, level=settings.log_level)

    async def prepare() -> tuple[str, str | None]:
        from app.channels.webchat.service import snippet
        from app.channels.wechat_mp.accounts import ensure_env_account
        from app.security.service import create_token
        from app.seed import seed_demo, seed_webchat_site
        from app.staff.models import Staff

        await migrate(settings)
        await init_db(settings)
        try:
            await ensure_env_account(settings)
            await seed_demo(month=True)  # a month of traffic, so the console's dashboards have figures
            # the simulator's shop page is the company website: the widget is embedded from its origin
            site = await seed_webchat_site(origin=sim_base)
            shop_snippet = snippet(site, public_url=settings.public_url)
            if settings.env != "development":
                return shop_snippet, None  # a token is a secret: outside development nobody gets one printed
            admin = await Staff.get(userid="admin")
            return shop_snippet, await create_token(staff=admin, name="make run")
        finally:
            await close_db()

    shop_snippet, token = asyncio.run(prepare())
    # the simulator's demo accounts use the desk's effective settings, so both sides always agree
    sim_state = build_demo_state(f"http://{host}:{port}/callbacks/wechat", appid=settings.wechat.app_id or None,
                                 secret=str(settings.wechat.app_secret) or None,
                                 token=str(settings.wechat.token) or None, aes_key=str(settings.wechat.aes_key) or None)
    sim_state.public_base_url = sim_base
    sim_state.shop_snippet = shop_snippet
    from simulator.wecom.orggen import add_default_apps, load_demo_org

    add_default_apps(sim_state.wecom, app_callback_url=f"http://{host}:{port}/callbacks/wecom/app",
                     contacts_callback_url=f"http://{host}:{port}/callbacks/wecom/contacts")
    load_demo_org(sim_state.wecom)
    open_kfid = add_demo_kf(sim_state)
    simulator = SimulatorServer(sim_state, host=host, port=simulator_port)
    simulator.start()
    _sync_wecom_demo(settings)
    print_banner(banner_lines(settings=settings, desk_url=f"http://{host}:{port}", sim_base=sim_base,
                              open_kfid=open_kfid, kf_customer=DEMO_KF_CUSTOMER, token=token, dev_env=dev_env))
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
    finally:
        simulator.stop()


def _sync_wecom_demo(settings: Settings) -> None:
    """Sync the demo directory, external contacts and kf accounts from the simulator's WeCom corp (best effort)."""
    from app.channels.wecom_kf.sync import kf_sync_accounts
    from app.db import close_db, init_db
    from app.setup import shutdown
    from app.wecom.work import wecom_api
    from wecom_sync import directory, external

    if not settings.wecom.configured:
        return

    async def sync() -> str:
        await init_db(settings)
        try:
            staff = await directory.full_sync(api=wecom_api("contacts", settings))
            contacts = await external.full_sync(api=wecom_api("customer", settings))
            added = contacts.added.get("external_contacts", 0)
            kf_accounts = await kf_sync_accounts({})  # a channel account per kf account (open_kfid)
            return f"staff +{staff.added.get('staff', 0)}, external contacts +{added}, kf accounts {kf_accounts}"
        finally:
            await shutdown()  # this loop's WeCom connections end with it
            await close_db()

    try:
        console.print(f"企业微信通讯录已同步 / WeCom directory synced: {asyncio.run(sync())}", soft_wrap=True)
    except Exception as exc:  # the desk still runs without it (e.g. tables not migrated yet)
        console.print(f"[yellow]WeCom sync skipped: {type(exc).__name__}: {exc}[/]", soft_wrap=True)
