"""Issue 11, PIPL rights: an admin exports everything held about a customer, then erases it; afterwards no text
column of any table holds their phone, e-mail, name, openid or message texts, the media file is gone, the tickets
keep their figures and the audit chain verifies.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from tortoise import Tortoise, fields

from app import intake
from app.channels.base import InboundMessage
from app.channels.models import ChannelAccount, InboundEvent
from app.conversations.models import Message
from app.customers import privacy
from app.customers import service as customers
from app.customers.models import Customer
from app.errors import PermissionDenied
from app.kb.models import BotQuery
from app.outbox.models import OutboxMessage
from app.security import chain
from app.security import service as security
from app.security.models import AuditLog
from app.security.reauth import ReauthRequired
from app.security.scope import SYSTEM, Actor
from app.settings import Settings
from app.tickets import states
from app.tickets.models import Ticket, TicketRating
from app.timeutil import utcnow
from tests import factories
from wecom_sync.models import ExternalContact, ExternalFollow

NAME = "欧阳小明"
PHONE = "13812345678"
EMAIL = "xiaoming.ouyang@example.com"
OPENID = "oMpOpenidXiaoming0001"
KF_USER = "wmKfXiaomingExternal01"
OPEN_KFID = "wkPrivacyKf01"
WECOM_USER = "wmWeComXiaoming0001"
TEXTS = ["我要退款，订单号 DD20261204001 的耳机坏了", "空调报修，地址是幸福路88号三楼",
         "投诉：快递员态度恶劣，麻烦尽快处理"]


async def _accounts() -> tuple[ChannelAccount, ChannelAccount]:
    mp = await ChannelAccount.create(kind="wechat_mp", key="privacy-mp", name="服务号",
                                     config={"appid": "wxprivacy0000001", "bot": False})
    kf = await ChannelAccount.create(kind="wecom_kf", key=OPEN_KFID, name="售后客服",
                                     config={"open_kfid": OPEN_KFID, "bot": False})
    return mp, kf


def _inbound(account: ChannelAccount, kind: str, sender: str, msg_id: str, text: str) -> InboundMessage:
    return InboundMessage(channel=account.kind, channel_account_id=account.id, sender_kind=kind, sender_id=sender,
                          msg_type="text", provider_msg_id=msg_id, created_at=utcnow(), text=text)


async def _customer_on_two_channels(settings: Settings) -> dict[str, Any]:
    """A customer who wrote on 公众号 and 微信客服: messages, tickets, a rating, a photo, a raw callback, a KB query."""
    mp, kf = await _accounts()
    await intake.receive(inbound=_inbound(mp, "mp_openid", OPENID, "70001", TEXTS[0]), account=mp)
    customer = await customers.find_by_identity(kind="mp_openid", scope=mp.key, value=OPENID)
    assert customer is not None
    await Customer.filter(id=customer.id).update(name=NAME)
    await customers.set_contact(customer=customer, phone=PHONE, email=EMAIL)
    await customers.add_identity(customer=customer, kind="kf_external_userid", scope=OPEN_KFID, value=KF_USER)
    first_ticket = await Ticket.get(customer_id=customer.id)
    await states.transition(ticket_id=first_ticket.id, to="closed", expected_version=first_ticket.version,
                            actor=SYSTEM, reason="测试：先关闭公众号的工单")
    await intake.receive(inbound=_inbound(kf, "kf_external_userid", KF_USER, "kfmsg-1", TEXTS[1]), account=kf)
    await intake.receive(inbound=_inbound(kf, "kf_external_userid", KF_USER, "kfmsg-2", TEXTS[2]), account=kf)
    tickets = await Ticket.filter(customer_id=customer.id).order_by("id")
    assert len(tickets) >= 2 and {t.channel_account_id for t in tickets} == {mp.id, kf.id}  # type: ignore[attr-defined]
    # the raw callback of the first message, as the MP endpoint stored it
    await InboundEvent.create(channel_account=mp, dedupe_key="wechat_mp:wxprivacy0000001:msg:70001", status="done",
                              payload=f"<xml><ToUserName>gh_1</ToUserName><FromUserName>{OPENID}</FromUserName>"
                                      f"<MsgType>text</MsgType><Content>{TEXTS[0]}</Content><MsgId>70001</MsgId></xml>")
    # a photo the customer sent, on disk under the media dir
    photo = settings.media_dir / "2026/12/privacy-photo.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(b"\xff\xd8jpeg")
    first = await Message.filter(customer_id=customer.id, direction="in").order_by("id").first()
    assert first is not None
    await Message.filter(id=first.id).update(media=[{"kind": "image", "path": "2026/12/privacy-photo.jpg",
                                                     "content_type": "image/jpeg"}])
    await TicketRating.create(ticket=tickets[0], score=2, comment=f"{NAME}：处理太慢", source="h5_page",
                              channel="wechat_mp", at=utcnow())
    await BotQuery.create(channel="wecom_kf", customer_id=customer.id, text="退款多久能到账？", outcome="no_match")
    # WeCom knows them too: an external contact followed by a staff member, with a remark naming them
    contact = await ExternalContact.create(external_userid=WECOM_USER, customer=customer, name=NAME,
                                           unionid="unionXiaoming0001", avatar="https://wx.qlogo.cn/xiaoming")
    await ExternalFollow.create(contact=contact, userid="agent", remark=f"{NAME}（老客户）", description=EMAIL)
    return {"customer": customer, "tickets": tickets, "photo": photo, "mp": mp, "kf": kf}


def _text_fields(model: Any) -> list[str]:
    return [name for name, f in model._meta.fields_map.items()
            if isinstance(f, fields.CharField | fields.TextField | fields.JSONField)]


async def _scan(secrets: list[str]) -> list[str]:
    """Every text, char and JSON column of every table that still holds one of the secrets."""
    found = []
    for model in Tortoise.apps["gongdan"].values():
        names = _text_fields(model)
        if not names:
            continue
        for row in await model.all().values(*names):
            for name, value in row.items():
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                found += [f"{model.__name__}.{name}: {s}" for s in secrets if s in text]
    return found


async def test_a_customer_on_two_channels_is_exported_then_erased_leaving_no_trace(
        api: httpx.AsyncClient, settings: Settings) -> None:
    data = await factories.org()
    admin = data["people"]["admin"]
    held = await _customer_on_two_channels(settings)
    customer, tickets = held["customer"], held["tickets"]
    await security.reveal(actor=await factories.actor(admin), object_type="customer", object_id=str(customer.id),
                          field="phone", reason="回电核实退款", value=PHONE)
    h = {"Authorization": f"Bearer {await factories.token(admin)}"}
    secrets = [NAME, PHONE, EMAIL, OPENID, KF_USER, WECOM_USER, "unionXiaoming0001", "qlogo", *TEXTS]
    assert await _scan(secrets)  # the scan does see them before

    r = await api.post(f"/api/v1/customers/{customer.id}/export", headers=h, json={"reason": "客户来电申请"})
    assert r.status_code == 200, r.text
    export = r.json()
    d = export["data"]
    assert (d["customer"]["name"], d["customer"]["phone"], d["customer"]["email"]) == (NAME, "+8613812345678", EMAIL)
    assert {(i["kind"], i["value"]) for i in d["identities"]} == {("mp_openid", OPENID),
                                                                   ("kf_external_userid", KF_USER)}
    assert {v["channel"] for v in d["conversations"]} == {"wechat_mp", "wecom_kf"}
    assert [m["text"] for m in d["messages"] if m["direction"] == "in"] == TEXTS
    assert {t["number"] for t in d["tickets"]} == {t.number for t in tickets}
    assert [(x["ticket"], x["score"], x["comment"]) for x in d["ratings"]] == [(tickets[0].number, 2,
                                                                                 f"{NAME}：处理太慢")]
    assert [q["text"] for q in d["bot_questions"]] == ["退款多久能到账？"]
    assert [(a["action"], a["field"], a["reason"]) for a in d["audit"]] == [("reveal", "phone", "回电核实退款")]
    assert [(f["path"], f["exists"], f["size"]) for f in d["media_files"]] == [("2026/12/privacy-photo.jpg", True, 6)]
    text = export["summary"]
    for expected in (f"姓名：{NAME}", "手机号：+8613812345678", f"邮箱：{EMAIL}", f"公众号 openid：{OPENID}",
                     f"微信客服：{KF_USER}", TEXTS[1], tickets[0].number, "2 分", "图片与文件：1 个"):
        assert expected in text, expected
    exported = await AuditLog.filter(action="export").values_list("object_id", "reason", "staff_id")
    assert exported == [(str(customer.id), "客户来电申请", admin.id)]

    r = await api.post(f"/api/v1/customers/{customer.id}/erase", headers=h, json={"reason": "客户申请删除"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirmation_required"
    assert (await Customer.get(id=customer.id)).name == NAME and held["photo"].exists()  # nothing changed
    r = await api.post(f"/api/v1/customers/{customer.id}/erase", headers=h, json={"confirm": "yes"})
    assert r.status_code == 422  # only a JSON true confirms

    r = await api.post(f"/api/v1/customers/{customer.id}/erase", headers=h,
                       json={"confirm": True, "reason": "客户申请删除"})
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"records": 1, "identities": 2, "tickets": len(tickets),
                                  "messages": await Message.filter(id__gt=0).count(), "media_files": 1}
    assert await _scan([*secrets, "+8613812345678", "DD20261204001", "幸福路88号"]) == []
    assert not held["photo"].exists()
    # messages not yet sent to them are never sent; raw callbacks keep no payload
    outbox = await OutboxMessage.all().values_list("recipient", "status", "last_error", "payload")
    assert outbox == [("erased", "failed", "客户数据已删除，未发送", {})] * 3
    assert [e.payload for e in await InboundEvent.all()] == [""]
    gone = await Customer.get(id=customer.id)
    contacts: tuple[Any, ...] = (gone.name, gone.phone_enc, gone.phone_hash, gone.email_enc, gone.email_hash)
    assert contacts == (privacy.ERASED_NAME, None, None, None, None)
    assert gone.erased_at is not None
    # the tickets and their figures stay
    after = {t.id: t for t in await Ticket.filter(customer_id=customer.id)}
    assert {i: (t.number, t.status, t.priority, t.created_at) for i, t in after.items()} == {
        t.id: (t.number, t.status, t.priority, t.created_at) for t in tickets}
    assert (await TicketRating.get(ticket_id=tickets[0].id)).score == 2
    assert await BotQuery.filter(customer_id=customer.id).count() == 0
    erased = await AuditLog.filter(action="erase").values_list("object_id", "reason")
    assert erased == [(str(customer.id), "客户申请删除")]
    assert (await chain.verify()).ok

    r = await api.post(f"/api/v1/customers/{customer.id}/erase", headers=h, json={"confirm": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_erased"


async def test_only_admins_export_or_erase_and_an_unknown_customer_is_404(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    customer = await factories.customer(name=NAME, phone=PHONE)
    for who in ("lead", "agent"):
        h = {"Authorization": f"Bearer {await factories.token(data['people'][who])}"}
        for action, body in (("export", {}), ("erase", {"confirm": True})):
            r = await api.post(f"/api/v1/customers/{customer.id}/{action}", headers=h, json=body)
            assert r.status_code == 403 and r.json()["error"] == {
                "code": "admin_only", "message": "只有管理员可以导出或删除客户的个人信息"}
    h = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    assert (await api.post("/api/v1/customers/999999/export", headers=h)).status_code == 404
    r = await api.post(f"/api/v1/customers/{customer.id}/export", headers=h)  # no body: fine
    assert r.status_code == 200 and r.json()["data"]["customer"]["name"] == NAME
    assert (await Customer.get(id=customer.id)).name == NAME
    assert await AuditLog.filter(action="erase").count() == 0


async def test_an_h5_admin_with_an_old_login_must_log_in_again(db: None, settings: Settings) -> None:
    data = await factories.org()
    customer = await factories.customer(name=NAME, phone=PHONE)
    admin = await factories.actor(data["people"]["admin"])
    from dataclasses import replace

    stale = replace(admin, login_at=int((utcnow() - timedelta(minutes=11)).timestamp()))
    fresh = replace(admin, login_at=int((utcnow() - timedelta(minutes=9)).timestamp()))
    async def export(a: Actor) -> Any:
        return await privacy.export(actor=a, customer_id=customer.id)

    async def erase(a: Actor) -> Any:
        return await privacy.erase(actor=a, customer_id=customer.id, confirm=True)

    for call in (export, erase):
        try:
            await call(stale)
        except ReauthRequired as exc:
            assert (exc.status_code, exc.code) == (401, "reauth_required")
            assert exc.message == "为保护客户信息，此操作需要在 10 分钟内登录过企业微信，请重新登录后再试。"
        else:
            raise AssertionError("an old login was accepted")
    assert await AuditLog.all().count() == 0 and (await Customer.get(id=customer.id)).name == NAME
    assert (await privacy.export(actor=fresh, customer_id=customer.id))["data"]["customer"]["name"] == NAME
    try:
        await privacy.export(actor=await factories.actor(data["people"]["lead"]), customer_id=customer.id)
    except PermissionDenied as exc:
        assert exc.code == "admin_only"
    else:
        raise AssertionError("a lead exported")


def test_media_outside_the_media_dir_is_never_deleted(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    media = tmp_path / "media"
    media.mkdir()
    assert privacy._delete_files([{"path": "../secret.txt"}, {"path": ""}, {"path": "missing.jpg"}], media) == 0
    assert outside.exists()
