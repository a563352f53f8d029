"""Customer merge (issue 10, observation 12): the same verified phone or e-mail on two channels is suggested, staff
with the right merge and unmerge (audited), and the survivor keeps every identity, conversation, message and ticket."""

from __future__ import annotations

from typing import Any

from app.conversations.models import Conversation, Message
from app.customers import merging
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity, CustomerMerge
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests import factories

PHONE = "13812345678"


async def _channel_customer(kind: str, scope: str, value: str, *, group: Any, text: str) -> dict[str, Any]:
    """A customer known on one channel, with a conversation, a message and a ticket."""
    customer = await customers.resolve_identity(kind=kind, scope=scope, value=value, name="王先生")
    conv = await Conversation.create(customer=customer)
    msg = await Message.create(conversation=conv, customer=customer, direction="in", author_kind="customer", text=text)
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=text, group_id=group.id)
    ident = await CustomerIdentity.get(kind=kind, scope=scope, value=value)
    return {"customer": customer, "conv": conv, "msg": msg, "ticket": ticket, "ident": ident}


async def _where(row: dict[str, Any]) -> dict[str, int]:
    """Which customer each of a channel customer's rows belongs to now."""
    return {
        "ident": (await CustomerIdentity.get(id=row["ident"].id)).customer_id,  # type: ignore[attr-defined]
        "conv": (await Conversation.get(id=row["conv"].id)).customer_id,  # type: ignore[attr-defined]
        "msg": (await Message.get(id=row["msg"].id)).customer_id,  # type: ignore[attr-defined]
        "ticket": (await Ticket.get(id=row["ticket"].id)).customer_id,  # type: ignore[attr-defined]
    }


