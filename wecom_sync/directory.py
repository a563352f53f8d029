"""Directory sync: departments (the tree), staff and tags from WeCom, in full and one change event at a time.

Follows 通讯录管理 https://developer.work.weixin.qq.com/document/path/90193 (department/list, user/list per department,
tag/list + tag/get) and 通讯录回调通知 https://developer.work.weixin.qq.com/document/path/90970 (members),
path/90971 (departments), path/90972 (tags).

Rules:

* people who leave are **disabled, never deleted** (their tickets and history stay); a member a full sync no
  longer sees, or whose re-read answers 60111, is disabled;
* roles come from the directory: a leader of a department (``is_leader_in_dept``) is a ``lead`` of it; an ``admin``
  granted in Gongdan stays admin;
* mobile and email are stored only when the secret may see them (通讯录同步 does; a self-built app created after
  2022-06-20 does not), encrypted with a keyed hash for exact search, never logged;
* change events are notifications: since 2022 they carry only ids, and they may come late, twice or out of order,
  so each one **re-reads the object through the API** and applies what WeCom says now. An old event applied late
  therefore writes today's state, never yesterday's: the directory cannot roll back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tortoise.exceptions import IntegrityError

from app.errors import PermanentChannelError
from app.logs import get_logger
from app.security.crypto import encrypt_field, keyed_hash, normalize_phone
from app.staff.models import Department, SkillGroup, Staff
from app.timeutil import utcnow
from app.uow import transaction
from app.wecom.work import WeComApi
from wecom_sync.models import DirectoryTag, StaffProfile, SyncRun

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]
#: departments read concurrently during a full sync (the limiter still paces the calls)
CONCURRENCY = 8
#: save the resume point every this many departments
CHECKPOINT_EVERY = 50


@dataclass
class SyncReport:
    """The closing report of a sync: what was added, changed, disabled (or deleted, for departments and tags)."""

    kind: str
    dry_run: bool = False
    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    disabled: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    limiter_wait: float = 0.0
    run_id: int | None = None
    resumed: bool = False

    def count(self, what: str, bucket: str, n: int = 1) -> None:
        """Add ``n`` to ``bucket`` ('added' | 'changed' | 'disabled') for ``what`` ('staff', 'departments', ...)."""
        target: dict[str, int] = getattr(self, bucket)
        target[what] = target.get(what, 0) + n

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "dry_run": self.dry_run, "added": self.added, "changed": self.changed,
                "disabled": self.disabled, "api_calls": self.api_calls, "limiter_wait": round(self.limiter_wait, 3),
                "run_id": self.run_id, "resumed": self.resumed}


class _DryRun(Exception):
    """Raised to roll the dry run's transaction back."""


def _not_found(exc: PermanentChannelError, *codes: str) -> bool:
    return exc.code in codes


# -- departments -------------------------------------------------------------------------------------------------


def _paths(parents: dict[int, int]) -> dict[int, str]:
    """``/1/2/7/`` for every department, from a {id: parentid} map (unknown parents make a root)."""
    out: dict[int, str] = {}

    def path(dept_id: int, seen: frozenset[int] = frozenset()) -> str:
        if dept_id in out:
            return out[dept_id]
        parent = parents.get(dept_id, 0)
        if parent in parents and parent not in seen and parent != dept_id:
            result = path(parent, seen | {dept_id}) + f"{dept_id}/"
        else:
            result = f"/{dept_id}/"
        out[dept_id] = result
        return result

    for dept_id in parents:
        path(dept_id)
    return out


