"""Issue 11: the audit log is tamper-evident. Every row is hash-chained to the previous one; `gongdan audit verify`
and GET /api/v1/audit/verify prove the chain intact or name the first broken row; concurrent writers keep one chain.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from tortoise import Tortoise

from app import cli
from app.cli import build_parser, cmd_audit_verify, report_audit_chain
from app.security import chain
from app.security.models import AuditChainHead, AuditLog
from app.security.scope import Actor
from app.security.service import record_audit
from app.uow import atomic
from tests import factories

#: the audit-chain columns and table until the lead's migration 0003 adds them to MariaDB (then these are no-ops)
MYSQL_SCHEMA = [
    "ALTER TABLE `audit_log` ADD COLUMN `seq` BIGINT NULL UNIQUE, "
    "ADD COLUMN `prev_hash` VARCHAR(64) NOT NULL DEFAULT '', ADD COLUMN `row_hash` VARCHAR(64) NOT NULL DEFAULT ''",
    "CREATE TABLE `audit_chain_head` (`id` INT NOT NULL PRIMARY KEY, `seq` BIGINT NOT NULL DEFAULT 0, "
    "`last_hash` VARCHAR(64) NOT NULL DEFAULT '', `last_id` BIGINT NOT NULL DEFAULT 0, "
    "`updated_at` DATETIME(6) NOT NULL) CHARACTER SET utf8mb4",
]

STAFF = Actor(kind="staff", staff_id=None, role="admin", group_ids=None)


async def ensure_chain_schema(dialect: str) -> None:
    """Give MariaDB the chain's columns (SQLite tests build the schema from the models)."""
    if dialect != "mysql":
        return
    conn = Tortoise.get_connection("default")
    _, found = await conn.execute_query("SHOW COLUMNS FROM `audit_log` LIKE 'row_hash'")
    if not found:
        for sql in MYSQL_SCHEMA:
            await conn.execute_script(sql)


async def _write(n: int, *, actor: Actor = STAFF) -> list[AuditLog]:
    return [await record_audit(actor=actor, action="reveal", object_type="ticket", object_id=str(i), field="phone",
                               reason=f"回访 {i}") for i in range(1, n + 1)]


async def _sql(statement: str, *values: Any) -> None:
    await Tortoise.get_connection("default").execute_query(statement, list(values))


async def test_each_row_is_chained_to_the_previous_and_the_chain_verifies(db: None) -> None:
    rows = await _write(3)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == "" and rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    stored = await AuditLog.get(id=rows[1].id)
    expected = chain.digest(prev_hash=rows[0].row_hash, row_json=chain.canonical(
        seq=2, staff_id=None, action="reveal", object_type="ticket", object_id="2", field="phone", reason="回访 2",
        created_at=stored.created_at))
    assert stored.row_hash == expected
    head = await AuditChainHead.get(id=1)
    assert (head.seq, head.last_hash, head.last_id) == (3, rows[2].row_hash, rows[2].id)
    assert (await chain.verify()).as_dict() == {"ok": True, "checked": 3, "legacy": 0, "broken_id": None,
                                                "problem": ""}


async def test_a_row_edited_directly_in_sql_is_named(anydb: str) -> None:
    await ensure_chain_schema(anydb)
    rows = await _write(5)
    await _sql("UPDATE audit_log SET reason = %s WHERE id = %s" if anydb == "mysql"
               else "UPDATE audit_log SET reason = ? WHERE id = ?", "改过的原因", rows[2].id)
    report = await chain.verify()
    assert (report.ok, report.broken_id, report.checked) == (False, rows[2].id, 2)
    assert report.problem == "记录内容与哈希不符（记录被修改）"


@pytest.mark.sqlite_only
async def test_a_changed_actor_time_or_rehashed_row_is_named(db: None) -> None:
    rows = await _write(4)
    await _sql("UPDATE audit_log SET object_id = '99' WHERE id = ?", rows[1].id)
    assert (await chain.verify()).broken_id == rows[1].id
    await _sql("UPDATE audit_log SET object_id = '2' WHERE id = ?", rows[1].id)
    assert (await chain.verify()).ok
    # a forger recomputing the row's own hash still breaks the link of the next row
    forged = chain.digest(prev_hash=rows[0].row_hash, row_json=chain.canonical(
        seq=2, staff_id=None, action="reveal", object_type="ticket", object_id="99", field="phone", reason="回访 2",
        created_at=(await AuditLog.get(id=rows[1].id)).created_at))
    await _sql("UPDATE audit_log SET object_id = '99', row_hash = ? WHERE id = ?", forged, rows[1].id)
    report = await chain.verify()
    assert (report.broken_id, report.problem) == (rows[2].id, "与前一条记录的哈希不一致（前一条记录被替换）")