async def _two_channels(o: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    group = o["groups"]["service"]
    mp = await _channel_customer("mp_openid", "mp-main", "openid-1", group=group, text="公众号里问退款")
    kf = await _channel_customer("kf_external_userid", "kf-1", "wm-ext-1", group=group, text="客服里问退款")
    return mp, kf


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_same_phone_on_two_channels_is_suggested_merged_and_unmerged(api: Any) -> None:
    o = await factories.org()
    lead = _auth(await factories.token(o["people"]["lead"]))
    mp, kf = await _two_channels(o)
    a, b = mp["customer"], kf["customer"]
    # the Official Account customer's phone came from the WeCom directory (entered by staff): verified
    await customers.set_contact(customer=a, phone=PHONE, verified=True)
    # the kf customer typed the same number in the chat: not verified until a staff member confirms it
    await customers.set_contact(customer=b, phone=PHONE)
    r = await api.get("/api/v1/customers/merge-suggestions", headers=lead)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": []}
    r = await api.post(f"/api/v1/customers/{b.id}/verify", headers=lead, json={"field": "phone"})
    assert r.status_code == 200, r.text

    r = await api.get("/api/v1/customers/merge-suggestions", headers=lead)
    items = r.json()["items"]
    assert [([c["id"] for c in s["customers"]], s["matched"], s["label"]) for s in items] == [
        ([a.id, b.id], ["phone"], "手机号相同（已验证）")]
    assert PHONE not in r.text  # masked like every customer view
    assert items[0]["customers"][0]["phone"] == "138****5678"

    r = await api.post("/api/v1/customers/merges", headers=lead,
                       json={"survivor_id": a.id, "merged_id": b.id, "comment": "同一位客户"})
    assert r.status_code == 201, r.text
    merge_id = r.json()["id"]
    assert (r.json()["survivor_id"], r.json()["merged_id"], r.json()["reason"]) == (a.id, b.id, "phone")
    assert await _where(mp) == {"ident": a.id, "conv": a.id, "msg": a.id, "ticket": a.id}
    assert await _where(kf) == {"ident": a.id, "conv": a.id, "msg": a.id, "ticket": a.id}
    assert (await Customer.get(id=b.id)).merged_into_id == a.id  # type: ignore[attr-defined]
    r = await api.get(f"/api/v1/customers/{a.id}/identities", headers=lead)
    assert sorted(i["kind"] for i in r.json()["items"]) == ["kf_external_userid", "mp_openid"]
    assert (await api.get("/api/v1/customers/merge-suggestions", headers=lead)).json() == {"items": []}
    record = await CustomerMerge.get(id=merge_id)
    # b's phone verification stays with b: a holds the same one
    assert record.moved == {"identities": [kf["ident"].id], "conversations": [kf["conv"].id],
                            "tickets": [kf["ticket"].id], "messages": [kf["msg"].id], "verifications": []}

    r = await api.post(f"/api/v1/customers/merges/{merge_id}/undo", headers=lead, json={"comment": "合错了"})
    assert r.status_code == 200, r.text
    assert await _where(mp) == {"ident": a.id, "conv": a.id, "msg": a.id, "ticket": a.id}
    assert await _where(kf) == {"ident": b.id, "conv": b.id, "msg": b.id, "ticket": b.id}
    assert (await Customer.get(id=b.id)).merged_into_id is None  # type: ignore[attr-defined]
    # staff said they are two people: the pair is not suggested again
    assert (await api.get("/api/v1/customers/merge-suggestions", headers=lead)).json() == {"items": []}
    r = await api.post(f"/api/v1/customers/merges/{merge_id}/undo", headers=lead, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "merge_undone"

    lead_id = o["people"]["lead"].id
    audit = await AuditLog.filter(object_type="customer").order_by("id").values_list(
        "staff_id", "action", "object_id", "field", "reason")
    assert audit == [
        (lead_id, "verify", str(b.id), "phone", "确认手机号"),
        (lead_id, "merge", str(a.id), "phone", f"合并客户 #{b.id}：同一位客户"),
        (lead_id, "unmerge", str(a.id), "phone", f"撤销合并客户 #{b.id}：合错了"),
    ]


async def test_unmerge_restores_the_survivors_fields(db: None) -> None:
    o = await factories.org()
    admin = await factories.actor(o["people"]["admin"])
    a = await customers.create(name="", vip_level=0)
    b = await customers.create(name="赵女士", email="zhao@example.com", vip_level=2, verified=True)
    await Customer.filter(id=b.id).update(tags=["老客户"])
    b = await Customer.get(id=b.id)
    record = await merging.merge_customers(actor=admin, survivor_id=a.id, merged_id=b.id, comment="")
    merged = await Customer.get(id=a.id)
    assert (merged.name, merged.vip_level, merged.tags, customers.email_of(merged)) == (
        "赵女士", 2, ["老客户"], "zhao@example.com")
    assert await customers.verified_kinds(merged) == {"email"}  # b's verification moved with b's address
    assert record.reason == "manual"
    await merging.unmerge(actor=admin, merge_id=record.id, comment="")
    back = await Customer.get(id=a.id)
    assert (back.name, back.vip_level, back.tags, back.email_enc or None, back.email_hash or None) == (
        "", 0, [], None, None)
    assert await customers.verified_kinds(back) == set()
    assert await customers.verified_kinds(await Customer.get(id=b.id)) == {"email"}


async def test_unverified_contacts_make_no_suggestion(db: None) -> None:
    o = await factories.org()
    admin = await factories.actor(o["people"]["admin"])
    a = await customers.create(name="甲", phone=PHONE)
    await customers.create(name="乙", phone=PHONE, verified=True)
    assert await merging.merge_suggestions(actor=admin) == []
    await merging.verify_contact(actor=admin, customer_id=a.id, field="phone")
    assert [s.matched for s in await merging.merge_suggestions(actor=admin)] == [["phone"]]


async def test_agents_may_not_merge_and_nothing_changes(api: Any) -> None:
    o = await factories.org()
    agent = _auth(await factories.token(o["people"]["agent"]))
    mp, kf = await _two_channels(o)
    a, b = mp["customer"], kf["customer"]
    r = await api.get("/api/v1/customers/merge-suggestions", headers=agent)
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "merge_forbidden", "message": "只有管理员和组长可以合并客户"}
    r = await api.post("/api/v1/customers/merges", headers=agent, json={"survivor_id": a.id, "merged_id": b.id})
    assert r.status_code == 403
    record = await customers.merge(survivor=a, other=b)
    merge = await CustomerMerge.get(survivor_id=record.id)
    r = await api.post(f"/api/v1/customers/merges/{merge.id}/undo", headers=agent, json={})
    assert r.status_code == 403
    assert (await CustomerMerge.get(id=merge.id)).undone_at is None
    assert await AuditLog.filter(staff_id=o["people"]["agent"].id).count() == 0


async def test_bad_merge_requests_are_4xx_and_change_nothing(api: Any) -> None:
    o = await factories.org()
    admin = _auth(await factories.token(o["people"]["admin"]))
    lead = _auth(await factories.token(o["people"]["lead"]))
    mp, kf = await _two_channels(o)
    a, b = mp["customer"], kf["customer"]
    outsider = await customers.create(name="技术部的客户")
    await tickets.create(actor=SYSTEM, customer_id=outsider.id, subject="别的部门", group_id=o["groups"]["tech"].id)
    cases = [
        (admin, {"survivor_id": a.id, "merged_id": a.id}, 422, "same_customer"),
        (admin, {"survivor_id": a.id, "merged_id": 99999}, 404, "not_found"),
        (admin, {"survivor_id": a.id}, 422, "invalid_fields"),
        (admin, {"survivor_id": "x", "merged_id": b.id}, 422, "invalid_fields"),
        (lead, {"survivor_id": a.id, "merged_id": outsider.id}, 404, "not_found"),  # out of the lead's scope
    ]
    for headers, body, status, code in cases:
        r = await api.post("/api/v1/customers/merges", headers=headers, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
    r = await api.post("/api/v1/customers/merges", headers=admin, content=b"{not json")
    assert r.status_code == 400
    r = await api.post("/api/v1/customers/merges/12345/undo", headers=admin, json={})
    assert r.status_code == 404
    r = await api.post(f"/api/v1/customers/{a.id}/verify", headers=admin, json={"field": "phone"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "no_contact")  # nothing to confirm
    assert await CustomerMerge.all().count() == 0
    assert await Customer.filter(merged_into_id__not_isnull=True).count() == 0
    assert await AuditLog.all().count() == 0


async def test_the_unionid_merge_uses_the_same_routine_and_can_be_undone(db: None) -> None:
    o = await factories.org()
    admin = await factories.actor(o["people"]["admin"])
    group = o["groups"]["service"]
    mp = await _channel_customer("mp_openid", "mp-main", "openid-1", group=group, text="公众号")
    await customers.add_identity(customer=mp["customer"], kind="unionid", value="union-1")
    kf = await _channel_customer("mp_openid", "mp-other", "openid-2", group=group, text="另一个公众号")
    survivor = await customers.add_identity(customer=kf["customer"], kind="unionid", value="union-1")
    assert survivor.id == mp["customer"].id
    record = await CustomerMerge.get()
    assert (record.reason, record.staff_id, record.survivor_id, record.merged_id) == (  # type: ignore[attr-defined]
        "unionid", None, mp["customer"].id, kf["customer"].id)
    assert await _where(kf) == {"ident": survivor.id, "conv": survivor.id, "msg": survivor.id, "ticket": survivor.id}
    audit = await AuditLog.get(action="merge")
    assert (audit.staff_id, audit.object_id, audit.field) == (None, str(survivor.id), "unionid")  # type: ignore[attr-defined]
    await merging.unmerge(actor=admin, merge_id=record.id, comment="不是同一人")
    assert await _where(kf) == {"ident": kf["customer"].id, "conv": kf["customer"].id, "msg": kf["customer"].id,
                                "ticket": kf["customer"].id}


async def test_a_typed_number_never_replaces_a_verified_one(db: None) -> None:
    customer = await customers.create(name="甲", phone=PHONE, verified=True)
    await customers.set_contact(customer=customer, phone="13900001111")  # typed in a chat
    fresh = await Customer.get(id=customer.id)
    assert (customers.phone_of(fresh), await customers.verified_kinds(fresh)) == ("+86" + PHONE, {"phone"})
    await customers.set_contact(customer=fresh, phone=PHONE)  # the same number again stays verified
    assert await customers.verified_kinds(await Customer.get(id=customer.id)) == {"phone"}
    plain = await customers.create(name="乙", phone=PHONE)
    await customers.set_contact(customer=plain, phone="13900001111")
    assert customers.phone_of(await Customer.get(id=plain.id)) == "+8613900001111"


async def test_a_lead_sees_only_suggestions_in_scope(db: None) -> None:
    o = await factories.org()
    lead = await factories.actor(o["people"]["lead"])
    admin = await factories.actor(o["people"]["admin"])
    mine = await customers.create(name="甲", phone=PHONE, verified=True)
    theirs = await customers.create(name="乙", phone=PHONE, verified=True)
    await tickets.create(actor=SYSTEM, customer_id=mine.id, subject="客服", group_id=o["groups"]["service"].id)
    await tickets.create(actor=SYSTEM, customer_id=theirs.id, subject="技术", group_id=o["groups"]["tech"].id)
    assert await merging.merge_suggestions(actor=lead) == []
    found = await merging.merge_suggestions(actor=admin)
    assert [(s.customers[0].id, s.customers[1].id, s.label) for s in found] == [
        (mine.id, theirs.id, "手机号相同（已验证）")]
