"""The approvals API refuses amounts no approval can be about with a clear 422 (issue 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.channels.testing import RecordingAdapter
from approvals.models import ApprovalRequest
from tests import factories
from tests.approvals.helpers import org, ticket


@pytest.mark.parametrize(("amount", "message"), [
    (1e30, "字段 params.amount 必须小于 1000000000"),
    ("1e30", "字段 params.amount 必须小于 1000000000"),
    (-5, "字段 params.amount 必须大于 0"),
    ("一百", "字段 params.amount 必须是数字"),
])
async def test_amount_out_of_range_is_422_in_chinese(db: None, recording: RecordingAdapter, api: httpx.AsyncClient,
                                                     amount: Any, message: str) -> None:
    o = await org()
    t = await ticket(o["tech"])
    h = {"Authorization": f"Bearer {await factories.token(o['people']['xiaoli'])}"}
    r = await api.post(f"/api/v1/tickets/{t.id}/approvals", headers=h,
                       json={"kind": "refund", "reason": "退款", "params": {"amount": amount}})
    assert r.status_code == 422, r.text
    assert [(f["field"], f["message"]) for f in r.json()["error"]["details"]["fields"]] == [("params.amount", message)]
    assert await ApprovalRequest.all().count() == 0


async def test_a_normal_amount_and_other_params_pass_through(db: None, recording: RecordingAdapter,
                                                             api: httpx.AsyncClient) -> None:
    o = await org()
    t = await ticket(o["tech"])
    h = {"Authorization": f"Bearer {await factories.token(o['people']['xiaoli'])}"}
    r = await api.post(f"/api/v1/tickets/{t.id}/approvals", headers=h,
                       json={"kind": "refund", "reason": "退款", "params": {"amount": 999999999.99}})
    assert r.status_code == 201, r.text
    assert r.json()["params"] == {"amount": "999999999.99"}
