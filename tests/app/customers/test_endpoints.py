"""The customer API refuses what no column can match with a clear 422 (issue 11)."""

from __future__ import annotations

import httpx

from tests import factories


async def test_search_text_longer_than_any_stored_value_is_422_in_chinese(api: httpx.AsyncClient) -> None:
    org = await factories.org()
    h = {"Authorization": f"Bearer {await factories.token(org['people']['admin'])}"}
    await factories.customer(name="张三")
    r = await api.get("/api/v1/customers", headers=h, params={"q": "张" * 192})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "query_too_long"
    assert r.json()["error"]["message"] == "搜索内容最多 128 个字符"
    r = await api.get("/api/v1/customers", headers=h, params={"q": "张" * 128})
    assert (r.status_code, r.json()["items"]) == (200, [])
    r = await api.get("/api/v1/customers", headers=h, params={"q": "张三"})
    assert [c["name"] for c in r.json()["items"]] == ["张三"]


async def test_search_limit_is_bounded(api: httpx.AsyncClient) -> None:
    org = await factories.org()
    h = {"Authorization": f"Bearer {await factories.token(org['people']['admin'])}"}
    for limit in ("-1", "101", str(10**30)):
        r = await api.get("/api/v1/customers", headers=h, params={"q": "x", "limit": limit})
        assert r.status_code in (400, 422), (limit, r.text)
        assert r.json()["error"]["message"]
