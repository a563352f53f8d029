"""设置 · 知识库: list and filter, write with the Markdown preview (raw HTML escaped), publish, an agent's pending edit
published by a lead, versions and restore, stale edits refused, bad input, audit rows, roles."""

from __future__ import annotations

import re

from app.kb import service as kb
from app.kb.models import Article, ArticleVersion
from app.security.models import AuditLog
from app.security.scope import actor_for
from h5.console.settings_kb import render_markdown
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/kb"
ARTICLE = {"title": "如何开发票", "body": "# 开票\n\n在**订单页**点「申请发票」。",
           "questions": "怎么开发票\n发票在哪里开", "tags": "发票", "category": "财务", "status": "draft"}


def test_the_preview_renders_markdown_and_escapes_html() -> None:
    html = str(render_markdown("# 标题\n\n**粗体** <script>alert(1)</script> [x](javascript:alert(1))"))
    assert "<h1>标题</h1>" in html and "<strong>粗体</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and 'href="javascript' not in html


async def test_write_preview_save_and_publish(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/new", {**ARTICLE, "version": "0", "preview": "1"}, page=BASE + "/new")
    assert r.status_code == 200 and 'id="kb-preview"' in r.text and "<h1>开票</h1>" in r.text
    assert not await Article.exists()
    r = await console.post(admin, BASE + "/new", {**ARTICLE, "version": "0"}, page=BASE + "/new")
    assert r.status_code == 303
    article = await Article.get(title="如何开发票")
    assert (article.questions, article.tags, article.category, article.status, article.version) == (
        ["怎么开发票", "发票在哪里开"], ["发票"], "财务", "draft", 1)
    assert r.headers["location"] == f"{BASE}/{article.id}"
    r = await console.post(admin, f"{BASE}/{article.id}/published", {}, page=f"{BASE}/{article.id}")
    assert r.status_code == 303 and (await Article.get(id=article.id)).status == "published"
    assert [(a.action, a.reason) for a in await console.audit_rows()] == [
        ("kb_save", "新建文章「如何开发票」"), ("kb_status", "发布文章「如何开发票」")]
    listing = await admin.get(BASE, params={"status": "published"})
    assert "如何开发票" in listing.text


async def test_edits_make_versions_stale_pages_are_refused_and_versions_restore(console: Console) -> None:
    lead = await console.login(LEAD)
    await console.post(lead, BASE + "/new", {**ARTICLE, "version": "0"}, page=BASE + "/new")
    article = await Article.get(title="如何开发票")
    page = f"{BASE}/{article.id}"
    r = await console.post(lead, page, {**ARTICLE, "title": "开发票指南", "version": "1"}, page=page)
    assert r.status_code == 303 and (await Article.get(id=article.id)).version == 2
    r = await console.post(lead, page, {**ARTICLE, "title": "过期的修改", "version": "1"}, page=page)
    assert r.status_code == 409 and "文章已被他人修改，请刷新后重试" in r.text
    assert 'value="过期的修改"' in r.text  # what was typed is not lost
    versions = await lead.get(f"{page}/versions")
    assert versions.status_code == 200 and "恢复此版" in versions.text and "当前版本" in versions.text
    r = await console.post(lead, f"{page}/restore", {"restore": "1"}, page=page)
    assert r.status_code == 303
    restored = await Article.get(id=article.id)
    assert (restored.title, restored.version) == ("如何开发票", 3)
    assert await ArticleVersion.filter(article_id=article.id).count() == 3
    assert [a.reason for a in await console.audit_rows("kb_save")][-1] == "文章「开发票指南」恢复到第 1 版"


async def test_bad_input_is_a_422_next_to_the_field(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/new", {**ARTICLE, "title": "  ", "version": "0"}, page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-title">请填写文章标题<', r.text)
    r = await console.post(admin, BASE + "/new", {**ARTICLE, "status": "secret", "version": "0"}, page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-status">状态必须是 draft, published, retired 之一<', r.text)
    assert not await Article.exists() and not await AuditLog.exists()
    r = await admin.get(BASE, params={"status": "nope"})
    assert r.status_code == 422 and "状态必须是" in r.text


async def test_an_agents_pending_edit_is_published_by_a_lead(console: Console) -> None:
    people = console.h5.people
    article = await kb.create(actor=await actor_for(people[ADMIN]), title="退货流程", body="七天无理由",
                              status="published")
    await kb.update(actor=await actor_for(people[AGENT]), article_id=article.id, expected_version=1,
                    changes={"body": "七天无理由，**需保留包装**"})
    lead = await console.login(LEAD)
    page = f"{BASE}/{article.id}"
    r = await lead.get(page)
    assert "待审核的修改（李娜 提交）" in r.text and "<strong>需保留包装</strong>" in r.text
    r = await console.post(lead, f"{page}/publish-pending", {"version": "1"}, page=page)
    assert r.status_code == 303
    live = await Article.get(id=article.id)
    assert (live.body, live.pending, live.version) == ("七天无理由，**需保留包装**", None, 2)
    [row] = await console.audit_rows("kb_status")
    assert row.reason == "发布「退货流程」待审核的修改"


async def test_agents_get_the_403_page(console: Console) -> None:
    agent = await console.login(AGENT)
    r = await agent.get(BASE)
    assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text
