"""The console's 微信客服 recovery pull: messages whose callback never came are fetched on demand, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.channels.wecom_kf import sync
from app.channels.wecom_kf.models import KfCursor
from app.conversations.models import Message
from app.errors import InvalidTransition, NotFound
from app.repair import service
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.timeutil import utcnow

from .conftest import OPEN_KFID, KfEnv


async def test_messages_whose_callback_was_lost_arrive_once_after_a_recovery_pull(kfenv: KfEnv) -> None:
    for i in range(3):
        kfenv.customer_says(f"丢失的第{i}条")  # no callback: WeCom's announcement was lost
    [state] = await service.list_kf_accounts(actor=SYSTEM)
    assert (state.open_kfid, state.pages, state.last_pull_at, state.pulling) == (OPEN_KFID, 0, None, False)
    await service.request_kf_recovery(actor=SYSTEM, account_id=kfenv.account.id)
    await kfenv.settle()
    await service.request_kf_recovery(actor=SYSTEM, account_id=kfenv.account.id)
    await kfenv.settle()
    texts = [m.text for m in await Message.filter(direction="in").order_by("id")]
    assert texts == [f"丢失的第{i}条" for i in range(3)]
    [state] = await service.list_kf_accounts(actor=SYSTEM)
    assert state.pages == 2 and state.last_pull_at is not None
    assert [(e.action, e.object_id) for e in await AuditLog.all().order_by("id")] == [
        ("kf_recover", str(kfenv.account.id))] * 2


async def test_a_pull_already_running_is_left_alone(kfenv: KfEnv) -> None:
    await KfCursor.create(open_kfid=OPEN_KFID, lease_until=utcnow() + timedelta(seconds=30))
    assert await sync.kf_recover({}, OPEN_KFID) == "busy"
    [state] = await service.list_kf_accounts(actor=SYSTEM)
    assert state.pulling is True


async def test_unknown_and_inactive_accounts_are_refused(kfenv: KfEnv) -> None:
    with pytest.raises(NotFound):
        await service.request_kf_recovery(actor=SYSTEM, account_id=999)
    await type(kfenv.account).filter(id=kfenv.account.id).update(active=False)
    with pytest.raises(InvalidTransition):
        await service.request_kf_recovery(actor=SYSTEM, account_id=kfenv.account.id)
    assert await AuditLog.all().count() == 0
