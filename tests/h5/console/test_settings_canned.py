"""设置 · 快捷回复: the canned-reply model and service through the console (shared and per-group replies), errors next
to fields, audit rows, a lead limited to their groups, agents refused."""

from __future__ import annotations

import re

from app.replies import service as replies
from app.replies.models import CannedReply
from app.security.models import AuditLog
from app.security.scope import actor_for
from app.staff.models import SkillGroup
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/canned"
REPLY = {"title": "发票说明", "body": "您好，电子发票将在 3 个工作日内发送到您的邮箱。", "category": "财务",
         "shortcut": "/fp", "active": "1"}


async def test_admin_creates_edits_and_deletes_a_shared_reply(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/new", REPLY, page=BASE + "/new")
    assert r.status_code == 303
    row = await CannedReply.get(title="发票说明")
    assert (row.shortcut, row.group_id, row.active, row.created_by_id) == (  # type: ignore[attr-defined]
        "/fp", None, True, console.h5.people[ADMIN].id)
    page = await admin.get(BASE)
    assert "发票说明" in page.text and "所有人" in page.text and "快捷回复「发票说明」已保存" in page.text
    r = await console.post(admin, f"{BASE}/{row.id}", {**REPLY, "title": "发票说明（新）", "active": ""},
                           page=f"{BASE}/{row.id}")
    assert r.status_code == 303
    row = await CannedReply.get(id=row.id)
    assert (row.title, row.active) == ("发票说明（新）", False)
    r = await console.post(admin, f"{BASE}/{row.id}/delete", {}, page=BASE)
    assert r.status_code == 303 and not await CannedReply.exists()
    assert [(a.action, a.reason) for a in await console.audit_rows()] == [
        ("canned_save", "新建快捷回复「发票说明」"), ("canned_save", "修改快捷回复「发票说明（新）」"),
        ("canned_delete", "删除快捷回复「发票说明（新）」")]


async def test_bad_input_changes_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/new", {**REPLY, "title": "", "shortcut": "发票!"}, page=BASE + "/new")
    assert r.status_code == 422
    assert re.search(r'id="e-title">字段 标题 至少需要 1 个字符<', r.text)
    assert re.search(r'id="e-shortcut">字段 快捷键 的格式不正确<', r.text)
    r = await console.post(admin, BASE + "/new", {**REPLY, "body": "长" * 2001}, page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-body">字段 内容 最多 2000 个字符<', r.text)
    await console.post(admin, BASE + "/new", REPLY, page=BASE + "/new")
    r = await console.post(admin, BASE + "/new", {**REPLY, "title": "另一条"}, page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-shortcut">快捷键 /fp 已被其他快捷回复使用<', r.text)
    r = await console.post(admin, BASE + "/new", {**REPLY, "shortcut": "", "group_id": "9999"}, page=BASE + "/new")
    assert r.status_code == 422 and re.search(r'id="e-group_id">技能组不存在<', r.text)
    assert await CannedReply.all().count() == 1 and await AuditLog.all().count() == 1


async def test_a_lead_manages_only_their_groups_replies(console: Console) -> None:
    first_line = await SkillGroup.get(name="一线客服组")
    tech = await SkillGroup.get(name="技术支持组")
    admin_actor = await actor_for(console.h5.people[ADMIN])
    other = await replies.save_reply(actor=admin_actor, reply_id=None, body=replies.CannedReplyIn(
        title="技术组专用", body="重启试试", group_id=tech.id))
    lead = await console.login(LEAD)
    page = await lead.get(BASE + "/new")
    assert "所有人（共享）" not in page.text and "一线客服组" in page.text and "技术支持组" not in page.text
    r = await console.post(lead, BASE + "/new", {**REPLY, "group_id": str(first_line.id)}, page=BASE + "/new")
    assert r.status_code == 303
    r = await console.post(lead, BASE + "/new", {**REPLY, "shortcut": "", "group_id": ""}, page=BASE + "/new")
    assert r.status_code == 403 and "组长只能管理自己技能组的快捷回复" in r.text
    assert (await lead.get(f"{BASE}/{other.id}")).status_code == 404  # another group's reply is not even visible
    assert await CannedReply.filter(group_id=first_line.id).count() == 1


async def test_agents_get_the_403_page(console: Console) -> None:
    agent = await console.login(AGENT)
    r = await agent.get(BASE)
    assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text
