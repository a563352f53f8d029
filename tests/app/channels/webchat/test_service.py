"""Web chat sites from the console: the snippet, the origin allow-list and the per-site limits the socket obeys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.channels.models import ChannelAccount
from app.channels.webchat import service, visitors
from app.conversations.models import Message
from app.errors import PermissionDenied, ValidationFailed
from app.security.models import AuditLog
from app.security.scope import SYSTEM, Actor

from .conftest import ORIGIN, Desk, Refused


def _body(**over: object) -> service.WebchatSiteIn:
    data: dict[str, object] = {"key": "shop", "name": "示例商城", "origins": [ORIGIN + "/"], "bot": False}
    data.update(over)
    return service.WebchatSiteIn.model_validate(data)


def test_the_snippet_is_one_script_tag_with_the_site_key() -> None:
    account = ChannelAccount(kind="webchat", key="shop", config={})
    assert service.snippet(account, public_url="https://desk.example.com/") == (
        '<script src="https://desk.example.com/static/webchat/widget.js" data-site="shop" async></script>')


def test_origins_are_normalised_and_bad_ones_named() -> None:
    body = _body(origins=["https://Shop.Example.com/path", " ", "http://localhost:8080"])
    assert body.origins == ["http://localhost:8080", "https://shop.example.com"]
    for bad in (["ftp://shop.example.com"], ["shop.example.com"], [], ["  "]):
        with pytest.raises(ValidationError) as err:
            _body(origins=bad)
        assert err.value.errors()[0]["loc"] == ("origins",)
    with pytest.raises(ValidationError):
        _body(per_visitor=0)


async def test_the_sites_own_limits_apply_to_new_sockets(desk: Desk, at_work: None) -> None:
    await service.save_site(actor=SYSTEM, body=_body(per_visitor=2, per_ip=100, max_chars=50))
    desk.account = await ChannelAccount.get(id=desk.account.id)
    ws = await desk.socket()
    await ws.hello()
    await ws.send({"type": "message", "text": "长" * 51})
    assert (await ws.receive_until("error"))["message"] == "消息太长，请控制在 50 字以内"
    for i in range(2):
        await ws.send({"type": "message", "text": f"第{i}条", "client_id": f"c{i}"})
        await ws.receive_until("ack")
    await ws.send({"type": "message", "text": "第三条", "client_id": "over"})
    assert (await ws.receive_until("error"))["code"] == "rate_limited"
    assert await Message.filter(direction="in").count() == 2
    await ws.close()
    assert visitors.visitor_limiter.limit == visitors.PER_VISITOR  # other sites keep the default


async def test_an_origin_taken_off_the_list_is_refused(desk: Desk) -> None:
    await service.save_site(actor=SYSTEM, body=_body(origins=["https://other.example.com"]))
    desk.account = await ChannelAccount.get(id=desk.account.id)
    with pytest.raises(Refused):
        await desk.socket()
    [entry] = await AuditLog.filter(action="webchat_save")
    assert entry.object_id == str(desk.account.id) and entry.reason.startswith("修改站点 shop")


async def test_refusals_change_nothing(desk: Desk) -> None:
    before = (await ChannelAccount.get(id=desk.account.id)).config
    with pytest.raises(ValidationFailed) as no_group:
        await service.save_site(actor=SYSTEM, body=_body(group_id=999))
    assert no_group.value.details["fields"][0]["field"] == "group_id"
    await ChannelAccount.create(kind="email", key="mailbox", config={})
    with pytest.raises(ValidationFailed):
        await service.save_site(actor=SYSTEM, body=_body(key="mailbox"))
    with pytest.raises(PermissionDenied):
        await service.save_site(actor=Actor(kind="staff", staff_id=1, role="agent"), body=_body())
    assert (await ChannelAccount.get(id=desk.account.id)).config == before
    assert (await ChannelAccount.get(key="mailbox")).kind == "email"
    assert await AuditLog.all().count() == 0


async def test_codes_go_from_the_chosen_mailbox_which_must_be_an_active_one(desk: Desk) -> None:
    from app.channels.webchat import verify
    from app.outbox.models import OutboxMessage

    first = await ChannelAccount.create(kind="email", key="support", name="客服中心", config={})
    sales = await ChannelAccount.create(kind="email", key="sales", name="销售", config={})
    await ChannelAccount.create(kind="email", key="old", name="旧邮箱", active=False, config={})
    assert [b.key for b in await service.verify_mailboxes(actor=SYSTEM)] == ["support", "sales"]
    before = (await ChannelAccount.get(id=desk.account.id)).config
    for bad in ("nobody", "old", "shop"):  # no such key, a switched-off mailbox, a web chat site
        with pytest.raises(ValidationFailed) as err:
            await service.save_site(actor=SYSTEM, body=_body(verify_mailbox=bad))
        assert err.value.details["fields"] == [{"field": "verify_mailbox", "message": "发送验证码的邮箱不存在或已停用"}]
    assert (await ChannelAccount.get(id=desk.account.id)).config == before and await AuditLog.all().count() == 0

    verify.send_limiter.reset()
    verify.ip_send_limiter.reset()

    async def sent_by(site: ChannelAccount, n: int) -> int | None:
        await verify.start(site=site, visitor_key=f"v{n}", ip="203.0.113.9", contact=f"li{n}@example.cn")
        row = await OutboxMessage.filter(kind="verify_code").order_by("-id").first()
        assert row is not None and row.recipient == f"li{n}@example.cn"
        return row.channel_account_id  # type: ignore[attr-defined, no-any-return]

    site = await service.save_site(actor=SYSTEM, body=_body(verify_mailbox="sales"))
    assert site.config["verify_mailbox"] == "sales"
    assert await sent_by(site, 1) == sales.id
    site = await service.save_site(actor=SYSTEM, body=_body())  # automatic: the first active mailbox
    assert site.config["verify_mailbox"] == ""
    assert await sent_by(site, 2) == first.id
    assert [e.reason.rsplit("，", 1)[-1] for e in await AuditLog.filter(action="webchat_save").order_by("id")] == [
        "验证码邮箱 sales", "验证码邮箱 自动"]
