"""The tamper-evident audit chain: appending a row, and proving the chain intact.

Every audit row carries ``seq`` (its place), ``prev_hash`` (the previous row's hash) and ``row_hash`` =
SHA-256(prev_hash + canonical JSON of the row). Appends are serialized by locking the single chain-head row
(``SELECT ... FOR UPDATE`` on MariaDB; SQLite serializes transactions itself), inside the caller's transaction, so
two writers never chain to the same predecessor; ``seq`` is unique as a second guard. ``verify`` walks the rows in
order and names the first one whose content, link or place does not match; the head catches a deleted tail.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError

from app.security.models import AuditChainHead, AuditLog
from app.timeutil import utcnow
from app.uow import atomic

__all__ = ["ChainReport", "append", "canonical", "digest", "verify"]

HEAD_ID = 1
BATCH = 1000


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def canonical(*, seq: int, staff_id: int | None, action: str, object_type: str, object_id: str, field: str,
              reason: str, created_at: datetime) -> str:
    """The row's canonical JSON: sorted keys, no spaces, the time in UTC to the second."""
    row: dict[str, Any] = {
        "seq": seq, "staff_id": staff_id, "action": action, "object_type": object_type, "object_id": object_id,
        "field": field, "reason": reason, "created_at": _utc(created_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def digest(*, prev_hash: str, row_json: str) -> str:
    """SHA-256 hex of the previous hash followed by the row's canonical JSON."""
    return hashlib.sha256((prev_hash + row_json).encode("utf-8")).hexdigest()


def _row_json(entry: AuditLog) -> str:
    return canonical(seq=int(entry.seq or 0), staff_id=entry.staff_id, action=entry.action,  # type: ignore[attr-defined]
                     object_type=entry.object_type, object_id=entry.object_id, field=entry.field,
                     reason=entry.reason, created_at=entry.created_at)


async def _create_head() -> None:
    """Create the chain head in the caller's transaction. On MariaDB with INSERT ... ON DUPLICATE KEY UPDATE: first
    writers racing on the same key then queue for its exclusive lock, where plain inserts would deadlock."""
    conn = connections.get("default")
    if conn.capabilities.dialect == "mysql":
        await conn.execute_query(
            "INSERT INTO `audit_chain_head` (`id`, `seq`, `last_hash`, `last_id`, `updated_at`) "
            "VALUES (%s, 0, '', 0, %s) ON DUPLICATE KEY UPDATE `id` = `id`", [HEAD_ID, utcnow().replace(tzinfo=None)])
        return
    try:
        async with atomic():
            await AuditChainHead.create(id=HEAD_ID)
    except IntegrityError:  # another writer created it first
        pass


async def _locked_head() -> AuditChainHead:
    # a plain read first: a locking read of a missing row would take a gap lock, and two first writers would deadlock
    if not await AuditChainHead.filter(id=HEAD_ID).exists():
        await _create_head()
    return await AuditChainHead.filter(id=HEAD_ID).select_for_update().get()


async def append(*, staff_id: int | None, action: str, object_type: str, object_id: str, field: str = "",
                 reason: str = "") -> AuditLog:
    """Append one row to the audit chain, in the caller's transaction (or one of its own)."""
    async with atomic():
        head = await _locked_head()
        seq = head.seq + 1
        created_at = utcnow().replace(microsecond=0)
        values: dict[str, Any] = {"staff_id": staff_id, "action": action[:32], "object_type": object_type[:32],
                                  "object_id": object_id[:64], "field": field[:32], "reason": reason[:500]}
        row_hash = digest(prev_hash=head.last_hash, row_json=canonical(seq=seq, created_at=created_at, **values))
        entry = await AuditLog.create(seq=seq, prev_hash=head.last_hash, row_hash=row_hash, created_at=created_at,
                                      **values)
        await AuditChainHead.filter(id=HEAD_ID).update(seq=seq, last_hash=row_hash, last_id=entry.id)
    return entry


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a verification: intact, or the first broken row and why."""

    ok: bool
    #: chained rows checked
    checked: int
    #: rows from before the chain existed (no seq), accepted only before the first chained row
    legacy: int
    broken_id: int | None = None
    #: a Chinese sentence for people
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "legacy": self.legacy, "broken_id": self.broken_id,
                "problem": self.problem}


def _check(entry: AuditLog, *, expected_seq: int, prev_hash: str) -> str:
    """Why this row breaks the chain ("" when it does not)."""
    if entry.seq is None:
        return "该记录缺少链条信息（在链条开始后写入或被改写）"
    if entry.seq != expected_seq:
        return f"链条序号不连续：应为 {expected_seq}，实为 {entry.seq}（前面的记录被删除或插入）"
    if entry.prev_hash != prev_hash:
        return "与前一条记录的哈希不一致（前一条记录被替换）"
    if entry.row_hash != digest(prev_hash=prev_hash, row_json=_row_json(entry)):
        return "记录内容与哈希不符（记录被修改）"
    return ""


async def verify(*, batch: int = BATCH) -> ChainReport:
    """Walk the audit log in order and report whether the chain is intact, naming the first broken row."""
    checked = legacy = 0
    prev_hash, last_id = "", 0
    while True:
        rows = await AuditLog.filter(id__gt=last_id).order_by("id").limit(batch)
        if not rows:
            break
        for entry in rows:
            last_id = entry.id
            if checked == 0 and entry.seq is None and not entry.row_hash:
                legacy += 1
                continue
            problem = _check(entry, expected_seq=checked + 1, prev_hash=prev_hash)
            if problem:
                return ChainReport(ok=False, checked=checked, legacy=legacy, broken_id=entry.id, problem=problem)
            checked += 1
            prev_hash = entry.row_hash
    head = await AuditChainHead.get_or_none(id=HEAD_ID)
    head_seq, head_hash = (head.seq, head.last_hash) if head else (0, "")
    if head_seq != checked or head_hash != prev_hash:
        return ChainReport(ok=False, checked=checked, legacy=legacy, broken_id=head.last_id if head else None,
                           problem=f"链条末尾缺失：应有 {head_seq} 条，实有 {checked} 条（最后的记录被删除）")
    return ChainReport(ok=True, checked=checked, legacy=legacy)
