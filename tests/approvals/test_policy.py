"""Approval thresholds set in the console: checked like the APPROVAL_* settings, used by new requests at once
(threshold, levels by amount, the approver's timeout), and dropped again to fall back to the settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from app.channels.testing import RecordingAdapter
from app.errors import PermissionDenied, ValidationFailed
from app.security.models import AuditLog
from app.security.scope import Actor, actor_for
from app.settings import Settings, set_settings
from app.staff.models import Staff
from app.tickets.fallback import fallback_approvers
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


async def test_stored_oa_templates_and_fallback_approvers_win_over_the_settings(
        db: None, settings: Settings, recording: RecordingAdapter) -> None:
    set_settings(settings.with_overrides(workflow=replace(
        settings.workflow, approval_oa_templates=(("refund", "TPL-env"),), approval_fallback=("boss",))))
    o = await org()
    p = o["people"]
    first = await policy.current()
    assert (first.oa_templates, first.fallback) == ((("refund", "TPL-env"),), ("boss",))
    assert policy.oa_templates_text(first) == "refund=TPL-env"
    # a row saved before these fields were on the page keeps the settings' values
    await policy.save(actor=await _admin(), threshold="200", levels="0=1", timeout_minutes="30")
    kept = await policy.current()
    assert (kept.source, kept.oa_templates, kept.fallback) == ("console", (("refund", "TPL-env"),), ("boss",))
    saved = await policy.save(actor=await _admin(), threshold="200", levels="0=1,5000=3", timeout_minutes="30",
                              oa_templates=" compensation = TPL-console-01 ", fallback="cfo， boss")
    assert (saved.oa_templates, saved.fallback) == ((("compensation", "TPL-console-01"),), ("cfo", "boss"))
    row = await ApprovalPolicy.get(id=1)
    assert (row.oa_templates, row.fallback) == ([["compensation", "TPL-console-01"]], ["cfo", "boss"])
    audit = await AuditLog.filter(action="approval_policy").order_by("-id").first()
    assert audit is not None and audit.reason == ("门槛 200.00 元；层级 0=1,5000=3；超时 30 分钟；"
                                                  "企业微信审批模板 compensation=TPL-console-01；兜底审批人 cfo,boss")
    assert await service.oa_template("refund") is None
    assert await service.oa_template("compensation") == "TPL-console-01"
    assert [s.userid for s in await fallback_approvers()] == ["cfo", "boss"]
    # the chain's missing third level goes to the console's fallback, the request to WeCom's approval app
    t = await ticket(o["tech"])
    req = await service.request(actor=await actor(p["chenjing"]), ticket_id=t.id, kind="compensation",
                                reason="补偿", params={"amount": "6800"})
    assert req is not None and req.channel == "wecom_oa"
    assert req.chain == [p["liuyang"].id, p["boss"].id, p["cfo"].id]
    # saved empty: no kind goes to WeCom, and every active admin is a fallback approver
    await policy.save(actor=await _admin(), threshold="200", levels="0=1", timeout_minutes="30", oa_templates="",
                      fallback="")
    empty = await policy.current()
    assert (empty.oa_templates, empty.fallback) == ((), ())
    assert await service.oa_template("refund") is None
    assert [s.userid for s in await fallback_approvers()] == ["root"]


TEMPLATES_FORMAT = "企业微信审批模板应写成 审批类型=模板 ID，用逗号分隔，如 " \
                   "refund=3Tka1eD6v6JfzhDMqPd3aMkFdxqtJMc2ZRioeFXk"


@pytest.mark.parametrize(("oa_templates", "fallback", "errors"), [
    ("refund", "", {"oa_templates": TEMPLATES_FORMAT}),
    ("退款=TPL", "", {"oa_templates": "审批类型只能是 transfer、urgent、refund、compensation：退款"}),
    ("refund=TPL 1", "", {"oa_templates": "模板 ID 只能包含字母、数字、下划线和短横线：TPL 1"}),
    ("refund=A,refund=B", "", {"oa_templates": "审批类型重复：refund"}),
    ("", "cfo;boss", {"fallback": "兜底审批人应写成企业微信成员账号（userid），用逗号分隔：cfo;boss"}),
    ("", "cfo,nobody,ghost", {"fallback": "找不到在职成员：nobody、ghost"}),
    ("", "cfo,cfo", {"fallback": "兜底审批人重复：cfo"}),
    ("x", "y z", {"oa_templates": TEMPLATES_FORMAT,
                  "fallback": "兜底审批人应写成企业微信成员账号（userid），用逗号分隔：y z"}),
])
async def test_bad_oa_templates_and_fallback_approvers_are_refused_and_nothing_is_written(
        db: None, oa_templates: str, fallback: str, errors: dict[str, str]) -> None:
    await org()
    with pytest.raises(ValidationFailed) as info:
        await policy.save(actor=await _admin(), threshold="200", levels="0=1", timeout_minutes="30",
                          oa_templates=oa_templates, fallback=fallback)
    assert {f["field"]: f["message"] for f in info.value.details["fields"]} == errors
    assert not await ApprovalPolicy.exists() and not await AuditLog.filter(action="approval_policy").exists()
