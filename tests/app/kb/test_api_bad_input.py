"""Bad knowledge-base input found by the contract run: a clear Chinese 422 and nothing changed, never a 500."""

from __future__ import annotations

from typing import Any

from app.kb.models import Article
from tests import factories


async def _auth(role: str = "lead") -> dict[str, str]:
    org = await factories.org()
    return {"authorization": f"Bearer {await factories.token(org['people'][role])}"}


async def test_an_unknown_status_or_an_overlong_category_filter_is_a_422(api: Any) -> None:
    h = await _auth()
    for path, params in [("/api/v1/kb/articles", {"status": "x" * 40}), ("/api/v1/kb/export", {"status": "x" * 40}),
                         ("/api/v1/kb/articles", {"status": "bogus"}),
                         ("/api/v1/kb/articles", {"category": "类" * 33})]:
        r = await api.get(path, headers=h, params=params)
        assert r.status_code == 422, (path, params, r.text)
        error = r.json()["error"]
        assert error["code"] in ("invalid_status", "invalid_category")
        assert error["message"] in ("状态必须是 draft、published、retired 之一", "分类最多 32 个字符")
    r = await api.get("/api/v1/kb/articles", headers=h, params={"status": "draft", "category": "类" * 32})
    assert (r.status_code, r.json()) == (200, {"items": []})


async def test_an_unknown_owner_is_a_422_and_creates_nothing(api: Any) -> None:
    h = await _auth()
    r = await api.post("/api/v1/kb/articles", headers=h, json={"title": "如何退款", "owner_id": 60})
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "unknown_owner", "message": "负责人 60 不存在"}
    r = await api.post("/api/v1/kb/articles", headers=h, json={"title": "如何退款", "owner_id": 2**31})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "owner_id"
    assert await Article.all().count() == 0
    r = await api.post("/api/v1/kb/articles", headers=h, json={"title": "如何退款"})
    article = r.json()
    r = await api.patch(f"/api/v1/kb/articles/{article['id']}", headers=h, json={"version": 1, "owner_id": 999})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unknown_owner")
    assert (await Article.get(id=article["id"])).version == 1
