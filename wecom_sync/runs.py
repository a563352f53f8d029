"""WeCom sync runs for the console's repair tools (the seed's 数据不同步的修复工具): the runs with their reports, and
"sync now", which queues the full-sync job (a run interrupted half-way is resumed by it from its cursor)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.queue import enqueue
from app.security.scope import Actor
from app.security.service import record_audit
from app.timeutil import utcnow
from app.uow import atomic, on_commit
from wecom_sync.models import SyncRun

KINDS = {"directory": "通讯录", "external_contacts": "客户联系"}
STATUS_LABELS = {"running": "进行中", "done": "已完成", "failed": "失败"}
#: a run still "running" after this long was interrupted (the next sync resumes it)
STALLED_AFTER = timedelta(minutes=30)
REPORT_LABELS = {"staff": "成员", "departments": "部门", "tags": "标签", "external_contacts": "客户",
                 "follows": "跟进关系", "customers_merged": "合并的客户"}


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以查看和发起企业微信同步", code="admin_only")


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValidationFailed(f"同步类型只能是：{'、'.join(KINDS)}", code="invalid_kind",
                               details={"fields": [{"field": "kind", "message": "同步类型不合法"}]})


async def list_runs(*, actor: Actor, kind: str | None = None, limit: int = 50) -> list[SyncRun]:
    """Sync runs, newest first (admins only)."""
    _require_admin(actor)
    _check_kind(kind)
    query = SyncRun.filter(kind=kind) if kind else SyncRun.all()
    return await query.order_by("-id").limit(max(1, min(limit, 200)))


async def get_run(*, actor: Actor, run_id: int) -> SyncRun:
    """One sync run (404 when there is none)."""
    _require_admin(actor)
    run = await SyncRun.get_or_none(id=run_id)
    if run is None:
        raise NotFound("同步记录不存在")
    return run


async def request_sync(*, actor: Actor, kind: str) -> None:
    """Queue a full sync of ``kind`` now (a request while one is queued joins it) and record who asked."""
    _require_admin(actor)
    _check_kind(kind)
    async with atomic():
        await record_audit(actor=actor, action="sync_now", object_type="sync_run", object_id=kind,
                           reason=f"立即同步{KINDS[kind]}")

        async def _enqueue() -> None:
            # one id per kind: a second click while the job waits is the same job (the queue drops the repeat)
            await enqueue("wecom_full_sync", kind, job_id=f"wecom_full_sync:now:{kind}")

        await on_commit(_enqueue)


def status_of(run: SyncRun, *, now: datetime | None = None) -> str:
    """running | stalled (running for longer than STALLED_AFTER: it stopped and waits to be resumed) | done | failed."""
    if run.status == "running" and run.started_at is not None and (now or utcnow()) - run.started_at > STALLED_AFTER:
        return "stalled"
    return run.status


def _counts(report: dict[str, Any], bucket: str) -> str:
    items = report.get(bucket) or {}
    return "，".join(f"{REPORT_LABELS.get(k, k)} {v}" for k, v in sorted(items.items())) or "无"


def serialize(run: SyncRun) -> dict[str, Any]:
    """A run as the console shows it, with its report in words."""
    status = status_of(run)
    report = dict(run.report or {})
    return {"id": run.id, "kind": run.kind, "kind_label": KINDS.get(run.kind, run.kind), "status": status,
            "status_label": "已中断（下次同步时续跑）" if status == "stalled" else STATUS_LABELS.get(status, status),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "added": _counts(report, "added"), "changed": _counts(report, "changed"),
            "disabled": _counts(report, "disabled"), "api_calls": int(report.get("api_calls") or 0),
            "resumed": bool(report.get("resumed")), "error": str(report.get("error") or ""), "report": report}
