"""The audit log's filters used by the console: action, object type, time, actor; labels for the new actions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.errors import ValidationFailed
from app.security import audit
from app.security.models import AuditLog
from app.security.service import record_audit
from app.timeutil import utcnow
from tests import factories


async def test_filters_by_object_type_action_actor_and_period(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    lead = await factories.actor(data["people"]["lead"])
    old = await record_audit(actor=admin, action="replay_outbox", object_type="outbox", object_id="1")
    await AuditLog.filter(id=old.id).update(created_at=utcnow() - timedelta(days=10))
    mid = await record_audit(actor=lead, action="reveal", object_type="ticket", object_id="7", field="phone",
                             reason="回电")
    new = await record_audit(actor=admin, action="webhook_create", object_type="webhook", object_id="3")

    async def ids(**kw: object) -> list[int]:
        return [e.id for e in (await audit.list_entries(actor=admin, **kw)).items]  # type: ignore[arg-type]

    assert await ids() == [new.id, mid.id, old.id]
    assert await ids(object_type="outbox") == [old.id]
    assert await ids(action="reveal") == [mid.id]
    assert await ids(staff_id=admin.staff_id) == [new.id, old.id]
    assert await ids(since=utcnow() - timedelta(days=1)) == [new.id, mid.id]
    assert await ids(until=utcnow() - timedelta(days=1)) == [old.id]
    with pytest.raises(ValidationFailed):
        await audit.list_entries(actor=admin, since=utcnow(), until=utcnow() - timedelta(days=1))
    shown = await audit.serialize([await AuditLog.get(id=new.id), await AuditLog.get(id=old.id)])
    assert [(s["action_label"], s["object_label"]) for s in shown] == [("新建事件推送", "事件推送订阅"),
                                                                      ("重放消息", "发出的消息")]


async def test_the_audit_api_takes_the_new_filters(api: object, db: None) -> None:
    import httpx

    assert isinstance(api, httpx.AsyncClient)
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    token = await factories.token(data["people"]["admin"])
    await record_audit(actor=admin, action="replay_outbox", object_type="outbox", object_id="1")
    await record_audit(actor=admin, action="token_create", object_type="api_token", object_id="2")
    headers = {"Authorization": f"Bearer {token}"}
    got = await api.get("/api/v1/audit", params={"object_type": "api_token"}, headers=headers)
    assert got.status_code == 200 and [i["action"] for i in got.json()["items"]] == ["token_create"]
    bad = await api.get("/api/v1/audit", params={"since": "yesterday"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["fields"][0]["field"] == "since"