async def _apply_departments(items: list[dict[str, Any]], report: SyncReport, *, complete: bool) -> None:
    """Upsert departments with their paths; with ``complete`` (the whole tree) delete the ones WeCom dropped."""
    existing = {d.id: d for d in await Department.all()}
    parents = {d.id: (d.parent_id or 0) for d in existing.values()}  # type: ignore[attr-defined]
    incoming = {int(i["id"]): i for i in items}
    for dept_id, given in incoming.items():
        parents[dept_id] = int(given.get("parentid") or 0)
    if complete:
        for dept_id in set(existing) - set(incoming):
            parents.pop(dept_id, None)
    paths = _paths(parents)
    # parents first, so a child's foreign key always points at a stored row
    for dept_id in sorted(paths, key=lambda d: paths[d].count("/")):
        parent_id = parents.get(dept_id) or None
        if parent_id is not None and parent_id not in paths:
            parent_id = None
        item: dict[str, Any] | None = incoming.get(dept_id)
        row = existing.get(dept_id)
        if row is None:
            if item is None:
                continue
            try:
                async with transaction():  # a savepoint: another event's job may create it at the same time
                    await Department.create(id=dept_id, name=str(item.get("name") or dept_id), parent_id=parent_id,
                                            path=paths[dept_id], order=int(item.get("order") or 0))
                report.count("departments", "added")
                continue
            except IntegrityError:
                row = await Department.get(id=dept_id)
        changes: dict[str, Any] = {}
        if item is not None:
            if row.name != str(item.get("name") or row.name):
                changes["name"] = str(item.get("name"))
            if row.order != int(item.get("order") or 0):
                changes["order"] = int(item.get("order") or 0)
        if row.parent_id != parent_id:  # type: ignore[attr-defined]
            changes["parent_id"] = parent_id
        if row.path != paths[dept_id]:
            changes["path"] = paths[dept_id]
        if changes:
            await Department.filter(id=dept_id).update(**changes)
            if item is not None or "parent_id" in changes:
                report.count("departments", "changed")
    if complete:
        for dept_id in set(existing) - set(incoming):
            await _remove_department(dept_id, report)


async def _remove_department(dept_id: int, report: SyncReport) -> None:
    """Delete a department WeCom no longer has; one that still owns skill groups is kept (and reported)."""
    if await SkillGroup.filter(department_id=dept_id).exists():
        log.warning("wecom_sync.department_kept", department_id=dept_id, reason="owns skill groups")
        return
    await Department.filter(parent_id=dept_id).update(parent_id=None)
    await Department.filter(id=dept_id).delete()
    report.count("departments", "disabled")


# -- staff -------------------------------------------------------------------------------------------------------


def _staff_fields(user: dict[str, Any], current_role: str | None) -> dict[str, Any]:
    departments = [int(d) for d in user.get("department") or []]
    flags = [int(f) for f in user.get("is_leader_in_dept") or []]
    leads = [d for d, f in zip(departments, flags, strict=False) if f]
    main = int(user.get("main_department") or (departments[0] if departments else 0))
    role = current_role if current_role == "admin" else ("lead" if leads else "agent")
    return {
        "name": str(user.get("name") or user["userid"])[:64],
        "department_id": main or None,
        "department_ids": departments,
        "leads_department_ids": leads,
        "position": str(user.get("position") or "")[:64],
        "status": "active" if int(user.get("status") or 1) == 1 else "disabled",
        "avatar": str(user.get("avatar") or "")[:512],
        "role": role,
    }


def _profile_fields(user: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "main_department": int(user.get("main_department") or 0),
        "direct_leader": [str(x) for x in user.get("direct_leader") or []],
        "wecom_status": int(user.get("status") or 1),
    }
    # absent keys mean "this secret may not see it": keep what we have
    if "mobile" in user:
        phone = normalize_phone(str(user["mobile"])) if user["mobile"] else None
        out["mobile_enc"] = encrypt_field(phone) if phone else None
        out["mobile_hash"] = keyed_hash(phone) if phone else None
    if "email" in user:
        email = str(user["email"] or "").strip()
        out["email_enc"] = encrypt_field(email) if email else None
        out["email_hash"] = keyed_hash(email) if email else None
    return out


_COMPARED = ("name", "department_id", "department_ids", "leads_department_ids", "position", "status", "avatar", "role")


async def _ensure_departments(api: WeComApi, dept_ids: list[int], report: SyncReport) -> None:
    """Read departments a member points at that we do not have yet (a create_party still on its way)."""
    missing = [d for d in dept_ids if not await Department.exists(id=d)]
    for dept_id in missing:
        try:
            chain = await api.list_departments(dept_id)
        except PermanentChannelError as exc:
            if _not_found(exc, "wecom_department_not_found", "wecom_no_privilege"):
                continue
            raise
        await _apply_departments(chain[:1], report, complete=False)


