"""app.replies.service: which replies the reply box offers, and filling their placeholders."""

from __future__ import annotations

from app.replies.models import CannedReply
from app.replies.service import fill_placeholders, list_for_reply_box
from app.security.scope import Actor
from app.staff.models import SkillGroup

VALUES = {"客户称呼": "王先生", "工单号": "GD-20261204-0001", "客服姓名": "李娜"}


def test_placeholders_are_filled_and_other_braces_left_alone() -> None:
    body = "{客户称呼}您好，工单 {工单号}（{number}）由{客服姓名}处理，{customer}。{\"json\": 1} {未知} {工单号"
    assert fill_placeholders(body=body, values=VALUES) == (
        "王先生您好，工单 GD-20261204-0001（GD-20261204-0001）由李娜处理，王先生。{\"json\": 1} {未知} {工单号")
    assert fill_placeholders(body="{客户称呼}", values={}) == "{客户称呼}"


async def test_the_box_offers_shared_and_own_groups_for_staff_and_the_tickets_group_for_admins(db: None) -> None:
    a = await SkillGroup.create(name="甲组")
    b = await SkillGroup.create(name="乙组")
    c = await SkillGroup.create(name="丙组")
    await CannedReply.create(title="共享", body="x", category="b")
    await CannedReply.create(title="甲", body="x", group=a, category="a")
    await CannedReply.create(title="乙", body="x", group=b)
    await CannedReply.create(title="丙", body="x", group=c)
    await CannedReply.create(title="停用", body="x", active=False)
    agent = Actor(kind="staff", staff_id=1, role="agent", group_ids=frozenset({a.id, b.id}), name="李娜")
    admin = Actor(kind="staff", staff_id=2, role="admin", group_ids=None, name="管理员")
    assert [r.title for r in await list_for_reply_box(actor=agent, ticket_group_id=c.id)] == ["乙", "甲", "共享"]
    assert [r.title for r in await list_for_reply_box(actor=admin, ticket_group_id=c.id)] == ["丙", "共享"]
    assert [r.title for r in await list_for_reply_box(actor=admin, ticket_group_id=None)] == ["共享"]
