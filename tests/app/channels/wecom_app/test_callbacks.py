"""/callbacks/wecom/app and /callbacks/wecom/contacts: the official V1 vector, storage, dedupe and dispatch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.datastructures import Secret

from app.channels.models import InboundEvent
from app.channels.wecom_app import handlers
from app.channels.wecom_app.handlers import WeComPush, register_wecom_app_handler
from app.settings import Settings, WeComSettings, set_settings
from app.timeutil import set_clock
from tests.app.wecom.test_callback import V1A_BODY, V1A_PARAMS, V1A_PLAINTEXT, V1B_QUERY
from tests.conftest import RecordingQueue
from tests.wecomenv import WeComEnv


@pytest.fixture
async def v1_desk(db: None, settings: Settings, queue: RecordingQueue) -> AsyncIterator[httpx.AsyncClient]:
    """A desk configured with the credentials of the official WeCom example, its clock at the vector's time; its
    jobs are only recorded, so a stored callback stays as the endpoint left it (an in-process job could otherwise
    start processing it before the test reads it)."""
    from app.main import create_app

    wecom = WeComSettings(corp_id="wx5823bf96d3bd56c7", agent_id="218", agent_secret=Secret("x"),
                          token=Secret("QDG6eK"), aes_key=Secret("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
                          contact_token=Secret("QDG6eK"),
                          contact_aes_key=Secret("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"))
    s = settings.with_overrides(wecom=wecom)
    set_settings(s)
    set_clock(lambda: datetime.fromtimestamp(1409659813, UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s, run_jobs=False)),
                                 base_url="http://desk") as client:
        yield client
    set_clock(None)


@pytest.fixture
def no_handlers() -> Iterator[None]:
    saved = dict(handlers.WECOM_APP_HANDLERS)
    handlers.WECOM_APP_HANDLERS.clear()
    yield
    handlers.WECOM_APP_HANDLERS.clear()
    handlers.WECOM_APP_HANDLERS.update(saved)


@pytest.mark.parametrize("path", ["/callbacks/wecom/app", "/callbacks/wecom/contacts"])
async def test_v1b_url_verification_answers_the_bare_plaintext(v1_desk: httpx.AsyncClient, path: str) -> None:
    r = await v1_desk.get(f"{path}?{V1B_QUERY}")
    assert r.status_code == 200
    assert r.content == b"1616140317555161061"  # no quotes, no BOM, no newline


@pytest.mark.parametrize("path", ["/callbacks/wecom/app", "/callbacks/wecom/contacts"])
async def test_v1a_post_is_stored_decrypted_with_its_string_msgid(v1_desk: httpx.AsyncClient, path: str,
                                                                 queue: RecordingQueue) -> None:
    r = await v1_desk.post(path, params=V1A_PARAMS, content=V1A_BODY.encode())
    assert (r.status_code, r.content) == (200, b"")
    rows = await InboundEvent.all().values("payload", "dedupe_key", "status")
    kind = "wecom_app" if path.endswith("app") else "wecom_contacts"
    assert rows == [{"payload": V1A_PLAINTEXT, "dedupe_key": f"{kind}:wx5823bf96d3bd56c7:218:4561255354251345929",
                     "status": "pending"}]
    assert [name for name, _, _ in queue.jobs] == ["process_inbound_event"]
    # WeCom retrying the same push (same body, a fresh timestamp, nonce and signature) is acknowledged, stored once
    from simulator import crypto

    encrypt = V1A_BODY.split("<![CDATA[")[2].split("]]>")[0]
    retry = {"timestamp": "1409659820", "nonce": "1372623150",
             "msg_signature": crypto.sign("QDG6eK", "1409659820", "1372623150", encrypt)}
    r = await v1_desk.post(path, params=retry, content=V1A_BODY.encode())
    assert (r.status_code, await InboundEvent.all().count()) == (200, 1)
    # the very same signed request again is a replay (issue 11): refused, nothing stored
    r = await v1_desk.post(path, params=V1A_PARAMS, content=V1A_BODY.encode())
    assert (r.status_code, r.text, await InboundEvent.all().count()) == (403, "replayed", 1)


async def test_wrong_signature_is_refused_and_nothing_stored(v1_desk: httpx.AsyncClient) -> None:
    r = await v1_desk.post("/callbacks/wecom/app", params={**V1A_PARAMS, "nonce": "1372623148"},
                           content=V1A_BODY.encode())
    assert (r.status_code, r.text) == (403, "bad_signature")
    assert await InboundEvent.all().count() == 0


async def test_unconfigured_callbacks_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/callbacks/wecom/app?{V1B_QUERY}")).status_code == 404
    assert (await api.post("/callbacks/wecom/contacts", content=b"<xml/>")).status_code == 404


async def test_driver_handshake_and_string_msgid_message(wecom: WeComEnv) -> None:
    r = await wecom.app_driver.verify_url("8877665544332211")
    assert r.content == b"8877665544332211"
    delivery = await wecom.app_driver.send_text("lina", "你好", msg_id="CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==")
    assert delivery.delivered
    row = await InboundEvent.get()
    corp = wecom.sim.wecom.corp_id
    assert row.dedupe_key == f"wecom_app:{corp}:1000002:CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw=="
    await wecom.settle()
    assert (await InboundEvent.get()).status == "ignored"  # no handler for member texts yet: acked, not an error


async def test_events_dispatch_through_the_handler_map(wecom: WeComEnv, no_handlers: None) -> None:
    seen: list[WeComPush] = []

    async def on_kf(push: WeComPush) -> str:
        seen.append(push)
        return "done"

    register_wecom_app_handler("kf_msg_or_event", on_kf)
    first = await wecom.app_driver.send_event("kf_msg_or_event", [("Token", "ENCApHxnGDNAVNY4"),
                                                                  ("OpenKfId", "wkAJ2GCAAA")], from_user=None)
    await wecom.app_driver.replay(first)  # WeCom's retry: same body, fresh signature
    await wecom.app_driver.send_event("sys_approval_change", [("ApprovalInfo", [("SpNo", "202205260001"),
                                                                                ("SpStatus", 2)])])
    await wecom.settle()
    assert [(p.key, p.fields["Token"], p.fields["OpenKfId"]) for p in seen] == [
        ("kf_msg_or_event", "ENCApHxnGDNAVNY4", "wkAJ2GCAAA")]
    assert "FromUserName" not in seen[0].fields
    statuses = await InboundEvent.all().order_by("id").values_list("status", flat=True)
    assert statuses == ["done", "ignored"]


# -- issue 11: deep nesting and over-long ids on both WeCom URLs ------------------------------------------------------

V1_TOKEN, V1_KEY, V1_CORP = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"


def _signed(plaintext: str, nonce: str) -> tuple[dict[str, str], bytes]:
    from simulator import crypto

    encrypt = crypto.encrypt(V1_KEY, V1_CORP, plaintext.encode())
    ts = "1409659813"
    params = {"timestamp": ts, "nonce": nonce, "msg_signature": crypto.sign(V1_TOKEN, ts, nonce, encrypt)}
    body = f"<xml><ToUserName><![CDATA[{V1_CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return params, body.encode()


@pytest.mark.parametrize("path", ["/callbacks/wecom/app", "/callbacks/wecom/contacts"])
async def test_deep_xml_is_400_signed_or_not(v1_desk: httpx.AsyncClient, path: str) -> None:
    deep = ("<a>" * 5000 + "</a>" * 5000).encode()
    r = await v1_desk.post(path, params=V1A_PARAMS, content=deep)
    assert (r.status_code, r.text) == (400, "too_deep")
    inner = "<xml><MsgType>text</MsgType><Content>" + "<a>" * 990 + "</a>" * 990 + "</Content></xml>"
    params, body = _signed(inner, "1001")
    r = await v1_desk.post(path, params=params, content=body)
    assert (r.status_code, r.text) == (400, "too_deep")
    assert await InboundEvent.all().count() == 0


@pytest.mark.parametrize("path", ["/callbacks/wecom/app", "/callbacks/wecom/contacts"])
@pytest.mark.parametrize("field", ["MsgId", "FromUserName"])
async def test_signed_push_with_a_300_character_id_is_400(v1_desk: httpx.AsyncClient, path: str, field: str) -> None:
    values = {"MsgId": "4561255354251345929", "FromUserName": "mycreate", field: "x" * 300}
    inner = (f"<xml><ToUserName>{V1_CORP}</ToUserName><FromUserName>{values['FromUserName']}</FromUserName>"
             f"<CreateTime>1409659813</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
             f"<MsgId>{values['MsgId']}</MsgId><AgentID>218</AgentID></xml>")
    params, body = _signed(inner, "1002")
    r = await v1_desk.post(path, params=params, content=body)
    assert (r.status_code, r.text) == (400, "field_too_long")
    assert await InboundEvent.all().count() == 0
