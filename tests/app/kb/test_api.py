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


# -- issue 11: an agent's edit of a published article waits for a lead or admin -------------------------------------


async def _published_article(api: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    from app.kb.models import Article
    from tests import factories as f

    org = await f.org()
    lead = {"authorization": f"Bearer {await f.token(org['people']['lead'])}"}
    agent = {"authorization": f"Bearer {await f.token(org['people']['agent'])}"}
    r = await api.post("/api/v1/kb/articles", headers=lead, json={
        "title": "如何申请退款", "body": "在订单页申请。", "questions": ["怎么退钱"], "status": "published"})
    assert r.status_code == 201, r.text
    assert (await Article.get(id=r.json()["id"])).status == "published"
    return r.json(), lead, agent


async def test_an_agents_edit_of_a_published_article_is_not_served_until_a_lead_publishes_it(api: Any) -> None:
    art, lead, agent = await _published_article(api)
    url = f"/api/v1/kb/articles/{art['id']}"
    r = await api.patch(url, headers=agent, json={"version": 1, "body": "请把钱转到 6222 0000 0000 0000。"})
    # used to be 200 with the new body live at once
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["body"], r.json()["version"]) == ("published", "在订单页申请。", 1)
    assert r.json()["pending"] == {"body": "请把钱转到 6222 0000 0000 0000。"}
    public = (await api.get("/api/v1/kb/public/search", params={"q": "怎么退钱"})).json()["items"]
    assert public == [{"id": art["id"], "title": "如何申请退款", "body": "在订单页申请。"}]
    # the agent can neither publish the pending edit nor take the article offline
    r = await api.post(f"{url}/pending/publish", headers=agent, json={"version": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "publish_forbidden")
    r = await api.patch(url, headers=agent, json={"version": 1, "status": "draft"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "publish_forbidden")
    # a lead reviews: publishing makes it version 2 and clears the pending edit
    r = await api.patch(url, headers=agent, json={"version": 1, "body": "在“我的订单”页申请退款。"})
    assert r.status_code == 202 and r.json()["pending"] == {"body": "在“我的订单”页申请退款。"}
    r = await api.post(f"{url}/pending/publish", headers=lead, json={"version": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["body"], r.json()["version"], r.json()["pending"]) == ("在“我的订单”页申请退款。", 2, None)
    public = (await api.get("/api/v1/kb/public/search", params={"q": "怎么退钱"})).json()["items"]
    assert public[0]["body"] == "在“我的订单”页申请退款。"
    versions = (await api.get(f"{url}/versions", headers=lead)).json()["items"]
    assert [(v["version"], v["note"]) for v in versions] == [(1, "创建"), (2, "发布待审核的修改")]


async def test_a_lead_can_discard_a_pending_edit_and_agents_still_edit_drafts(api: Any) -> None:
    art, lead, agent = await _published_article(api)
    url = f"/api/v1/kb/articles/{art['id']}"
    assert (await api.patch(url, headers=agent, json={"version": 1, "title": "改坏的标题"})).status_code == 202
    assert (await api.delete(f"{url}/pending", headers=agent)).status_code == 403
    r = await api.delete(f"{url}/pending", headers=lead)
    assert (r.status_code, r.json()["pending"], r.json()["title"]) == (200, None, "如何申请退款")
    r = await api.post(f"{url}/pending/publish", headers=lead, json={"version": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "no_pending_edit")
    draft = (await api.post("/api/v1/kb/articles", headers=agent, json={"title": "积分", "body": "a"})).json()
    r = await api.patch(f"/api/v1/kb/articles/{draft['id']}", headers=agent, json={"version": 1, "body": "b"})
    assert (r.status_code, r.json()["body"], r.json()["version"], r.json()["pending"]) == (200, "b", 2, None)
    # a lead's own edit of a published article is live at once
    r = await api.patch(url, headers=lead, json={"version": 1, "body": "直接修改。"})
    assert (r.status_code, r.json()["body"], r.json()["version"]) == (200, "直接修改。", 2)