def _known_fields(user: dict[str, Any], current_role: str | None, known: set[int]) -> dict[str, Any]:
    fields = _staff_fields(user, current_role)
    # a department we could not read (outside the secret's visibility) is left out rather than dangling
    fields["department_ids"] = [d for d in fields["department_ids"] if d in known]
    fields["leads_department_ids"] = [d for d in fields["leads_department_ids"] if d in known]
    if fields["department_id"] not in known:
        fields["department_id"] = fields["department_ids"][0] if fields["department_ids"] else None
    return fields


async def _create_staff(users: list[dict[str, Any]], report: SyncReport, *, known: set[int]) -> list[Staff]:
    """Members new to us (a first sync), written together; should one appear meanwhile, each goes on its own."""
    try:
        async with transaction():  # a savepoint: an event's job may create one of them at the same time
            await Staff.bulk_create([Staff(userid=str(u["userid"]), **_known_fields(u, None, known)) for u in users])
    except IntegrityError:
        return [await _upsert_staff(u, report, known=known) for u in users]
    report.count("staff", "added", len(users))
    created = {s.userid: s for s in await Staff.filter(userid__in=[str(u["userid"]) for u in users])}
    now = utcnow()
    await StaffProfile.bulk_create([StaffProfile(staff_id=created[str(u["userid"])].id, synced_at=now,
                                                 **_profile_fields(u)) for u in users])
    return [created[str(u["userid"])] for u in users]


async def _upsert_staff(user: dict[str, Any], report: SyncReport, *, staff: Staff | None = None,
                        profile: StaffProfile | None = None, known: set[int] | None = None) -> Staff:
    """Create or update one member from a user/get (or user/list item) answer."""
    userid = str(user["userid"])
    if staff is None:
        staff = await Staff.get_or_none(userid=userid)
    if known is None:
        known = {int(d) for d in await Department.filter(  # type: ignore[call-overload]
            id__in=[int(d) for d in user.get("department") or []]).values_list("id", flat=True)}
    fields = _known_fields(user, staff.role if staff is not None else None, known)
    now = utcnow()
    created = False
    if staff is None:
        try:
            async with transaction():  # a savepoint: two events of one new member may race
                staff = await Staff.create(userid=userid, **fields)
            created = True
            report.count("staff", "added")
        except IntegrityError:
            staff = await Staff.get(userid=userid)
    if not created:
        changes = {k: v for k, v in fields.items() if getattr(staff, k) != v}
        if changes:
            became_disabled = changes.get("status") == "disabled"
            await Staff.filter(id=staff.id).update(**changes)
            for k, v in changes.items():
                setattr(staff, k, v)
            report.count("staff", "disabled" if became_disabled else "changed")
    pfields = _profile_fields(user)
    if profile is None:
        profile = await StaffProfile.get_or_none(staff_id=staff.id)
    if profile is None:
        try:
            async with transaction():
                await StaffProfile.create(staff_id=staff.id, synced_at=now, **pfields)
        except IntegrityError:
            await StaffProfile.filter(staff_id=staff.id).update(synced_at=now, **pfields)
    elif any(getattr(profile, k) != v for k, v in pfields.items() if not k.endswith("_enc")):
        # ciphertexts differ on every encryption; the keyed hashes tell whether the value changed
        await StaffProfile.filter(id=profile.id).update(synced_at=now, **pfields)
    return staff


async def _disable_staff(staff: Staff, report: SyncReport) -> None:
    """A member left WeCom: disable (never delete); they keep their history."""
    if staff.status != "disabled":
        await Staff.filter(id=staff.id).update(status="disabled", on_duty=False)
        staff.status = "disabled"
        report.count("staff", "disabled")
    await StaffProfile.filter(staff_id=staff.id).update(wecom_status=0, synced_at=utcnow())


# -- tags --------------------------------------------------------------------------------------------------------


async def _apply_tag(tagid: int, name: str, detail: dict[str, Any], report: SyncReport) -> None:
    userids = sorted(str(u["userid"]) for u in detail.get("userlist") or [])
    parties = sorted(int(p) for p in detail.get("partylist") or [])
    row = await DirectoryTag.get_or_none(id=tagid)
    if row is None:
        await DirectoryTag.create(id=tagid, name=name, userids=userids, party_ids=parties, synced_at=utcnow())
        report.count("tags", "added")
    elif (row.name, row.userids, row.party_ids) != (name, userids, parties):
        await DirectoryTag.filter(id=tagid).update(name=name, userids=userids, party_ids=parties, synced_at=utcnow())
        report.count("tags", "changed")


