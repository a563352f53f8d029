"""MP API routes: tokens, the customer-service window, template messages, media, users, menus, faults."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from simtestdata import APPID, OPENID, SECRET

from simulator import SimulatorState
from simulator.mp.store import MESSAGE_WINDOW_SECONDS

pytestmark = pytest.mark.asyncio


async def _token(client: httpx.AsyncClient, appid: str = APPID, secret: str = SECRET) -> dict[str, Any]:
    response = await client.get(
        "/cgi-bin/token", params={"grant_type": "client_credential", "appid": appid, "secret": secret}
    )
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


async def _post(client: httpx.AsyncClient, path: str, token: str, body: Any) -> dict[str, Any]:
    # wechatpy sends raw UTF-8 bytes without a Content-Type header; do the same.
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    response = await client.post(f"/cgi-bin/{path}", params={"access_token": token}, content=raw)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def _errcode(data: dict[str, Any]) -> int:
    return int(data.get("errcode", 0))


def _text(content: str, touser: str = OPENID) -> dict[str, Any]:
    return {"touser": touser, "msgtype": "text", "text": {"content": content}}


# -- token ------------------------------------------------------------------------------------------------------


async def test_token_issue_and_errors(client: httpx.AsyncClient, state: SimulatorState) -> None:
    data = await _token(client)
    assert data["expires_in"] == 7200
    assert len(data["access_token"]) > 100
    bad_appid = await _token(client, appid="wxnope")
    assert bad_appid["errcode"] == 40013
    assert bad_appid["errmsg"].startswith("invalid appid rid: ")
    assert (await _token(client, secret="wrong"))["errcode"] == 40001
    assert state.token_fetch_count(APPID) == 1


async def test_refetch_keeps_old_token_for_the_grace_period_only(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    state.set_mp_user(APPID, OPENID)
    first = (await _token(client))["access_token"]
    second = (await _token(client))["access_token"]
    assert first != second
    assert state.token_fetch_count(APPID) == 2
    info = await client.get("/cgi-bin/user/info", params={"access_token": first, "openid": OPENID})
    assert info.json()["openid"] == OPENID
    state.advance(299)
    assert (
        _errcode((await client.get("/cgi-bin/user/info", params={"access_token": first, "openid": OPENID})).json()) == 0
    )
    state.advance(2)
    old = await client.get("/cgi-bin/user/info", params={"access_token": first, "openid": OPENID})
    assert old.json()["errcode"] == 40001
    new = await client.get("/cgi-bin/user/info", params={"access_token": second, "openid": OPENID})
    assert new.json()["openid"] == OPENID
    stats = (await client.get("/_sim/mp/token-stats")).json()
    assert stats[APPID]["fetches"] == 2
    assert stats[APPID]["valid_tokens"] == 1


async def test_token_expiry_and_missing_or_unknown_tokens(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.set_mp_user(APPID, OPENID)
    token = (await _token(client))["access_token"]
    state.advance(7199)
    ok = await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID})
    assert ok.json()["subscribe"] == 1
    state.advance(1)
    expired = await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID})
    assert expired.json()["errcode"] == 42001
    missing = await client.get("/cgi-bin/user/info", params={"openid": OPENID})
    assert missing.json()["errcode"] == 41001
    unknown = await client.get("/cgi-bin/user/info", params={"access_token": "forged", "openid": OPENID})
    assert unknown.json()["errcode"] == 40014


async def test_token_daily_quota(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.mp.token_daily_quota = 3
    for _ in range(3):
        assert "access_token" in await _token(client)
    assert (await _token(client))["errcode"] == 45009


# -- customer-service window ------------------------------------------------------------------------------------


async def test_custom_send_needs_a_customer_message(
    client: httpx.AsyncClient, state: SimulatorState, token: str
) -> None:
    state.set_mp_user(APPID, OPENID)  # follows, but never wrote
    assert (await _post(client, "message/custom/send", token, _text("hi")))["errcode"] == 45015
    assert (await _post(client, "message/custom/send", token, _text("hi", touser="oUnknown")))["errcode"] == 45015
    assert state.sent_messages(APPID) == []


async def test_48_hour_window_allows_five_messages(
    client: httpx.AsyncClient, state: SimulatorState, token: str
) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    for i in range(5):
        assert await _post(client, "message/custom/send", token, _text(f"reply {i}")) == {"errcode": 0, "errmsg": "ok"}
    over = await _post(client, "message/custom/send", token, _text("sixth"))
    assert over["errcode"] == 45047
    # a new customer message restarts the count
    state.mp.record_interaction(APPID, OPENID, "message")
    assert _errcode(await _post(client, "message/custom/send", token, _text("again"))) == 0
    sent = state.sent_messages(APPID, OPENID)
    assert [m.body["text"]["content"] for m in sent] == ["reply 0", "reply 1", "reply 2", "reply 3", "reply 4", "again"]
    assert [m.id for m in sent] == sorted(m.id for m in sent)
    assert all(m.kind == "custom" and m.msgtype == "text" for m in sent)


async def test_window_closes_after_48_hours(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    state.advance(MESSAGE_WINDOW_SECONDS - 5)
    token = (await _token(client))["access_token"]
    assert _errcode(await _post(client, "message/custom/send", token, _text("just in time"))) == 0
    state.advance(10)
    assert (await _post(client, "message/custom/send", token, _text("too late")))["errcode"] == 45015


async def test_click_opens_one_minute_window_of_three(
    client: httpx.AsyncClient, state: SimulatorState, token: str
) -> None:
    state.mp.record_interaction(APPID, OPENID, "event")
    for _ in range(3):
        assert _errcode(await _post(client, "message/custom/send", token, _text("menu answer"))) == 0
    assert (await _post(client, "message/custom/send", token, _text("fourth")))["errcode"] == 45047
    state.mp.record_interaction(APPID, OPENID, "event")
    state.advance(61)
    assert (await _post(client, "message/custom/send", token, _text("late")))["errcode"] == 45015


async def test_unsubscribed_customer_gets_45015(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    state.mp.unsubscribe(APPID, OPENID)
    assert (await _post(client, "message/custom/send", token, _text("bye")))["errcode"] == 45015


async def test_custom_send_validates_the_body(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    bad_json = await _post(client, "message/custom/send", token, b"{not json")
    assert bad_json["errcode"] == 47001
    assert bad_json["errmsg"].startswith("data format error rid: ")
    assert (await _post(client, "message/custom/send", token, b""))["errcode"] == 44002
    assert (await _post(client, "message/custom/send", token, _text("")))["errcode"] == 44004
    image = {"touser": OPENID, "msgtype": "image", "image": {"media_id": "nope"}}
    assert (await _post(client, "message/custom/send", token, image))["errcode"] == 40007
    media_id = state.add_media(APPID, b"\x89PNG", "image/png", "a.png")
    image["image"] = {"media_id": media_id}
    assert _errcode(await _post(client, "message/custom/send", token, image)) == 0
    news = {"touser": OPENID, "msgtype": "news", "news": {"articles": [{"title": "T", "url": "https://e.x"}]}}
    assert _errcode(await _post(client, "message/custom/send", token, news)) == 0
    assert [m.msgtype for m in state.sent_messages(APPID)] == ["image", "news"]
    assert state.sent_messages(APPID)[1].body == news


# -- template messages --------------------------------------------------------------------------------------------


async def test_template_send_is_not_bound_by_the_window(
    client: httpx.AsyncClient, state: SimulatorState, token: str
) -> None:
    state.set_mp_user(APPID, OPENID)
    state.advance(3 * MESSAGE_WINDOW_SECONDS)
    token = (await _token(client))["access_token"]
    body = {
        "touser": OPENID,
        "template_id": "TPL1",
        "url": "https://desk/t/1",
        "data": {"first": {"value": "工单已更新"}},
    }
    first = await _post(client, "message/template/send", token, body)
    second = await _post(client, "message/template/send", token, body)
    assert first["errcode"] == 0 and first["errmsg"] == "ok"
    assert isinstance(first["msgid"], int) and first["msgid"] > 2**53
    assert second["msgid"] != first["msgid"]
    [m1, m2] = state.sent_messages(APPID, OPENID, kind="template")
    assert (m1.msgid, m2.msgid) == (first["msgid"], second["msgid"])
    assert m1.body == body


async def test_template_send_rules(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.add_template(APPID, "TPL_OK", "工单状态更新", "{{first.DATA}}\n工单号：{{keyword1.DATA}}")
    state.set_mp_user(APPID, OPENID)
    state.set_mp_user(APPID, "oGone", subscribe=False)
    unknown_tpl = await _post(client, "message/template/send", token, {"touser": OPENID, "template_id": "X"})
    assert unknown_tpl["errcode"] == 40037
    gone = await _post(client, "message/template/send", token, {"touser": "oGone", "template_id": "TPL_OK"})
    assert gone["errcode"] == 43004
    stranger = await _post(client, "message/template/send", token, {"touser": "oStranger", "template_id": "TPL_OK"})
    assert stranger["errcode"] == 40003
    data = {"first": {"value": "您的工单已受理"}, "keyword1": {"value": "GD-42"}}
    ok = await _post(client, "message/template/send", token, {"touser": OPENID, "template_id": "TPL_OK", "data": data})
    assert ok["errcode"] == 0
    [sent] = state.sent_messages(APPID, kind="template")
    assert sent.title == "工单状态更新"
    assert sent.rendered == "您的工单已受理\n工单号：GD-42"


# -- faults ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "errcode"),
    [({"errcode": 42001}, 42001), ({"errcode": 45009}, 45009), ({"errcode": -1}, -1)],
)
async def test_errcode_faults_fire_once(
    client: httpx.AsyncClient, state: SimulatorState, token: str, fault: dict[str, Any], errcode: int
) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    state.inject_fault("message/custom/send", fault)
    failed = await _post(client, "message/custom/send", token, _text("1"))
    assert failed["errcode"] == errcode
    assert " rid: " in failed["errmsg"]
    assert _errcode(await _post(client, "message/custom/send", token, _text("2"))) == 0
    assert [m.body["text"]["content"] for m in state.sent_messages(APPID)] == ["2"]


async def test_rate_limit_fault_message(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.inject_fault("*", {"errcode": 45009}, times=2)
    first = await client.get("/cgi-bin/menu/get", params={"access_token": token})
    assert first.json()["errmsg"].startswith("api freq out of limit rid: ")
    second = await _token(client)
    assert second["errcode"] == 45009
    assert "access_token" in await _token(client)


async def test_http_status_fault(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.mp.record_interaction(APPID, OPENID, "message")
    state.inject_fault("/cgi-bin/message/custom/send", {"http_status": 502})
    response = await client.post("/cgi-bin/message/custom/send", params={"access_token": token}, json=_text("x"))
    assert response.status_code == 502
    assert _errcode(await _post(client, "message/custom/send", token, _text("y"))) == 0


async def test_delay_fault_then_normal_answer(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    import time

    state.mp.record_interaction(APPID, OPENID, "message")
    state.inject_fault("message/custom/send", {"delay": 0.3})
    started = time.monotonic()
    assert _errcode(await _post(client, "message/custom/send", token, _text("slow"))) == 0
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert _errcode(await _post(client, "message/custom/send", token, _text("fast"))) == 0
    assert time.monotonic() - started < 0.3


async def test_fault_forever_and_admin_api(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    response = await client.post("/_sim/faults", json={"path": "user/info", "fault": {"errcode": 40014}, "times": None})
    assert response.json()["ok"] is True
    for _ in range(3):
        info = await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID})
        assert info.json()["errcode"] == 40014
    assert (await client.get("/_sim/faults")).json()["faults"][0]["path"] == "user/info"
    await client.delete("/_sim/faults")
    info = await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID})
    assert info.json()["errcode"] == 40003
    bad = await client.post("/_sim/faults", json={"path": "x", "fault": {"colour": "red"}})
    assert bad.status_code == 400


# -- media, users, menus, tickets -----------------------------------------------------------------------------------


async def test_media_upload_and_get_round_trip(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    upload = await client.post(
        "/cgi-bin/media/upload",
        params={"access_token": token, "type": "image"},
        files={"media": ("reply.png", png, "image/png")},
    )
    data = upload.json()
    assert data["type"] == "image"
    assert isinstance(data["created_at"], int)
    got = await client.get("/cgi-bin/media/get", params={"access_token": token, "media_id": data["media_id"]})
    assert got.status_code == 200
    assert got.content == png
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == 'attachment; filename="reply.png"'
    missing = await client.get("/cgi-bin/media/get", params={"access_token": token, "media_id": "nope"})
    assert missing.status_code == 200
    assert missing.json()["errcode"] == 40007
    bad_type = await client.post(
        "/cgi-bin/media/upload",
        params={"access_token": token, "type": "gif"},
        files={"media": ("a", b"x", "image/gif")},
    )
    assert bad_type.json()["errcode"] == 40004
    state.advance(3 * 24 * 3600)
    token = (await _token(client))["access_token"]
    expired = await client.get("/cgi-bin/media/get", params={"access_token": token, "media_id": data["media_id"]})
    assert expired.json()["errcode"] == 40007


async def test_media_added_by_state_is_served(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    media_id = state.add_media(APPID, "语音".encode(), "audio/amr", "voice.amr")
    got = await client.get("/cgi-bin/media/get", params={"access_token": token, "media_id": media_id})
    assert got.content == "语音".encode()
    raw = await client.get(f"/_sim/media/{media_id}")
    assert raw.content == "语音".encode()


async def test_user_info_shapes(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    state.set_mp_user(APPID, OPENID, unionid="oUnion42", remark="VIP", tagid_list=[2, 128])
    info = (
        await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID, "lang": "zh_CN"})
    ).json()
    assert info["subscribe"] == 1
    assert info["unionid"] == "oUnion42"
    assert info["remark"] == "VIP"
    assert info["tagid_list"] == [2, 128]
    assert set(info) == {
        "subscribe",
        "openid",
        "language",
        "subscribe_time",
        "unionid",
        "remark",
        "groupid",
        "tagid_list",
        "subscribe_scene",
        "qr_scene",
        "qr_scene_str",
    }
    state.set_mp_user(APPID, "oOther")
    other = (await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": "oOther"})).json()
    assert other["unionid"] == state.set_mp_user(APPID, "oOther").unionid  # deterministic default
    state.set_mp_user(APPID, OPENID, subscribe=False)
    gone = (await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": OPENID})).json()
    assert gone == {"subscribe": 0, "openid": OPENID, "unionid": "oUnion42"}
    unknown = (await client.get("/cgi-bin/user/info", params={"access_token": token, "openid": "oNobody"})).json()
    assert unknown["errcode"] == 40003


async def test_menu_and_ticket(client: httpx.AsyncClient, token: str) -> None:
    missing = await client.get("/cgi-bin/menu/get", params={"access_token": token})
    assert missing.json()["errcode"] == 46003
    menu = {"button": [{"type": "click", "name": "联系客服", "key": "CONTACT"}]}
    created = await _post(client, "menu/create", token, menu)
    assert created == {"errcode": 0, "errmsg": "ok"}
    assert (await client.get("/cgi-bin/menu/get", params={"access_token": token})).json() == {"menu": menu}
    assert (await _post(client, "menu/create", token, {"button": []}))["errcode"] == 40016
    ticket = (await client.get("/cgi-bin/ticket/getticket", params={"access_token": token, "type": "jsapi"})).json()
    assert ticket["errcode"] == 0 and ticket["expires_in"] == 7200
    again = (await client.get("/cgi-bin/ticket/getticket", params={"access_token": token, "type": "jsapi"})).json()
    assert again["ticket"] == ticket["ticket"]


async def test_api_calls_are_logged(client: httpx.AsyncClient, state: SimulatorState, token: str) -> None:
    await _post(client, "message/custom/send", token, _text("x"))
    [call] = state.api_calls_for("message/custom/send")
    assert call.appid == APPID
    assert call.errcode == 45015
    assert json.loads(call.body) == _text("x")
    listed = (await client.get("/_sim/api-calls", params={"path": "message/custom/send"})).json()["calls"]
    assert listed[0]["errcode"] == 45015
