"""External-contact sync: customers from follow users' contacts, unionid merge, tags, events, data isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.customers import service as customers
from app.customers.models import CustomerIdentity
from app.security.crypto import decrypt_field, keyed_hash
from app.security.scope import SYSTEM, actor_for
from app.staff.models import Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket
from simulator.wecom.orggen import CORP_TAGS
from tests import factories
from tests.wecomenv import WeComEnv
from wecom_sync import directory, external
from wecom_sync.models import ExternalContact, ExternalFollow

VIP, SVIP, NORMAL, WEB = (t[0] for t in CORP_TAGS[:4])


def _seed_contacts(env: WeComEnv) -> None:
    store = env.sim.wecom
    store.contacts.clear()
    store.contacts_by_user.clear()
    store.set_external_contact("wmVIP0001", name="王先生", type=1, unionid="oUnionWang0001")
    store.follow("wmVIP0001", "lina", remark="王总", tag_ids=[VIP, WEB], remark_mobiles=["13812345678"],
                 add_way=1, state="qr_shop")
    store.set_external_contact("wmCHEN0002", name="陈女士", type=1)
    store.follow("wmCHEN0002", "chenjing", remark="陈工", tag_ids=[NORMAL])
    store.follow("wmCHEN0002", "lina", remark="陈姐", tag_ids=[SVIP])


async def test_full_sync_makes_customers_with_follow_info_tags_and_vip(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    _seed_contacts(wecom)
    report = await external.full_sync(api=wecom.api("customer"))
    assert report.added == {"external_contacts": 2, "follows": 3}
    assert report.api_calls == 3  # corp tags, follow users, one batch/get_by_user page
    wang = await external.customer_for(external_userid="wmVIP0001")
    assert wang is not None
    assert (wang.name, wang.tags, wang.vip_level) == ("王先生", ["VIP", "官网"], 1)
    assert customers.phone_of(wang) == "+8613812345678"  # the remark mobile, encrypted at rest
    follow = await ExternalFollow.get(userid="lina", contact__external_userid="wmVIP0001")
    assert (follow.remark, follow.add_way, follow.state, follow.status) == ("王总", 1, "qr_shop", "active")
    assert follow.remark_mobiles_enc is not None and "13812345678" not in follow.remark_mobiles_enc
    assert decrypt_field(follow.remark_mobiles_enc) == '["+8613812345678"]'
    assert follow.remark_mobile_hashes == [keyed_hash("+8613812345678")]
    chen = await external.customer_for(external_userid="wmCHEN0002")
    assert chen is not None and (chen.tags, chen.vip_level) == (["SVIP", "普通客户"], 2)
    idents = await CustomerIdentity.filter(customer_id=wang.id).order_by("kind").values_list("kind", "scope",
                                                                                           "value")
    corp = wecom.sim.wecom.corp_id
    assert idents == [("external_userid", corp, "wmVIP0001"), ("unionid", "", "oUnionWang0001")]
    again = await external.full_sync(api=wecom.api("customer"))
    assert (again.added, again.changed, again.disabled) == ({}, {}, {})


async def test_unionid_joins_the_official_account_follower(wecom: WeComEnv) -> None:
    mp_customer = await customers.resolve_identity(kind="mp_openid", scope="default", value="oMPfollower1")
    await customers.add_identity(customer=mp_customer, kind="unionid", value="oUnionWang0001")
    await directory.full_sync(api=wecom.api())
    _seed_contacts(wecom)
    await external.full_sync(api=wecom.api("customer"))
    wang = await external.customer_for(external_userid="wmVIP0001")
    assert wang is not None and wang.id == mp_customer.id  # one customer, one history
    kinds = sorted(await CustomerIdentity.filter(customer_id=wang.id).values_list("kind", flat=True))
    assert kinds == ["external_userid", "mp_openid", "unionid"]


async def test_events_reread_and_mark_deleted_relations(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    _seed_contacts(wecom)
    await external.full_sync(api=wecom.api("customer"))
    store = wecom.sim.wecom
    driver = wecom.app_driver
    # a new contact added by wangfang, with a tag edit arriving twice and late
    store.set_external_contact("wmNEW0003", name="赵老板", type=2, corp_name="深圳贸易有限公司")
    store.follow("wmNEW0003", "wangfang", tag_ids=[VIP])
    edit = driver.change_external_contact_xml("edit_external_contact", "wangfang", "wmNEW0003")
    store.follow("wmNEW0003", "wangfang", tag_ids=[SVIP])
    await driver.change_external_contact("add_external_contact", "wangfang", "wmNEW0003", State="web",
                                         WelcomeCode="WELCOME")
    await driver.deliver_xml(edit)
    await driver.deliver_xml(edit.replace("</xml>", "<X>retry</X></xml>"))
    # lina deletes 陈女士; the customer deletes lina from 王先生
    store.unfollow("wmCHEN0002", "lina")
    await driver.change_external_contact("del_external_contact", "lina", "wmCHEN0002")
    store.unfollow("wmVIP0001", "lina")
    await driver.change_external_contact("del_follow_user", "lina", "wmVIP0001")
    await wecom.settle()
    zhao = await external.customer_for(external_userid="wmNEW0003")
    assert zhao is not None and (zhao.name, zhao.vip_level, zhao.tags) == ("赵老板", 2, ["SVIP"])
    rows = sorted(await ExternalFollow.all().values_list("contact__external_userid", "userid", "status"))
    assert rows == [("wmCHEN0002", "chenjing", "active"), ("wmCHEN0002", "lina", "deleted_by_staff"),
                    ("wmNEW0003", "wangfang", "active"), ("wmVIP0001", "lina", "deleted_by_customer")]
    assert (await ExternalContact.get(external_userid="wmVIP0001")).status == "gone"
    chen = await external.customer_for(external_userid="wmCHEN0002")
    assert chen is not None and (chen.tags, chen.vip_level) == (["普通客户"], 0)


async def test_a_new_contact_read_by_event_takes_a_tag_made_since_the_last_tag_sync(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    _seed_contacts(wecom)
    await external.full_sync(api=wecom.api("customer"))
    store = wecom.sim.wecom
    store.add_corp_tag("etNEWTAG0001", "展会客户", "etGROUPEXPO", "来源")  # not in our tag library yet
    store.set_external_contact("wmEXPO0004", name="钱经理", type=1)
    store.follow("wmEXPO0004", "wangfang", tag_ids=["etNEWTAG0001", VIP], remark_mobiles=["13900001111"])
    await wecom.app_driver.change_external_contact("add_external_contact", "wangfang", "wmEXPO0004")
    await wecom.settle()
    qian = await external.customer_for(external_userid="wmEXPO0004")
    assert qian is not None and (qian.tags, qian.vip_level) == (["VIP", "展会客户"], 1)
    assert customers.phone_of(qian) == "+8613900001111"
    contact = await ExternalContact.get(external_userid="wmEXPO0004")
    assert (contact.tag_names, contact.vip_from_tags) == (["VIP", "展会客户"], 1)

# -- data isolation: the permission matrix extended to external-contact customers ------------------------------

#: (role, where the follow user sits) -> may the actor see the customer
EXTERNAL_MATRIX: dict[tuple[str, str], bool] = {
    ("admin", "own"): True, ("admin", "child"): True, ("admin", "sibling"): True,
    ("lead", "own"): True, ("lead", "child"): True, ("lead", "sibling"): False,
    ("agent", "own"): True, ("agent", "child"): False, ("agent", "sibling"): False,
}
#: reveal needs the right on top of the scope
REVEAL = {"admin": 200, "lead": 200, "agent": 403}


@pytest.mark.parametrize(("role", "where"), sorted(EXTERNAL_MATRIX))
async def test_external_contact_permission_matrix(api: httpx.AsyncClient, role: str, where: str,
                                                  wecom: WeComEnv) -> None:
    """role × (follow user in own / child / sibling department) × (list, read, reply, patch, reveal)."""
    await directory.full_sync(api=wecom.api())
    # the actors: admin and lead of 客户服务部 (2), agent in 一线客服组 (3); the follow user per column
    await Staff.filter(userid="admin").update(role="admin")
    actors = {"admin": "admin", "lead": "zhangwei", "agent": "lina"}
    follow_user = {"own": "lina" if role == "agent" else "zhangwei", "child": "wangfang", "sibling": "chenjing"}
    store = wecom.sim.wecom
    store.contacts.clear()
    store.contacts_by_user.clear()
    store.set_external_contact("wmMATRIX01", name="矩阵客户")
    store.follow("wmMATRIX01", follow_user[where], remark_mobiles=["13812345678"])
    if role == "agent" and where == "child":
        # an agent has no child departments: put the contact with a member of another department below theirs
        store.set_department(7, "一线夜班", 3, 70)
        store.set_user("night", name="夜班", department=[7], is_leader_in_dept=[0])
        await directory.refresh_department(api=wecom.api(), dept_id=7)
        await directory.refresh_user(api=wecom.api(), userid="night")
        store.contacts.clear()
        store.contacts_by_user.clear()
        store.set_external_contact("wmMATRIX01", name="矩阵客户")
        store.follow("wmMATRIX01", "night", remark_mobiles=["13812345678"])
    await external.full_sync(api=wecom.api("customer"))
    customer = await external.customer_for(external_userid="wmMATRIX01")
    assert customer is not None
    staff = await Staff.get(userid=actors[role])
    visible = EXTERNAL_MATRIX[(role, where)]
    h = {"Authorization": f"Bearer {await factories.token(staff)}"}

    listed = (await api.get("/api/v1/customers", params={"q": "矩阵"}, headers=h)).json()["items"]
    assert (customer.id in [c["id"] for c in listed]) == visible
    r = await api.get(f"/api/v1/customers/{customer.id}", headers=h)
    assert r.status_code == (200 if visible else 404)
    if visible:
        assert r.json()["phone"] == "138****5678"
    r = await api.post(f"/api/v1/customers/{customer.id}/reveal", headers=h, json={"field": "phone", "reason": "回访"})
    assert r.status_code == (REVEAL[role] if visible else 404)
    if r.status_code == 200:
        assert r.json() == {"field": "phone", "value": "+8613812345678"}
    # reply and patch act on tickets: a ticket of this customer is governed by the ticket matrix, and seeing the
    # customer through WeCom grants nothing on tickets outside the actor's groups
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="外部联系人工单")
    assert (await api.post(f"/api/v1/tickets/{ticket.id}/messages", headers=h,
                           json={"text": "回复"})).status_code == (201 if role == "admin" else 404)
    version = (await Ticket.get(id=ticket.id)).version
    r = await api.patch(f"/api/v1/tickets/{ticket.id}", headers=h, json={"version": version, "priority": "high"})
    assert r.status_code == (200 if role == "admin" else 404)
    actor = await actor_for(staff)
    assert (await customers.search(actor=actor, q="wmMATRIX01") != []) == visible


# -- the full sync's writes: batched per page, nothing for what did not change ---------------------------------

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _writes(statements: list[str]) -> list[str]:
    """Write statements, less the run's own bookkeeping (its row and its resume cursor)."""
    plain = (s.strip().replace("`", '"').replace("%s", "?") for s in statements)  # MySQL quotes and parameters
    return [s for s in plain if s.upper().startswith(_WRITES) and '"wecom_sync_run"' not in s]


