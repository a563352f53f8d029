"""Sync runs in the console: "sync now" queues the full sync (one job however often it is clicked), the run and its
report are listed, an interrupted run says so, and every request is an audit row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.security.models import AuditLog
from app.security.scope import SYSTEM, Actor
from app.staff.models import Staff
from app.timeutil import utcnow
from tests.wecomenv import WeComEnv
from wecom_sync import runs
from wecom_sync.models import SyncRun


async def test_sync_now_runs_the_full_sync_and_lists_its_report(wecom: WeComEnv) -> None:
    await runs.request_sync(actor=SYSTEM, kind="directory")
    await wecom.settle()
    [run] = await runs.list_runs(actor=SYSTEM)
    shown = runs.serialize(run)
    assert (shown["kind_label"], shown["status"], shown["status_label"]) == ("通讯录", "done", "已完成")
    staff = await Staff.all().count()
    assert f"成员 {staff}" in shown["added"] and shown["api_calls"] > 0 and shown["error"] == ""
    [entry] = await AuditLog.filter(action="sync_now")
    assert (entry.object_type, entry.object_id, entry.reason) == ("sync_run", "directory", "立即同步通讯录")


async def test_two_clicks_while_queued_make_one_job(wecom: WeComEnv) -> None:
    from app import queue as jobqueue

    jobqueue.set_queue(None)
    seen: list[tuple[str, str | None]] = []

    class Recording:
        async def enqueue(self, name: str, *args: object, job_id: str | None = None,
                          defer_by: float | None = None) -> None:
            if (name, job_id) not in seen:
                seen.append((name, job_id))

    jobqueue.set_queue(Recording())  # type: ignore[arg-type]
    try:
        await runs.request_sync(actor=SYSTEM, kind="external_contacts")
        await runs.request_sync(actor=SYSTEM, kind="external_contacts")
    finally:
        jobqueue.set_queue(wecom.jobs)
    assert seen == [("wecom_full_sync", "wecom_full_sync:now:external_contacts")]
    assert await AuditLog.filter(action="sync_now").count() == 2


async def test_an_interrupted_run_is_shown_as_such_with_its_error(db: None) -> None:
    run = await SyncRun.create(kind="external_contacts", report={"added": {"external_contacts": 3},
                                                                 "error": "TemporaryAPIError"})
    await SyncRun.filter(id=run.id).update(started_at=utcnow() - timedelta(hours=1))
    shown = runs.serialize(await SyncRun.get(id=run.id))
    assert (shown["status"], shown["status_label"]) == ("stalled", "已中断（下次同步时续跑）")
    assert (shown["added"], shown["changed"], shown["error"]) == ("客户 3", "无", "TemporaryAPIError")


async def test_bad_kinds_and_non_admins_are_refused(db: None) -> None:
    agent = Actor(kind="staff", staff_id=1, role="agent")
    with pytest.raises(ValidationFailed):
        await runs.request_sync(actor=SYSTEM, kind="everything")
    with pytest.raises(PermissionDenied):
        await runs.request_sync(actor=agent, kind="directory")
    with pytest.raises(PermissionDenied):
        await runs.list_runs(actor=agent)
    with pytest.raises(NotFound):
        await runs.get_run(actor=SYSTEM, run_id=42)
    assert await AuditLog.all().count() == 0


async def test_a_sync_that_stops_on_a_platform_error_says_why(wecom: WeComEnv) -> None:
    from app.wecom.errors import PermanentAPIError
    from wecom_sync.jobs import wecom_full_sync

    wecom.sim.inject_fault("department/list", {"errcode": 60011, "errmsg": "no privilege"}, times=None)
    with pytest.raises(PermanentAPIError):
        await wecom_full_sync({}, "directory")
    [run] = await runs.list_runs(actor=SYSTEM)
    shown = runs.serialize(run)
    assert shown["status"] == "running" and shown["error"] == "PermanentAPIError"
    wecom.sim.faults.clear()
    await wecom_full_sync({}, "directory")  # the next sync resumes the run and clears the error
    shown = runs.serialize(await SyncRun.get(id=run.id))
    assert (shown["status"], shown["error"], shown["resumed"]) == ("done", "", True)
