"""Directory sync against the simulator: full sync, dry run, resume, incremental events, convergence."""

from __future__ import annotations

import random

import pytest

from app.channels.models import InboundEvent
from app.security.crypto import decrypt_field, keyed_hash
from app.staff.models import Department, Staff
from simulator.wecom.orggen import OrgSize, generate_org, random_change
from tests.wecomenv import WeComEnv
from wecom_sync import directory
from wecom_sync.models import DirectoryTag, StaffProfile, SyncRun


async def test_full_sync_builds_the_tree_staff_roles_and_a_report(wecom: WeComEnv) -> None:
    report = await directory.full_sync(api=wecom.api())
    assert report.added == {"departments": 6, "staff": 7}
    assert (report.changed, report.disabled) == ({}, {})
    assert report.api_calls == 1 + 6 + 1  # department/list, user/list per department, tag/list (no tags)
    depts = await Department.all().order_by("id").values_list("id", "name", "parent_id", "path")
    assert depts == [(1, "示例科技有限公司", None, "/1/"), (2, "客户服务部", 1, "/1/2/"),
                     (3, "一线客服组", 2, "/1/2/3/"), (4, "售后服务组", 2, "/1/2/4/"), (5, "技术支持部", 1, "/1/5/"),
                     (6, "财务部", 1, "/1/6/")]
    zhangwei = await Staff.get(userid="zhangwei")
    assert (zhangwei.role, zhangwei.department_id, zhangwei.department_ids, zhangwei.leads_department_ids) == (
        "lead", 2, [2], [2])
    assert (await Staff.get(userid="lina")).role == "agent"
    profile = await StaffProfile.get(staff_id=zhangwei.id)
    # the 通讯录同步 secret sees mobiles: stored encrypted in E.164, searchable by keyed hash
    assert profile.mobile_enc is not None and "13800000001" not in profile.mobile_enc
    assert decrypt_field(profile.mobile_enc) == "+8613800000001"
    assert profile.mobile_hash == keyed_hash("+8613800000001")
    # a second run changes nothing
    again = await directory.full_sync(api=wecom.api())
    assert (again.added, again.changed, again.disabled) == ({}, {}, {})
    runs = await SyncRun.all().order_by("id").values_list("kind", "status")
    assert runs == [("directory", "done"), ("directory", "done")]