# -- full sync ---------------------------------------------------------------------------------------------------


async def full_sync(*, api: WeComApi, dry_run: bool = False, progress: Progress | None = None,
                    resume: bool = True) -> SyncReport:
    """Read the whole directory and make ours equal to it; resumes an interrupted run unless ``resume=False``."""
    report = SyncReport(kind="directory", dry_run=dry_run)
    calls_before, wait_before = api.stats.total_calls, api.stats.limiter_wait
    if dry_run:
        try:
            async with transaction():
                await _full_sync(api, report, progress, run=None)
                raise _DryRun
        except _DryRun:
            pass
    else:
        run = await SyncRun.filter(kind="directory", status="running").order_by("-id").first() if resume else None
        if run is None:
            run = await SyncRun.create(kind="directory", cursor={})
        else:
            report.resumed = True
            report.added, report.changed, report.disabled = (dict(run.report.get(k) or {}) for k in
                                                             ("added", "changed", "disabled"))
        report.run_id = run.id
        try:
            await _full_sync(api, report, progress, run=run)
        except BaseException:
            await SyncRun.filter(id=run.id).update(report=report.to_json())
            raise
    report.api_calls = api.stats.total_calls - calls_before
    report.limiter_wait = api.stats.limiter_wait - wait_before
    if report.run_id is not None:
        await SyncRun.filter(id=report.run_id).update(status="done", finished_at=utcnow(), report=report.to_json())
    log.info("wecom_sync.directory_done", **report.to_json())
    return report


async def _full_sync(api: WeComApi, report: SyncReport, progress: Progress | None, *, run: SyncRun | None) -> None:
    departments = await api.list_departments()
    await _apply_departments(departments, report, complete=True)
    run_id = run.id if run is not None else -1
    done: set[int] = set(run.cursor.get("done_departments") or []) if run is not None else set()
    todo = [int(d["id"]) for d in departments if int(d["id"]) not in done]
    total = len(departments)
    if progress:
        progress("departments", len(done), total)
    staff_by_userid = {s.userid: s for s in await Staff.all()}
    profiles = {p.staff_id: p for p in await StaffProfile.all()}  # type: ignore[attr-defined]
    known = {int(d) for d in await Department.all().values_list("id", flat=True)}  # type: ignore[call-overload]
    seen: set[str] = set()
    lock = asyncio.Lock()
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def read(dept_id: int) -> tuple[int, list[dict[str, Any]]]:
        async with semaphore:
            return dept_id, await api.list_users(dept_id)

    tasks = [asyncio.ensure_future(read(d)) for d in todo]
    try:
        for finished in asyncio.as_completed(tasks):
            dept_id, users = await finished
            async with lock, transaction():
                batch: list[int] = []
                fresh: list[dict[str, Any]] = []
                for user in users:
                    userid = str(user["userid"])
                    if userid in seen:
                        continue  # a member of several departments is listed in each; once is enough
                    seen.add(userid)
                    staff = staff_by_userid.get(userid)
                    if staff is None:
                        fresh.append(user)
                        continue
                    staff = await _upsert_staff(user, report, staff=staff, profile=profiles.get(staff.id),
                                                known=known)
                    staff_by_userid[userid] = staff
                    batch.append(staff.id)
                for staff in await _create_staff(fresh, report, known=known) if fresh else []:
                    staff_by_userid[staff.userid] = staff
                    batch.append(staff.id)
                if batch:
                    await StaffProfile.filter(staff_id__in=batch).update(seen_run=run_id)
                done.add(dept_id)
                if progress:
                    progress("departments", len(done), total)
                if run is not None and len(done) % CHECKPOINT_EVERY == 0:
                    await SyncRun.filter(id=run.id).update(cursor={"done_departments": sorted(done)},
                                                           report=report.to_json())
    finally:
        for task in tasks:
            task.cancel()
    # Members of departments finished in an earlier, interrupted attempt were marked with this run's id then.
    gone = await Staff.filter(wecom_profile__seen_run__not=run_id, status="active")
    for staff in gone:
        await _disable_staff(staff, report)
    tags = await api.list_tags()
    for tag in tags:
        await _apply_tag(int(tag["tagid"]), str(tag["tagname"]), await api.get_tag(int(tag["tagid"])), report)
    stale = await DirectoryTag.exclude(id__in=[int(t["tagid"]) for t in tags])
    for row in stale:
        await row.delete()
        report.count("tags", "disabled")


