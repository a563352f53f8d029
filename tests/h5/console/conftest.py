"""Console tests over ASGI: the desk app with the simulator flag on (development login) and the demo organisation
(``app.seed.ensure_org``: ``admin`` is an admin, ``zhangwei`` and ``liuyang`` are leads, ``lina`` and the others are
agents).

Use the ``console`` fixture::

    async def test_my_page(console: Console) -> None:
        admin = await console.login("admin")            # an httpx client logged in through /console/dev-login
        r = await admin.get("/console/settings/rules")
        assert r.status_code == 200
        r = await console.post(admin, "/console/settings/rules/1", {"name": "x"})  # CSRF token read from the page
        agent = await console.login("lina")
        assert (await agent.get("/console/settings/rules")).status_code == 403

``console.h5`` is the H5 fixture (``settings``, ``people`` by userid, ``app``); ``console.audit_rows(action)`` reads
the audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.h5.conftest import H5, csrf_of

__all__ = ["ADMIN", "AGENT", "LEAD", "Console", "csrf_of"]

ADMIN, LEAD, AGENT = "admin", "zhangwei", "lina"


@dataclass
class Console:
    h5: H5
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        """A new, anonymous browser."""
        c = self.h5.new_client()
        self.clients.append(c)
        return c

    async def login(self, userid: str) -> httpx.AsyncClient:
        """A new browser logged in as ``userid`` through the development login of /console/login."""
        c = self.client()
        page = await c.get("/console/login")
        assert page.status_code == 200, page.text
        r = await c.post("/console/dev-login", data={"csrf_token": csrf_of(page.text), "userid": userid,
                                                     "next": "/console/"})
        assert r.status_code == 303, r.text
        return c

    async def post(self, client: httpx.AsyncClient, path: str, data: dict[str, Any], *, page: str | None = None,
                   **kw: Any) -> httpx.Response:
        """POST a form with the CSRF token read from ``page`` (default: the console home page); a list value
        sends the field several times (``{"skills": ["a", "b"]}``)."""
        html = (await client.get(page or "/console/")).text
        return await client.post(path, data={"csrf_token": csrf_of(html), **data}, **kw)

    async def audit_rows(self, action: str | None = None) -> list[Any]:
        """Audit rows (oldest first), optionally of one action."""
        from app.security.models import AuditLog

        query = AuditLog.all().order_by("id")
        if action is not None:
            query = query.filter(action=action)
        return list(await query)


@pytest.fixture
async def console(h5: H5) -> AsyncIterator[Console]:
    c = Console(h5=h5)
    yield c
    for client in c.clients:
        await client.aclose()
