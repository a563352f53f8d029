"""Approval thresholds set in the console: checked like the APPROVAL_* settings, used by new requests at once
(threshold, levels by amount, the approver's timeout), and dropped again to fall back to the settings."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.channels.testing import RecordingAdapter
from app.errors import PermissionDenied, ValidationFailed
from app.security.scope import Actor, actor_for
from app.staff.models import Staff
from app.timeutil import utcnow
from approvals import policy, service
from approvals.models import ApprovalPolicy, ApprovalRequest
from tests.approvals.helpers import actor, org, ticket


async def _admin() -> Actor:
    staff, _ = await Staff.get_or_create(userid="root", defaults={"name": "管理员", "role": "admin"})
    return await actor_for(staff)


async def test_the_settings_apply_until_an_admin_saves_a_policy(db: None) -> None:
    await org()
    assert (await policy.current()).source == "settings"
    saved = await policy.save(actor=await _admin(), threshold="500", levels="0=1, 2000=3",
                              timeout_minutes="30")
    assert (saved.threshold, saved.levels, saved.timeout_minutes) == (
        Decimal("500.00"), ((Decimal("0"), 1), (Decimal("2000"), 3)), 30)
    assert policy.levels_text(await policy.current()) == "0=1,2000=3"
    back = await policy.reset(actor=await _admin())
    assert back.source == "settings" and not await ApprovalPolicy.exists()


@pytest.mark.parametrize(("threshold", "levels", "minutes", "fields"), [
    ("两百", "0=1", "10", ["threshold"]),
    ("-5", "0=1", "10", ["threshold"]),
    ("nan", "0=1", "10", ["threshold"]),
    ("200", "0=0", "10", ["levels"]),
    ("200", "1000", "10", ["levels"]),
    ("200", "0=1", "0", ["timeout_minutes"]),
    ("x", "y", "z", ["threshold", "levels", "timeout_minutes"]),
])
async def test_bad_values_are_refused_field_by_field(db: None, threshold: str, levels: str, minutes: str,
                                                     fields: list[str]) -> None:
    with pytest.raises(ValidationFailed) as info:
        await policy.save(actor=await _admin(), threshold=threshold, levels=levels, timeout_minutes=minutes)
    assert sorted(f["field"] for f in info.value.details["fields"]) == sorted(fields)
    assert not await ApprovalPolicy.exists()


async def test_only_admins_change_it(db: None) -> None:
    o = await org()
    with pytest.raises(PermissionDenied):
        await policy.save(actor=await actor(o["people"]["liuyang"]), threshold="1", levels="0=1", timeout_minutes="5")


async def test_new_requests_follow_the_console_policy(db: None, recording: RecordingAdapter) -> None:
    o = await org()
    p = o["people"]
    boss = await _admin()
    await policy.save(actor=boss, threshold="1000", levels="0=1,3000=2", timeout_minutes="15")
    small = await ticket(o["tech"])
    assert await service.request(actor=await actor(p["xiaoli"]), ticket_id=small.id, kind="refund", reason="运费",
                                 params={"amount": 800}) is None  # under the console's threshold (settings: 200)
    big = await ticket(o["tech"])
    before = utcnow()
    req = await service.request(actor=await actor(p["xiaoli"]), ticket_id=big.id, kind="refund", reason="质量问题",
                                params={"amount": 3500})
    assert req is not None and req.chain == [p["chenjing"].id, p["liuyang"].id]  # two levels from 3000
    fresh = await ApprovalRequest.get(id=req.id)
    assert fresh.step_due_at is not None
    assert before + timedelta(minutes=15) <= fresh.step_due_at <= utcnow() + timedelta(minutes=15)
