"""H5 tests over ASGI: the desk app with the simulator flag on (development login) and the demo organisation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.settings import Settings, set_settings
from h5.web import forget_actors

BASE = "http://127.0.0.1:8000"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


@dataclass
class H5:
    client: httpx.AsyncClient
    settings: Settings
    people: dict[str, Any]
    app: Any

    def new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)

    async def login_staff(self, userid: str, client: httpx.AsyncClient | None = None) -> httpx.AsyncClient:
        c = client or self.client
        page = await c.get("/h5/login")
        r = await c.post("/h5/dev-login", data={"csrf_token": csrf_of(page.text), "userid": userid, "next": "/h5/"})
        assert r.status_code == 303, r.text
        return c

    async def login_customer(self, openid: str, client: httpx.AsyncClient | None = None) -> httpx.AsyncClient:
        c = client or self.client
        page = await c.get("/h5/my/login")
        r = await c.post("/h5/my/dev-login", data={"csrf_token": csrf_of(page.text), "openid": openid,
                                                   "account": "default"})
        assert r.status_code == 303, r.text
        return c

    async def post_form(self, path: str, data: dict[str, Any], *, page: str | None = None,
                        client: httpx.AsyncClient | None = None, **kw: Any) -> httpx.Response:
        c = client or self.client
        html = (await c.get(page or path)).text
        return await c.post(path, data={"csrf_token": csrf_of(html), **data}, **kw)


@pytest.fixture
async def h5(db: None, settings: Settings) -> AsyncIterator[H5]:
    from app.channels.wechat_mp import accounts
    from app.main import create_app
    from app.seed import ensure_org

    s = settings.with_overrides(simulator=True, public_url=BASE, wechat_api_base="http://127.0.0.1:9/cgi-bin/",
                                wecom_api_base="http://127.0.0.1:9/qyapi/cgi-bin/",
                                wechat_oauth_base="http://127.0.0.1:9")
    set_settings(s)
    forget_actors()
    accounts.forget_cache()
    people = await ensure_org()
    await accounts.upsert_account(key="default", name="测试号", appid="wxh5test000000001", secret="sec",
                                  token="tok", aes_key="", is_default=True)
    app = create_app(s, run_jobs=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield H5(client=client, settings=s, people=people, app=app)
    accounts.forget_cache()
    forget_actors()