@pytest.mark.sqlite_only
async def test_a_deleted_row_in_the_middle_or_at_the_end_is_named(db: None) -> None:
    rows = await _write(4)
    await _sql("DELETE FROM audit_log WHERE id = ?", rows[3].id)
    report = await chain.verify()
    assert (report.ok, report.broken_id, report.checked) == (False, rows[3].id, 3)
    assert report.problem == "链条末尾缺失：应有 4 条，实有 3 条（最后的记录被删除）"
    await _sql("DELETE FROM audit_log WHERE id = ?", rows[1].id)
    report = await chain.verify()
    assert report.broken_id == rows[2].id
    assert report.problem == "链条序号不连续：应为 2，实为 3（前面的记录被删除或插入）"


async def test_rows_from_before_the_chain_are_accepted_only_before_it(db: None) -> None:
    old = await AuditLog.create(action="reveal", object_type="ticket", object_id="1", reason="旧记录")
    rows = await _write(2)
    assert (await chain.verify()).as_dict() == {"ok": True, "checked": 2, "legacy": 1, "broken_id": None,
                                                "problem": ""}
    late = await AuditLog.create(action="reveal", object_type="ticket", object_id="1", reason="绕过链条写入")
    report = await chain.verify()
    assert (report.ok, report.broken_id) == (False, late.id)
    assert old.id < rows[0].id


async def test_concurrent_appends_keep_one_chain(anydb: str) -> None:
    await ensure_chain_schema(anydb)

    async def writer(i: int) -> None:
        async with atomic():  # each in its own transaction, holding the head until commit, like a real caller
            await record_audit(actor=STAFF, action="reveal", object_type="customer", object_id=str(i), field="email",
                               reason="并发写入")
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(i) for i in range(24)))
    rows = await AuditLog.all().order_by("id")
    assert [r.seq for r in rows] == list(range(1, 25))
    assert [r.prev_hash for r in rows] == ["", *(r.row_hash for r in rows[:-1])]
    assert sorted(int(r.object_id) for r in rows) == list(range(24))
    assert (await chain.verify()).as_dict() == {"ok": True, "checked": 24, "legacy": 0, "broken_id": None,
                                                "problem": ""}


@pytest.mark.sqlite_only
async def test_the_verify_api_is_for_admins_and_names_the_broken_row(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    admin, lead = data["people"]["admin"], data["people"]["lead"]
    rows = await _write(3, actor=await factories.actor(lead))
    h = {"Authorization": f"Bearer {await factories.token(admin)}"}
    r = await api.get("/api/v1/audit/verify", headers=h)
    assert r.status_code == 200 and r.json() == {"ok": True, "checked": 3, "legacy": 0, "broken_id": None,
                                                 "problem": ""}
    r = await api.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {await factories.token(lead)}"})
    assert r.status_code == 403 and r.json()["error"] == {"code": "admin_only", "message": "只有管理员可以查看审计日志"}
    await _sql("UPDATE audit_log SET staff_id = ? WHERE id = ?", admin.id, rows[0].id)
    r = await api.get("/api/v1/audit/verify", headers=h)
    assert r.json() == {"ok": False, "checked": 0, "legacy": 0, "broken_id": rows[0].id,
                        "problem": "记录内容与哈希不符（记录被修改）"}


def test_the_cli_has_audit_verify_and_exits_1_naming_the_broken_row(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["audit", "verify"])
    assert args.func is cmd_audit_verify
    broken = chain.ChainReport(ok=False, checked=5, legacy=0, broken_id=6, problem="记录内容与哈希不符（记录被修改）")
    monkeypatch.setattr(cli, "_with_db", lambda settings, fn: broken if fn is chain.verify else None)
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "verify"])
    assert exited.value.code == 1 and "第一条损坏的记录 id=6" in capsys.readouterr().err
    assert report_audit_chain(chain.ChainReport(ok=True, checked=7, legacy=0)) == 0
    assert "审计链完整：已校验 7 条记录" in capsys.readouterr().err
    assert report_audit_chain(chain.ChainReport(ok=False, checked=2, legacy=0, broken_id=42,
                                                problem="记录内容与哈希不符（记录被修改）")) == 1
    err = capsys.readouterr().err
    assert "审计链已损坏：第一条损坏的记录 id=42（记录内容与哈希不符（记录被修改））" in err
