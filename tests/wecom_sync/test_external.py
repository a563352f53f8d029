"""External-contact sync: customers from follow users' contacts, unionid merge, tags, events, data isolation."""

from __future__ import annotations

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
