"""``h5.console.web.row_id``: the one reader of a console page's numeric path id; anything else is the Chinese
400 page 编号不合法, on the channel pages and the repair tools alike."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from app.errors import BadRequest
from h5.console.web import row_id
from tests.h5.console.conftest import ADMIN, Console


def _request(**path_params: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "path_params": path_params})


def test_row_id_reads_the_named_path_parameter() -> None:
    assert row_id(_request(row_id="42")) == 42
    assert row_id(_request(row_id="7", delivery_id="9"), "delivery_id") == 9


@pytest.mark.parametrize("params", [{"row_id": "abc"}, {"row_id": ""}, {"row_id": "1.5"}, {}])
def test_row_id_refuses_anything_but_a_whole_number_in_chinese(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as caught:
        row_id(_request(**params))
    assert (caught.value.message, caught.value.code) == ("编号不合法", "invalid_parameter")


async def test_a_bad_id_in_the_path_is_a_chinese_400_page(console: Console) -> None:
    admin = await console.login(ADMIN)
    for path in ("/console/channels/mailboxes/abc", "/console/channels/rules/abc"):
        r = await admin.get(path)
        assert r.status_code == 400 and "编号不合法" in r.text, path
    r = await console.post(admin, "/console/repair/outbox/abc/replay", {}, page="/console/repair/outbox")
    assert r.status_code == 400 and "编号不合法" in r.text
    r = await console.post(admin, "/console/channels/webhooks/1/deliveries/abc/replay", {},
                           page="/console/channels/webhooks")
    assert r.status_code == 400 and "编号不合法" in r.text
