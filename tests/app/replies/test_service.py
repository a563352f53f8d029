"""Canned replies: who sees which (shared and per group), and who may change them."""

from __future__ import annotations

import pytest

from app.errors import PermissionDenied
from app.replies import service as replies
from app.replies.service import CannedReplyIn
from app.security.scope import actor_for
from app.seed import ensure_org
from app.staff.models import SkillGroup


async def test_members_see_shared_replies_and_their_groups_only(db: None) -> None:
    people = await ensure_org()
    admin = await actor_for(people["admin"])
    tech = await SkillGroup.get(name="技术支持组")
    first = await SkillGroup.get(name="一线客服组")
    for body in (CannedReplyIn(title="问候", body="您好"), CannedReplyIn(title="重启", body="请重启", group_id=tech.id),
                 CannedReplyIn(title="转接", body="稍等", group_id=first.id),
                 CannedReplyIn(title="旧的", body="x", active=False)):
        await replies.save_reply(actor=admin, reply_id=None, body=body)
    lina = await actor_for(people["lina"])  # member of 一线客服组
    assert [r.title for r in await replies.list_replies(actor=lina)] == ["转接", "问候"]  # by category, then title
    assert [r.title for r in await replies.list_replies(actor=lina, q="稍")] == ["转接"]
    assert len(await replies.list_replies(actor=admin, include_inactive=True)) == 4
    with pytest.raises(PermissionDenied):
        await replies.save_reply(actor=lina, reply_id=None, body=CannedReplyIn(title="x", body="y", group_id=first.id))
