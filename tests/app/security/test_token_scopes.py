"""API token scopes: read for GET, write for changes, events for /events, admin for admin endpoints; a token made
without scopes (and every token made before scopes existed) holds all four."""

from __future__ import annotations

import httpx
import pytest

from app.security.models import ApiToken
from app.security.service import authenticate, create_token, parse_scopes
from tests import factories


def test_scopes_parse_in_canonical_order_and_refuse_unknown_ones() -> None:
    assert parse_scopes(None) == ("read", "write", "events", "admin")
    assert parse_scopes("admin, read") == ("read", "admin")
    with pytest.raises(ValueError, match="delete"):
        parse_scopes("read,delete")
    with pytest.raises(ValueError):
        parse_scopes(" , ")


async def test_a_token_without_scopes_holds_all_and_a_narrow_one_only_its_own(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    agent = data["people"]["agent"]
    full = await create_token(staff=agent)
    assert (await ApiToken.get(prefix=full[:10])).scopes == "read,write,events,admin"
    actor = await authenticate(raw=full)
    assert actor is not None and actor.scopes == frozenset({"read", "write", "events", "admin"})
    writer = {"Authorization": f"Bearer {await create_token(staff=agent, scopes=('write',))}"}
    r = await api.get("/api/v1/tickets", headers=writer)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "scope_required")
    assert r.json()["error"]["details"] == {"scope": "read"}
    r = await api.post("/api/v1/tickets", headers=writer, json={"customer_id": 999, "subject": "x"})
    assert r.status_code == 404  # past the scope check: the customer is unknown to the agent


async def test_admin_endpoints_need_the_admin_scope_even_for_an_admin(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    admin = data["people"]["admin"]
    narrow = {"Authorization": f"Bearer {await create_token(staff=admin, scopes=('read', 'write'))}"}
    for path in ("/api/v1/audit", "/api/v1/webhooks", "/api/v1/event-rules"):
        r = await api.get(path, headers=narrow)
        assert (r.status_code, r.json()["error"]["details"]) == (403, {"scope": "admin"}), path
    full = {"Authorization": f"Bearer {await create_token(staff=admin)}"}
    assert (await api.get("/api/v1/audit", headers=full)).status_code == 200
