"""The repair API: admins with the admin scope list and replay; others get 403; bad input is a 4xx."""

from __future__ import annotations

import httpx

from app.outbox.models import OutboxMessage
from app.security.models import AuditLog
from app.security.service import create_token
from app.timeutil import utcnow
from tests import factories


async def test_list_replay_and_refusals(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    agent = {"Authorization": f"Bearer {await factories.token(data['people']['agent'])}"}
    read_only = {"Authorization": f"Bearer {await create_token(staff=data['people']['admin'], scopes=('read',))}"}
    dead = await OutboxMessage.create(channel="wechat_mp", kind="customer_message", recipient="oAbcdef",
                                      payload={"text": "秘密"}, status="dead", attempts=8, last_error="busy",
                                      next_attempt_at=utcnow())
    r = await api.get("/api/v1/repair/outbox", headers=admin, params={"channel": "wechat_mp"})
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert (item["id"], item["status_label"], item["recipient"], item["kind_label"]) == (
        dead.id, "重试耗尽", "oAbc***", "客户消息")
    assert "秘密" not in r.text
    assert (await api.get("/api/v1/repair/outbox", headers=agent)).status_code == 403
    assert (await api.get("/api/v1/repair/outbox", headers=read_only)).status_code == 403
    assert (await api.get("/api/v1/repair/outbox", headers=admin, params={"since": "x"})).status_code == 400
    assert (await api.get("/api/v1/repair/outbox", headers=admin, params={"status": "x"})).status_code == 422
    assert (await api.get("/api/v1/repair/inbound", headers=admin)).json() == {"items": []}

    first = await api.post(f"/api/v1/repair/outbox/{dead.id}/replay", headers=admin)
    again = await api.post(f"/api/v1/repair/outbox/{dead.id}/replay", headers=admin)
    assert (first.status_code, first.json()) == (202, {"id": dead.id, "replayed": True, "status": "pending"})
    assert (again.status_code, again.json()["replayed"]) == (202, False)
    await OutboxMessage.filter(id=dead.id).update(status="sent")
    done = await api.post(f"/api/v1/repair/outbox/{dead.id}/replay", headers=admin)
    assert done.status_code == 409 and done.json()["error"]["code"] == "already_delivered"
    assert (await api.post("/api/v1/repair/outbox/99999/replay", headers=admin)).status_code == 404
    assert (await api.post(f"/api/v1/repair/outbox/{dead.id}/replay", headers=agent)).status_code == 403

    bulk = await api.post("/api/v1/repair/outbox/replay", headers=admin, json={"ids": [dead.id, 424242]})
    assert bulk.status_code == 202
    assert bulk.json() == {"replayed": [], "already_queued": [],
                           "refused": [{"id": dead.id, "message": "这条消息已送达，不能重放"},
                                       {"id": 424242, "message": "消息不存在"}]}
    bodies: list[dict[str, object]] = [{"ids": []}, {"ids": ["x"]}, {"ids": [1], "all": True}, {}]
    for body in bodies:
        r = await api.post("/api/v1/repair/outbox/replay", headers=admin, json=body)
        assert r.status_code == 422, body
    assert (await api.post("/api/v1/repair/inbound/replay", headers=admin, content=b"{")).status_code == 400
    assert await AuditLog.filter(action="replay_outbox").count() == 1