def _seed_many(env: WeComEnv, n: int) -> None:
    store = env.sim.wecom
    store.contacts.clear()
    store.contacts_by_user.clear()
    users = ["lina", "chenjing", "wangfang"]
    for i in range(n):
        ext = f"wmBULK{i:05d}"
        store.set_external_contact(ext, name=f"客户{i}", type=1, unionid=f"oUnionBulk{i:05d}" if i % 3 == 0 else "")
        store.follow(ext, users[i % 3], remark=f"备注{i}", tag_ids=[VIP] if i % 5 == 0 else [NORMAL],
                     remark_mobiles=[f"1381234{i:04d}"] if i % 2 == 0 else [])
        if i % 4 == 0:
            store.follow(ext, users[(i + 1) % 3], remark=f"二号{i}", tag_ids=[WEB])


async def test_a_first_full_sync_writes_per_page_not_per_contact(wecom: WeComEnv) -> None:
    from tests.sqlcount import count_statements

    await directory.full_sync(api=wecom.api())
    _seed_many(wecom, 250)
    with count_statements() as statements:
        report = await external.full_sync(api=wecom.api("customer"))
    assert report.added == {"external_contacts": 250, "follows": 313}
    pages = report.api_calls - 2  # corp tags, follow users
    assert pages == 4
    # customers, identities, contacts and follows in a few statements per page (not one per contact)
    assert len(statements) <= 40 * pages, len(statements)
    assert await CustomerIdentity.filter(kind="external_userid").count() == 250
    assert await CustomerIdentity.filter(kind="unionid").count() == 84
    customer = await external.customer_for(external_userid="wmBULK00000")
    assert customer is not None
    assert (customer.name, customer.tags, customer.vip_level) == ("客户0", ["VIP", "官网"], 1)
    assert customers.phone_of(customer) == "+8613812340000"
    assert customer.email_hash is None  # nothing of the batch insert's bookkeeping is left on the row
    other = await external.customer_for(external_userid="wmBULK00001")
    assert other is not None and (other.name, other.tags, other.vip_level) == ("客户1", ["普通客户"], 0)
    assert other.phone_enc is None
    ids = await CustomerIdentity.filter(kind="external_userid").values_list("customer_id", flat=True)
    assert len(set(ids)) == 250  # one customer each