# -- incremental -------------------------------------------------------------------------------------------------


async def apply_change(*, api: WeComApi, fields: dict[str, str]) -> str:
    """Apply one change_contact event by re-reading its object; returns what was done (for the event's status)."""
    change = fields.get("ChangeType", "")
    report = SyncReport(kind="event")
    if change in ("create_user", "update_user", "delete_user"):
        userid = fields.get("UserID", "")
        new_userid = fields.get("NewUserID") or ""
        if new_userid and new_userid != userid:
            # the userid was renamed: carry the row over, unless the new id already exists
            if not await Staff.exists(userid=new_userid):
                await Staff.filter(userid=userid).update(userid=new_userid)
            userid = new_userid
        return await refresh_user(api=api, userid=userid, report=report)
    if change in ("create_party", "update_party", "delete_party"):
        return await refresh_department(api=api, dept_id=int(fields.get("Id") or 0), report=report)
    if change == "update_tag":
        return await refresh_tag(api=api, tagid=int(fields.get("TagId") or 0), report=report)
    log.info("wecom_sync.unknown_change", change_type=change)
    return "ignored"


async def refresh_user(*, api: WeComApi, userid: str, report: SyncReport | None = None) -> str:
    """Make one member equal to what ``user/get`` says now (disabled when WeCom no longer has them)."""
    report = report or SyncReport(kind="event")
    try:
        user = await api.get_user(userid)
    except PermanentChannelError as exc:
        if not _not_found(exc, "wecom_user_not_found", "wecom_no_privilege"):
            raise
        staff = await Staff.get_or_none(userid=userid)
        if staff is not None:
            await _disable_staff(staff, report)
        return "done"
    await _ensure_departments(api, [int(d) for d in user.get("department") or []], report)
    async with transaction():
        await _upsert_staff(user, report)
    return "done"


async def refresh_department(*, api: WeComApi, dept_id: int, report: SyncReport | None = None) -> str:
    """Make one department (and the paths below it) equal to WeCom's; delete it when WeCom has it no more."""
    report = report or SyncReport(kind="event")
    try:
        dept = await api.get_department(dept_id)
    except PermanentChannelError as exc:
        if not _not_found(exc, "wecom_department_not_found", "wecom_no_privilege"):
            raise
        if await Department.exists(id=dept_id):
            async with transaction():
                await _remove_department(dept_id, report)
        return "done"
    parent = int(dept.get("parentid") or 0)
    if parent and not await Department.exists(id=parent):
        await refresh_department(api=api, dept_id=parent, report=report)
    async with transaction():
        await _apply_departments([dept], report, complete=False)
    return "done"


async def refresh_tag(*, api: WeComApi, tagid: int, report: SyncReport | None = None) -> str:
    """Re-read a tag's members (tag events are not ordered with member events; the doc says to re-read)."""
    report = report or SyncReport(kind="event")
    try:
        detail = await api.get_tag(tagid)
    except PermanentChannelError as exc:
        if exc.code != "api_error" or getattr(exc, "errcode", 0) != 40068:
            raise
        await DirectoryTag.filter(id=tagid).delete()
        return "done"
    row = await DirectoryTag.get_or_none(id=tagid)
    await _apply_tag(tagid, str(detail.get("tagname") or (row.name if row else tagid)), detail, report)
    return "done"


async def snapshot() -> dict[str, Any]:
    """The synced directory as plain data (what a sync makes equal to WeCom), for comparisons and reports."""
    departments = sorted(await Department.all().values_list("id", "name", "parent_id", "path"))
    staff = sorted(await Staff.filter(wecom_profile__id__isnull=False).values_list(
        "userid", "name", "department_id", "department_ids", "leads_department_ids", "position", "status", "role"))
    tags = sorted(await DirectoryTag.all().values_list("id", "name", "userids", "party_ids"))
    return {"departments": [list(d) for d in departments], "staff": [list(s) for s in staff],
            "tags": [list(t) for t in tags]}
