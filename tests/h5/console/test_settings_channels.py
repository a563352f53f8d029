"""渠道与集成 · 公众号与微信客服: the account list with callback URL and last verified callback, adding and changing an
Official Account and a 微信客服 account through the channel services, errors next to fields, audit rows, roles."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator

import pytest

from app.channels import health
from app.channels.models import CallbackHealth, ChannelAccount, InboundEvent
from app.channels.wechat_mp import accounts
from app.security.crypto import decrypt_field
from app.security.models import AuditLog
from app.timeutil import utcnow
from app.wecom.callback import sign
from tests.h5.console.conftest import ADMIN, AGENT, LEAD, Console

BASE = "/console/settings/channels"
AES = "A" * 43
GOOD = {"key": "shop", "name": "门店号", "appid": "wx1234567890abcdef", "secret": "s3cret", "token": "tok123",
        "aes_key": AES, "template_id": "TPL1"}


async def test_the_list_shows_callback_urls_and_the_last_verified_callback(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE)
    assert r.status_code == 200
    assert "http://127.0.0.1:8000/callbacks/wechat/default" in r.text and "尚未收到" in r.text
    default = await ChannelAccount.get(key="default")
    await InboundEvent.create(channel_account=default, dedupe_key="mp:1", payload="<xml/>", status="done")
    r = await admin.get(BASE)
    assert "验证通过" in r.text and "已处理" in r.text and "尚未收到" not in r.text
    assert "添加公众号" in r.text


async def test_adding_an_official_account_stores_it_encrypted_and_audits(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/mp/new", GOOD, page=BASE + "/mp/new")
    assert r.status_code == 303 and r.headers["location"] == BASE
    row = await ChannelAccount.get(key="shop")
    assert (row.kind, row.name, row.config["appid"], row.config["template_id"]) == (
        "wechat_mp", "门店号", "wx1234567890abcdef", "TPL1")
    assert json.loads(decrypt_field(row.secrets_enc or ""))["token"] == "tok123"
    assert "s3cret" not in (row.secrets_enc or "")
    [audit] = await console.audit_rows("channel_save")
    assert audit.object_id == str(row.id) and audit.reason == "新增公众号 shop（wx1234567890abcdef）"
    page = (await admin.get(BASE)).text
    assert "回调地址：http://127.0.0.1:8000/callbacks/wechat/shop" in page
    assert "s3cret" not in page and "tok123" not in page


async def test_changing_an_account_keeps_secrets_left_empty(console: Console) -> None:
    admin = await console.login(ADMIN)
    await console.post(admin, BASE + "/mp/new", GOOD, page=BASE + "/mp/new")
    form = (await admin.get(BASE + "/mp/shop")).text
    assert 'value="wx1234567890abcdef"' in form and "s3cret" not in form and "tok123" not in form
    r = await console.post(admin, BASE + "/mp/shop", {"name": "门店号2", "appid": "wx1234567890abcdef",
                                                      "key": "other"}, page=BASE + "/mp/shop")
    assert r.status_code == 303
    account = await accounts.by_key("shop")
    assert account is not None and account.secret == "s3cret" and account.callback.token == "tok123"
    assert (await ChannelAccount.get(key="shop")).name == "门店号2"
    assert not await ChannelAccount.filter(key="other").exists()  # the key (callback URL) never changes
    assert [a.reason for a in await console.audit_rows("channel_save")][-1] == "修改公众号 shop（wx1234567890abcdef）"


async def test_bad_input_shows_errors_next_to_fields_and_stores_nothing(console: Console) -> None:
    admin = await console.login(ADMIN)
    bad = {**GOOD, "key": "Shop!", "appid": "abc", "token": "x!", "aes_key": "short"}
    r = await console.post(admin, BASE + "/mp/new", bad, page=BASE + "/mp/new")
    assert r.status_code == 422
    for field, label in (("key", "标识"), ("appid", "AppID"), ("token", "令牌（Token）"),
                         ("aes_key", "EncodingAESKey")):
        assert re.search(rf'id="e-{field}">字段 {re.escape(label)} 的格式不正确<', r.text), field
    assert 'value="abc"' in r.text and "x!" not in r.text  # typed values back, secrets never echoed
    r = await console.post(admin, BASE + "/mp/new", {**GOOD, "secret": ""}, page=BASE + "/mp/new")
    assert r.status_code == 422 and re.search(r'id="e-secret">请填写 AppSecret<', r.text)
    await ChannelAccount.create(kind="email", key="shop", name="邮箱")
    r = await console.post(admin, BASE + "/mp/new", GOOD, page=BASE + "/mp/new")
    assert r.status_code == 422 and re.search(r'id="e-key">这个标识已被其他渠道使用，请换一个<', r.text)
    assert await ChannelAccount.filter(kind="wechat_mp").count() == 1
    assert not await AuditLog.filter(action="channel_save").exists()


async def test_registering_a_kf_account(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await console.post(admin, BASE + "/kf/new", {"open_kfid": "wkAbCdEf123456", "name": "在线客服"},
                           page=BASE + "/kf/new")
    assert r.status_code == 303
    row = await ChannelAccount.get(key="wkAbCdEf123456")
    assert (row.kind, row.name, row.config) == ("wecom_kf", "在线客服", {"open_kfid": "wkAbCdEf123456"})
    assert (await console.audit_rows("channel_save"))[0].reason == "新增微信客服账号 在线客服"
    page = (await admin.get(BASE)).text
    assert "微信客服" in page and "http://127.0.0.1:8000/callbacks/wecom/app" in page
    r = await console.post(admin, BASE + "/kf/new", {"open_kfid": "nope"}, page=BASE + "/kf/new")
    assert r.status_code == 422 and re.search(r'id="e-open_kfid">字段 客服账号 ID 的格式不正确<', r.text)
    assert await ChannelAccount.filter(kind="wecom_kf").count() == 1


async def test_leads_may_look_agents_may_not(console: Console) -> None:
    lead = await console.login(LEAD)
    r = await lead.get(BASE)
    assert r.status_code == 200 and "添加公众号" not in r.text
    assert (await lead.get(BASE + "/mp/new")).status_code == 403
    r = await console.post(lead, BASE + "/mp/new", GOOD, page=BASE)
    assert r.status_code == 403 and "只有管理员可以管理渠道账号" in r.text
    assert not await ChannelAccount.filter(key="shop").exists()
    agent = await console.login(AGENT)
    r = await agent.get(BASE)
    assert r.status_code == 403 and "该页面仅限管理员和组长使用" in r.text


async def test_unknown_account_is_a_404(console: Console) -> None:
    admin = await console.login(ADMIN)
    r = await admin.get(BASE + "/mp/nothere")
    assert r.status_code == 404 and "公众号不存在" in r.text


def _callback(token: str, nonce: str, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
    """A plain-mode Official Account push for the test account (token ``tok``), signed or forged."""
    ts = str(int(utcnow().timestamp()))
    signature = "0" * 40 if forged else sign(token, ts, nonce)
    xml = (f"<xml><ToUserName>gh_test</ToUserName><FromUserName>oCust{nonce}</FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
           f"<MsgId>{zlib.crc32(nonce.encode())}</MsgId></xml>")
    return {"timestamp": ts, "nonce": nonce, "signature": signature}, xml.encode("utf-8")


@pytest.fixture(autouse=True)
def _fresh_health() -> Iterator[None]:
    health.reset()
    yield
    health.reset()


async def test_a_forged_callback_shows_as_the_failure_and_a_good_one_flips_it_back(console: Console) -> None:
    admin = await console.login(ADMIN)
    params, body = _callback("tok", "n1", forged=True)
    r = await console.h5.client.post("/callbacks/wechat/default", params=params, content=body)
    assert (r.status_code, r.text) == (403, "bad_signature")  # the platform's answer is unchanged
    assert not await InboundEvent.exists()
    page = (await admin.get(BASE)).text
    assert "最近一次回调校验失败：签名错误" in page and "近 24 小时被拒 1 次" in page and "尚未收到" not in page
    params, body = _callback("tok", "n2")
    r = await console.h5.client.post("/callbacks/wechat/default", params=params, content=body)
    assert (r.status_code, r.text) == (200, "success")
    page = (await admin.get(BASE)).text
    assert "✓ 验证通过" in page and "校验失败" not in page
    assert "近 24 小时被拒 1 次" in page and "最近保存的回调" in page
    r = await console.h5.client.post("/callbacks/wechat/default", params=params, content=body)
    assert (r.status_code, r.text) == (403, "replayed")
    assert "最近一次回调校验失败：重复提交的请求（疑似重放）" in (await admin.get(BASE)).text


async def test_callbacks_for_unknown_accounts_are_not_recorded(console: Console) -> None:
    params, body = _callback("tok", "n3", forged=True)
    r = await console.h5.client.post("/callbacks/wechat/nosuch", params=params, content=body)
    assert r.status_code == 404
    assert not await CallbackHealth.exists()