async def test_a_full_sync_applies_its_pages_with_the_collector_paused_and_gives_it_back(
        wecom: WeComEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    await directory.full_sync(api=wecom.api())
    _seed_many(wecom, 250)
    collecting: list[bool] = []
    apply = external._Applier.apply

    async def watched(self: external._Applier, *args: Any, **kwargs: Any) -> None:
        collecting.append(gc.isenabled())
        await apply(self, *args, **kwargs)

    monkeypatch.setattr(external._Applier, "apply", watched)
    assert gc.isenabled()
    report = await external.full_sync(api=wecom.api("customer"))
    assert report.added == {"external_contacts": 250, "follows": 313}
    assert collecting == [False]  # 4 pages, one group: applied with no collection walking its rows
    assert gc.isenabled()


async def test_new_contacts_whose_ids_fall_below_the_last_one_read_are_found_by_key(
        wecom: WeComEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # auto-increment ids only grow on MySQL, MariaDB and SQLite; should a table hand out lower ones (its counter
    # reset), the new contacts are read back by their external_userid instead of failing the sync
    async def far_ahead(model: object) -> int:
        return 10**9

    async def no(model: object, *, rows: int) -> int:
        return 0

    monkeypatch.setattr(external, "id_step", no)  # a server that does not hand out consecutive ids
    monkeypatch.setattr(external, "max_id", far_ahead)
    await directory.full_sync(api=wecom.api())
    _seed_contacts(wecom)
    report = await external.full_sync(api=wecom.api("customer"))
    assert report.added == {"external_contacts": 2, "follows": 3}
    contacts = {c.external_userid: c for c in await ExternalContact.all()}
    assert sorted(contacts) == ["wmCHEN0002", "wmVIP0001"]
    assert sorted((f.contact_id, f.userid) for f in await ExternalFollow.all()) == sorted(  # type: ignore[attr-defined]
        [(contacts["wmVIP0001"].id, "lina"), (contacts["wmCHEN0002"].id, "chenjing"),
         (contacts["wmCHEN0002"].id, "lina")])


async def test_a_second_full_sync_of_unchanged_contacts_writes_only_the_seen_marks(wecom: WeComEnv) -> None:
    from tests.sqlcount import count_statements

    await directory.full_sync(api=wecom.api())
    _seed_many(wecom, 250)
    await external.full_sync(api=wecom.api("customer"))
    with count_statements() as statements:
        report = await external.full_sync(api=wecom.api("customer"), resume=False)
    assert (report.added, report.changed, report.disabled) == ({}, {}, {})
    writes = _writes(statements)
    assert writes, "the follows this run saw are marked (stale relations are found by that mark)"
    assert all(w.startswith('UPDATE "wecom_external_follow" SET "seen_run"=?') for w in writes), writes
    assert len(writes) <= report.api_calls - 2  # one per page at most
    assert len(statements) <= 12 * (report.api_calls - 2) + 10, len(statements)


async def test_a_second_full_sync_updates_changes_and_ends_removed_relations(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    _seed_many(wecom, 250)
    await external.full_sync(api=wecom.api("customer"))
    store = wecom.sim.wecom
    store.set_external_contact("wmBULK00001", name="改名了", type=2, corp_name="新公司")
    store.follow("wmBULK00002", "wangfang", remark="新备注", tag_ids=[SVIP], remark_mobiles=["13912345678"])
    store.unfollow("wmBULK00004", "wangfang")  # the second follow user of 4 leaves; chenjing stays
    store.unfollow("wmBULK00005", "wangfang")  # its only follow user: the contact is gone
    report = await external.full_sync(api=wecom.api("customer"), resume=False)
    assert report.added == {}
    assert report.changed == {"external_contacts": 1, "follows": 1}
    assert report.disabled == {"follows": 2, "external_contacts": 1}
    one = await ExternalContact.get(external_userid="wmBULK00001")
    assert (one.name, one.type, one.corp_name, one.status) == ("改名了", 2, "新公司", "active")
    follow = await ExternalFollow.get(contact__external_userid="wmBULK00002", userid="wangfang")
    assert (follow.remark, follow.status, follow.remark_mobile_hashes) == (
        "新备注", "active", [keyed_hash("+8613912345678")])
    assert follow.remark_mobiles_enc is not None
    assert decrypt_field(follow.remark_mobiles_enc) == '["+8613912345678"]'
    two = await external.customer_for(external_userid="wmBULK00002")
    assert two is not None and (two.tags, two.vip_level) == (["SVIP"], 2)
    assert customers.phone_of(two) == "+8613812340002"  # a customer's phone is kept once set
    statuses = sorted(await ExternalFollow.filter(contact__external_userid__in=["wmBULK00004", "wmBULK00005"])
                      .values_list("contact__external_userid", "userid", "status"))
    assert statuses == [("wmBULK00004", "chenjing", "active"), ("wmBULK00004", "wangfang", "gone"),
                        ("wmBULK00005", "wangfang", "gone")]
    assert (await ExternalContact.get(external_userid="wmBULK00005")).status == "gone"
    again = await external.full_sync(api=wecom.api("customer"), resume=False)
    assert (again.added, again.changed, again.disabled) == ({}, {}, {})


def test_remark_mobiles_normalize_as_normalize_phone_does() -> None:
    import random

    from app.security.crypto import normalize_phone

    rng = random.Random(7)
    samples = ["13812345678", "12345678901", "10000000000", "19912345678", "+8613812345678", "138 1234 5678",
               "021-12345678", "1381234567", "138123456789", "１３８１２３４５６７８", "abc", ""]
    samples += ["1" + "".join(rng.choice("0123456789") for _ in range(10)) for _ in range(3000)]
    for raw in samples:
        assert external._normalize_mobile(raw) == normalize_phone(raw), raw


async def test_a_relation_a_full_sync_finds_ended_takes_its_tags_off_the_customer(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    store = wecom.sim.wecom
    store.contacts.clear()
    store.contacts_by_user.clear()
    store.set_external_contact("wmTagGone01", name="赵女士", type=1)
    store.follow("wmTagGone01", "wangfang", remark="大客户", tag_ids=[SVIP])
    store.follow("wmTagGone01", "chenjing", remark="", tag_ids=[WEB])
    await external.full_sync(api=wecom.api("customer"))
    before = await external.customer_for(external_userid="wmTagGone01")
    assert before is not None and (before.tags, before.vip_level) == (sorted(["SVIP", "官网"]), 2)
    store.unfollow("wmTagGone01", "wangfang")  # missed as an event: only the next full sync learns it
    report = await external.full_sync(api=wecom.api("customer"), resume=False)
    assert report.disabled == {"follows": 1}
    after = await external.customer_for(external_userid="wmTagGone01")
    assert after is not None and (after.tags, after.vip_level) == (["官网"], 0)


async def test_pages_are_read_ahead_and_an_interrupted_sync_resumes_after_the_last_written_page(
        wecom: WeComEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.wecom.errors import PlatformBusy
    from wecom_sync.models import SyncRun

    await directory.full_sync(api=wecom.api())
    _seed_many(wecom, 250)
    monkeypatch.setattr(external, "PAGE_LIMIT", 50)
    monkeypatch.setattr(external, "GROUP_PAGES", 2)
    api = wecom.api("customer")
    read = api.batch_get_by_user
    calls: list[str] = []

    async def fourth_page_fails(userids: list[str], *, cursor: str = "", limit: int = 100) -> dict[str, object]:
        calls.append(cursor)
        if len(calls) == 4:
            raise PlatformBusy(-1, "system busy")
        return await read(userids, cursor=cursor, limit=limit)

    monkeypatch.setattr(api, "batch_get_by_user", fourth_page_fails)
    with pytest.raises(PlatformBusy):
        await external.full_sync(api=api)
    [run] = await SyncRun.filter(kind="external_contacts")
    # pages 1 and 2 were written together; page 3 was read but not written when page 4 failed
    assert (run.status, run.cursor) == ("running", {"batch": 0, "cursor": calls[2]})
    written = await ExternalFollow.all().count()
    assert run.report["added"] == {"external_contacts": await ExternalContact.all().count(), "follows": written}
    assert written == 100
    monkeypatch.setattr(api, "batch_get_by_user", read)
    report = await external.full_sync(api=api)
    assert report.resumed and report.run_id == run.id
    assert report.added == {"external_contacts": 250, "follows": 313}
    assert report.api_calls == 2 + 5  # corp tags, follow users, then pages 3 to 7 of 313 relations
    assert (await SyncRun.get(id=run.id)).status == "done"
    again = await external.full_sync(api=api, resume=False)
    assert (again.added, again.changed, again.disabled) == ({}, {}, {})


async def test_a_remark_mobile_learned_later_gives_a_phoneless_customer_its_phone(wecom: WeComEnv) -> None:
    await directory.full_sync(api=wecom.api())
    store = wecom.sim.wecom
    store.contacts.clear()
    store.contacts_by_user.clear()
    store.set_external_contact("wmPhone0001", name="孙先生", type=1)
    store.follow("wmPhone0001", "lina", remark="孙总", tag_ids=[NORMAL])
    store.set_external_contact("wmPhone0002", name="周女士", type=1)
    store.follow("wmPhone0002", "lina", remark="周姐", tag_ids=[NORMAL], remark_mobiles=["13800000002"])
    await external.full_sync(api=wecom.api("customer"))
    sun = await external.customer_for(external_userid="wmPhone0001")
    assert sun is not None and sun.phone_enc is None
    store.follow("wmPhone0001", "chenjing", remark="", tag_ids=[VIP], remark_mobiles=["13900000001"])
    store.follow("wmPhone0002", "chenjing", remark="", tag_ids=[], remark_mobiles=["13900000009"])
    report = await external.full_sync(api=wecom.api("customer"), resume=False)
    assert report.added == {"follows": 2}
    sun = await external.customer_for(external_userid="wmPhone0001")
    assert sun is not None and (sun.tags, sun.vip_level) == (["VIP", "普通客户"], 1)
    assert customers.phone_of(sun) == "+8613900000001" and sun.phone_hash == keyed_hash("+8613900000001")
    zhou = await external.customer_for(external_userid="wmPhone0002")
    assert zhou is not None and customers.phone_of(zhou) == "+8613800000002"  # a phone, once set, is kept


@pytest.mark.parametrize("ids_from_insert", [True, False], ids=["ids_from_the_insert", "ids_read_back"])
async def test_new_customers_get_their_own_ids_in_any_number_and_keep_no_marker(
        db: None, ids_from_insert: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from tortoise.transactions import in_transaction

    from app.customers.models import Customer

    if not ids_from_insert:
        async def no(model: object, *, rows: int) -> int:
            return 0

        monkeypatch.setattr(external, "id_step", no)  # markers, read back

    await Customer.create(name="先来的客户")
    # twelve rows: unpadded markers would sort "10" and "11" before "2"
    rows: list[dict[str, object]] = [{"name": f"客户{i}", "tags": [f"t{i}"], "vip_level": i % 3} for i in range(12)]
    async with in_transaction("default"):
        await external._insert_customers(rows)
    assert all("email_hash" not in row for row in rows)
    stored = {c.id: c for c in await Customer.filter(id__in=[row["id"] for row in rows])}
    assert [(stored[row["id"]].name, stored[row["id"]].tags, stored[row["id"]].vip_level)  # type: ignore[index]
            for row in rows] == [(f"客户{i}", [f"t{i}"], i % 3) for i in range(12)]
    assert await Customer.filter(email_hash__isnull=False).count() == 0
