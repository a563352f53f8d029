"""API tokens managed by admins: issued with scopes (shown once), listed without the secret, revoked; audited."""

from __future__ import annotations

import pytest

from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.security import service
from app.security.models import ApiToken, AuditLog
from tests import factories


async def test_issue_list_and_revoke_a_token(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    agent = data["people"]["agent"]
    token, raw = await service.issue_token(actor=admin, staff_id=agent.id, name="ERP", scopes=("events", "read"))
    assert raw.startswith("gd_") and token.scopes == "read,events" and token.prefix == raw[:10]
    actor = await service.authenticate(raw=raw)
    assert actor is not None and actor.staff_id == agent.id and actor.scopes == frozenset({"read", "events"})
    listed = await service.list_tokens(actor=admin)
    assert [t.id for t in listed] == [token.id] and listed[0].staff.name == "客服"
    revoked = await service.revoke_token_by_id(actor=admin, token_id=token.id)
    assert revoked.revoked and await service.authenticate(raw=raw) is None
    with pytest.raises(InvalidTransition):
        await service.revoke_token_by_id(actor=admin, token_id=token.id)
    with pytest.raises(NotFound):
        await service.revoke_token_by_id(actor=admin, token_id=999)
    entries = [(e.action, e.object_id) for e in await AuditLog.all().order_by("id")]
    assert entries == [("token_create", str(token.id)), ("token_revoke", str(token.id))]
    assert raw not in repr([e.reason for e in await AuditLog.all()])


async def test_bad_requests_change_nothing(db: None) -> None:
    data = await factories.org()
    admin = await factories.actor(data["people"]["admin"])
    agent = await factories.actor(data["people"]["agent"])
    with pytest.raises(ValidationFailed) as no_scope:
        await service.issue_token(actor=admin, staff_id=data["people"]["agent"].id, name="x", scopes=())
    assert no_scope.value.details["fields"][0]["field"] == "scopes"
    with pytest.raises(ValidationFailed):
        await service.issue_token(actor=admin, staff_id=data["people"]["agent"].id, name="x", scopes=("root",))
    with pytest.raises(ValidationFailed):
        await service.issue_token(actor=admin, staff_id=9999, name="x", scopes=("read",))
    with pytest.raises(PermissionDenied):
        await service.issue_token(actor=agent, staff_id=data["people"]["agent"].id, name="x", scopes=("read",))
    with pytest.raises(PermissionDenied):
        await service.list_tokens(actor=agent)
    assert await ApiToken.all().count() == 0 and await AuditLog.all().count() == 0
