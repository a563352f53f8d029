"""`gongdan run`: the embedded desk for a newcomer: SQLite, in-process jobs, demo data, and the WeChat simulator
standing in for Tencent's servers on its own port, all in one process."""

from __future__ import annotations

import asyncio
import os

import uvicorn
from rich.console import Console
from rich.panel import Panel

console = Console(stderr=True)


def run_embedded(*, host: str, port: int, simulator_port: int) -> None:
    """Migrate, seed, start the simulator and serve the desk until interrupted."""
    from simulator import SimulatorServer
    from simulator.demo import DEMO_AES_KEY, DEMO_APPID, DEMO_SECRET, DEMO_TEMPLATE_ID, DEMO_TOKEN, build_demo_state

    sim_base = f"http://{host}:{simulator_port}"
    # the simulator stands in for WeChat unless the user configured real credentials and hosts
    defaults = {
        "GONGDAN_SIMULATOR": "1",
        "WECHAT_API_BASE": f"{sim_base}/cgi-bin/",
        "WECHAT_OAUTH_BASE": sim_base,
        "WECOM_API_BASE": f"{sim_base}/qyapi/cgi-bin/",
        "WECHAT_APP_ID": DEMO_APPID,
        "WECHAT_APP_SECRET": DEMO_SECRET,
        "WECHAT_TOKEN": DEMO_TOKEN,
        "WECHAT_AES_KEY": DEMO_AES_KEY,
        "WECHAT_TEMPLATE_ID": DEMO_TEMPLATE_ID,
        "PUBLIC_URL": f"http://{host}:{port}",
    }
    from simulator.wecom.orggen import DEMO_WECOM_ENV

    defaults.update(DEMO_WECOM_ENV)  # the simulator's demo corp (its organisation mirrors app/seed.py)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)

    from app.cli import _settings
    from app.db import close_db, init_db, migrate
    from app.logs import configure_logging
    from app.main import create_app

    settings = _settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)

    async def prepare() -> str:
        from app.channels.wechat_mp.accounts import ensure_env_account
        from app.security.service import create_token
        from app.seed import seed_demo
        from app.staff.models import Staff

        await migrate(settings)
        await init_db(settings)
        try:
            await ensure_env_account(settings)
            await seed_demo()
            admin = await Staff.get(userid="admin")
            return await create_token(staff=admin, name="make run")
        finally:
            await close_db()

    token = asyncio.run(prepare())
    sim_state = build_demo_state(f"http://{host}:{port}/callbacks/wechat")
    sim_state.public_base_url = sim_base
    from simulator.wecom.orggen import add_default_apps, load_demo_org

    add_default_apps(sim_state.wecom, app_callback_url=f"http://{host}:{port}/callbacks/wecom/app",
                     contacts_callback_url=f"http://{host}:{port}/callbacks/wecom/contacts")
    load_demo_org(sim_state.wecom)
    simulator = SimulatorServer(sim_state, host=host, port=simulator_port)
    simulator.start()
    _sync_wecom_demo(settings)
    console.print(Panel.fit(
        "\n".join([
            "[bold]工单 Gongdan[/] is running (embedded mode: SQLite, in-process jobs, WeChat simulator)",
            "",
            f"  服务台 / desk:          http://{host}:{port}/",
            f"  API 文档 / OpenAPI:     http://{host}:{port}/api/v1/openapi.json",
            f"  模拟微信客户 / chat as a WeChat customer:  {sim_base}/_sim/chat?appid={settings.wechat.app_id}"
            "&openid=oDemoCustomer001",
            f"  模拟器 / simulator:     {sim_base}/_sim/",
            "",
            f"  admin API token:  {token}",
            f'  try:  curl -H "Authorization: Bearer {token}" http://{host}:{port}/api/v1/tickets',
        ]),
        title="make run",
    ))
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
    finally:
        simulator.stop()


def _sync_wecom_demo(settings: object) -> None:
    """Sync the demo directory and external contacts from the simulator's WeCom corp (best effort)."""
    from app.db import close_db, init_db
    from app.settings import Settings
    from app.wecom.work import wecom_api
    from wecom_sync import directory, external

    assert isinstance(settings, Settings)
    if not settings.wecom.configured:
        return

    async def sync() -> str:
        await init_db(settings)
        try:
            staff = await directory.full_sync(api=wecom_api("contacts", settings))
            contacts = await external.full_sync(api=wecom_api("customer", settings))
            added = contacts.added.get("external_contacts", 0)
            return f"staff +{staff.added.get('staff', 0)}, external contacts +{added}"
        finally:
            await close_db()

    try:
        console.print(f"企业微信通讯录已同步 / WeCom directory synced: {asyncio.run(sync())}")
    except Exception as exc:  # the desk still runs without it (e.g. tables not migrated yet)
        console.print(f"[yellow]WeCom sync skipped: {type(exc).__name__}: {exc}[/]")