async def test_admin_grants_survive_and_leavers_are_disabled_not_deleted(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    await Staff.filter(userid="admin").update(role="admin")
    wecom.sim.wecom.delete_user("wangfang")
    report = await directory.full_sync(api=wecom.api())
    assert report.disabled == {"staff": 1}
    assert await Staff.filter(userid="wangfang").values_list("status", flat=True) == ["disabled"]
    assert (await Staff.get(userid="admin")).role == "admin"


async def test_dry_run_reports_and_writes_nothing(wecom: WeComEnv) -> None:
    report = await directory.full_sync(api=wecom.api(), dry_run=True)
    assert report.dry_run and report.added == {"departments": 6, "staff": 7}
    assert (await Department.all().count(), await Staff.all().count(), await SyncRun.all().count()) == (0, 0, 0)


async def test_an_interrupted_sync_resumes_where_it_stopped(wecom: WeComEnv,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(directory, "CONCURRENCY", 1)
    api = wecom.api()
    real = api.list_users
    calls: list[int] = []

    async def flaky(dept_id: int) -> list[dict[str, object]]:
        calls.append(dept_id)
        if len(calls) == 4:
            raise ConnectionError("network down")
        return await real(dept_id)

    monkeypatch.setattr(api, "list_users", flaky)
    with pytest.raises(ConnectionError):
        await directory.full_sync(api=api)
    run = await SyncRun.get()
    assert (run.status, len(run.cursor["done_departments"])) == ("running", 3)
    calls.clear()
    report = await directory.full_sync(api=api)
    assert report.resumed and report.run_id == run.id
    assert len(calls) == 3  # only the departments not done before
    assert report.added == {"departments": 6, "staff": 7}
    assert await Staff.filter(status="active").count() == 7


async def test_change_events_reread_and_never_roll_back(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    store = wecom.sim.wecom
    driver = wecom.contacts_driver
    # an update_user is pushed, then the member leaves; the delete arrives first, the stale update later
    store.set_user("lina", position="组长")
    stale_update = driver.change_contact_xml("update_user", userid="lina")
    store.delete_user("lina")
    await driver.change_contact("delete_user", userid="lina")
    await driver.deliver_xml(stale_update)
    await wecom.settle()
    lina = await Staff.get(userid="lina")
    assert lina.status == "disabled"  # the late update re-read user/get (60111) and kept her disabled
    # a new department and a member in it, the member's event first
    store.set_department(7, "华南服务组", 2, 70)
    store.set_user("newbie", name="新人", department=[7], is_leader_in_dept=[1], mobile="13900000000")
    await driver.change_contact("create_user", userid="newbie")
    await driver.change_contact("create_party", dept_id=7)
    store.set_tag(3, "夜班", ["newbie"])
    await driver.change_contact("update_tag", tagid=3, add_users=["newbie"])
    await wecom.settle()
    newbie = await Staff.get(userid="newbie")
    assert (newbie.role, newbie.department_id, newbie.leads_department_ids) == ("lead", 7, [7])
    assert (await Department.get(id=7)).path == "/1/2/7/"
    assert await DirectoryTag.all().values_list("id", "name", "userids") == [(3, "夜班", ["newbie"])]
    statuses = set(await InboundEvent.all().values_list("status", flat=True))
    assert statuses == {"done"}


async def test_full_sync_then_1000_random_events_equals_a_fresh_full_sync(wecom: WeComEnv) -> None:
    store = wecom.sim.wecom
    generate_org(store, OrgSize(departments=30, staff=150, external_contacts=0), seed=11)
    await directory.full_sync(api=wecom.api())
    rng = random.Random(2024)
    counter = [0]
    xmls: list[str] = []
    for _ in range(1000):
        for change_type, ids in random_change(store, rng, counter):
            xmls.append(wecom.contacts_driver.change_contact_xml(change_type, **ids))
    # duplicates (WeCom retries) and reordering (late delivery)
    xmls += rng.sample(xmls, 150)
    rng.shuffle(xmls)
    for xml in xmls:
        assert (await wecom.contacts_driver.deliver_xml(xml)).delivered
    await wecom.settle(timeout=180)  # 1,150 events: MariaDB shared with other work takes more than the usual 10 s
    assert set(await InboundEvent.all().values_list("status", flat=True)) == {"done"}
    incremental = await directory.snapshot()

    # a fresh desk database, one full sync of the same organisation
    from tests.conftest import _init_sqlite

    await _init_sqlite()
    await directory.full_sync(api=wecom.api())
    fresh = await directory.snapshot()
    active = [s for s in incremental["staff"] if s[6] == "active"]
    assert active == fresh["staff"]  # people who left stay, disabled, only in the incremental desk
    assert incremental["departments"] == fresh["departments"]
    assert incremental["tags"] == fresh["tags"]
    assert len(fresh["staff"]) == len(store.users)


async def test_a_first_full_sync_creates_members_per_department_not_per_member(wecom: WeComEnv) -> None:
    from tests.sqlcount import count_statements

    store = wecom.sim.wecom
    generate_org(store, OrgSize(departments=5, staff=200, external_contacts=0), seed=3)
    with count_statements() as statements:
        report = await directory.full_sync(api=wecom.api())
    assert report.added["staff"] == len(store.users)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT") and "staff" in s]
    assert len(inserts) <= 2 * len(await Department.all()), len(inserts)  # staff and profiles, per department
    assert await StaffProfile.all().count() == len(store.users)
    fresh = await directory.snapshot()
    again = await directory.full_sync(api=wecom.api())
    assert (again.added, again.changed, again.disabled) == ({}, {}, {})
    assert await directory.snapshot() == fresh
    profiles = await StaffProfile.filter(mobile_hash__not_isnull=True).count()
    assert profiles == len([u for u in store.users.values() if u.mobile])
