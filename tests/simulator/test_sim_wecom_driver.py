"""WeComDriver: encrypted callbacks a receiver can verify with wechatpy, string MsgIds, retries."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from wechatpy.work.crypto import WeChatCrypto

from simulator import SimulatorState
from simulator.wecom.driver import WeComDriver
from simulator.wecom.orggen import add_default_apps, load_demo_org


def _receiver(crypto: WeChatCrypto, got: list[str], statuses: list[int]) -> Starlette:
    async def verify(request: Request) -> Response:
        q = request.query_params
        return Response(crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]))

    async def receive(request: Request) -> Response:
        q = request.query_params
        got.append(crypto.decrypt_message(await request.body(), q["msg_signature"], q["timestamp"], q["nonce"]))
        return Response(b"", status_code=statuses.pop(0) if statuses else 200)

    return Starlette(routes=[Route("/cb", verify, methods=["GET"]), Route("/cb", receive, methods=["POST"])])


async def test_driver_encrypts_for_wechatpy_and_retries_on_errors() -> None:
    sim = SimulatorState()
    add_default_apps(sim.wecom)
    load_demo_org(sim.wecom)
    app = sim.wecom.app("contacts")
    crypto = WeChatCrypto(app.token, app.aes_key, sim.wecom.corp_id)
    got: list[str] = []
    statuses = [500]
    transport = httpx.ASGITransport(app=_receiver(crypto, got, statuses))
    driver = WeComDriver(sim, app, "http://desk/cb", transport=transport)
    assert (await driver.verify_url("42424242")).text == "42424242"
    delivery = await driver.change_contact("update_user", userid="lina")
    assert [a[0] for a in delivery.attempts] == [500, 200] and delivery.delivered
    assert got[0] == got[1]  # the retry carries the same body
    assert "<ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[lina]]></UserID>" \
           "<Department><![CDATA[3]]></Department>" in got[0]  # post-2022 shape: ids only


async def test_string_msgid_and_kf_event_without_from_user() -> None:
    sim = SimulatorState()
    add_default_apps(sim.wecom)
    app = sim.wecom.app("app")
    crypto = WeChatCrypto(app.token, app.aes_key, sim.wecom.corp_id)
    got: list[str] = []
    driver = WeComDriver(sim, app, "http://desk/cb", transport=httpx.ASGITransport(app=_receiver(crypto, got, [])))
    await driver.send_text("lina", "你好")
    await driver.send_event("kf_msg_or_event", [("Token", "T"), ("OpenKfId", "wk1")], from_user=None)
    assert "<MsgId><![CDATA[" in got[0] and "<AgentID>1000002</AgentID>" in got[0]
    assert "FromUserName" not in got[1] and "<Event><![CDATA[kf_msg_or_event]]></Event>" in got[1]
