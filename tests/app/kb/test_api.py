from __future__ import annotations

from typing import Any

from tests import factories


async def _auth(role: str = "lead") -> dict[str, str]:
    org = await factories.org()
    return {"authorization": f"Bearer {await factories.token(org['people'][role])}"}


async def test_create_edit_publish_search_and_history(api: Any) -> None:
    h = await _auth()
    r = await api.post("/api/v1/kb/articles", headers=h, json={
        "title": "如何申请退款", "body": "在订单页申请。", "questions": ["怎么退钱"], "tags": ["退款"],
        "category": "退款"})
    assert r.status_code == 201
    art = r.json()
    assert (art["status"], art["version"], art["questions"]) == ("draft", 1, ["怎么退钱"])
    r = await api.patch(f"/api/v1/kb/articles/{art['id']}", headers=h, json={"version": 1, "status": "published"})
    assert (r.status_code, r.json()["version"]) == (200, 2)
    r = await api.patch(f"/api/v1/kb/articles/{art['id']}", headers=h, json={"version": 1, "body": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "version_conflict")
    hits = (await api.get("/api/v1/kb/search", headers=h, params={"q": "退钱"})).json()["items"]
    assert [(x["article"]["id"], x["matched"]) for x in hits] == [(art["id"], "怎么退钱")]
    public = (await api.get("/api/v1/kb/public/search", params={"q": "怎么退钱"})).json()["items"]
    assert public == [{"id": art["id"], "title": "如何申请退款", "body": "在订单页申请。"}]
    versions = (await api.get(f"/api/v1/kb/articles/{art['id']}/versions", headers=h)).json()["items"]
    assert [(v["version"], v["note"]) for v in versions] == [(1, "创建"), (2, "状态改为已发布")]


async def test_import_export_and_auth(api: Any) -> None:
    assert (await api.get("/api/v1/kb/articles")).status_code == 401
    h = await _auth()
    content = "title,questions,body\n发票怎么开,要发票|开票,在订单页申请发票。\n"
    r = await api.post("/api/v1/kb/import", headers=h, json={"format": "csv", "content": content})
    assert r.json() == {"created": 1, "updated": 0}
    md = (await api.get("/api/v1/kb/export", headers=h)).text
    assert md.startswith("---\nid: 1\ntitle: 发票怎么开\n") and md.rstrip().endswith("在订单页申请发票。")
    csv_text = (await api.get("/api/v1/kb/export", headers=h, params={"format": "csv"})).text
    assert csv_text.splitlines()[1] == "1,发票怎么开,,,要发票|开票,draft,在订单页申请发票。"
    bad = await api.post("/api/v1/kb/import", headers=h, json={"format": "markdown", "content": "无头"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "no_articles")


async def test_agents_cannot_publish_and_the_admin_page_needs_auth(api: Any) -> None:
    h = await _auth("agent")
    r = await api.post("/api/v1/kb/articles", headers=h, json={"title": "积分", "status": "published"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "publish_forbidden")
    assert (await api.get("/kb/admin")).status_code == 401
    page = await api.get("/kb/admin", headers=h, params={"q": "积分"})
    assert page.status_code == 200 and "知识库管理" in page.text and "没有找到相关文章" in page.text
