"""Issue 10, observation 10: validation errors of API bodies are explained in Chinese, with the field's name."""

from __future__ import annotations

import re

import httpx

from app.http import VALIDATION_MESSAGES, validation_detail
from tests import factories


async def test_422_details_are_in_chinese(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    h = {"Authorization": f"Bearer {await factories.token(data['people']['agent'])}"}
    r = await api.post("/api/v1/tickets", headers=h,
                       json={"customer_id": "abc", "subject": "", "priority": "asap", "tags": "x", "bogus": 1})
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_fields", "请求字段不合法")
    assert sorted((f["field"], f["type"], f["message"]) for f in error["details"]["fields"]) == [
        ("bogus", "extra_forbidden", "不支持的字段 bogus"),
        ("customer_id", "int_parsing", "字段 customer_id 必须是整数"),
        ("priority", "literal_error", "字段 priority 只能是以下值之一：'low'、'normal'、'high'、'urgent'"),
        ("subject", "string_too_short", "字段 subject 至少需要 1 个字符"),
        ("tags", "list_type", "字段 tags 必须是数组"),
    ]
    r = await api.post("/api/v1/tickets/1/reveal", headers=h, json={})
    assert [f["message"] for f in r.json()["error"]["details"]["fields"]] == ["缺少必填字段 field",
                                                                              "缺少必填字段 reason"]
    assert "Field required" not in r.text


def test_every_message_is_chinese_and_an_unknown_type_still_reads_well() -> None:
    english = re.compile(r"[A-Za-z]{3,}")
    for kind, template in VALIDATION_MESSAGES.items():
        visible = re.sub(r"\{\w+\}|UUID|true|false", "", template)  # JSON literals are the values to send
        assert not english.search(visible), kind
    assert validation_detail({"type": "some_new_type", "loc": ("a", 0), "msg": "Something odd"}) == {
        "field": "a.0", "type": "some_new_type", "message": "字段 a.0 的值不合法"}
    assert validation_detail({"type": "string_too_long", "loc": (), "msg": "x", "ctx": {}})["message"] == (
        "字段 请求体 的值不合法")


async def test_api_errors_without_a_chinese_message_get_a_chinese_default(api: httpx.AsyncClient) -> None:
    data = await factories.org()
    h = {"Authorization": f"Bearer {await factories.token(data['people']['agent'])}"}
    r = await api.get("/api/v1/tickets/999999", headers=h)  # the service says "ticket not found"
    assert r.status_code == 404 and r.json()["error"] == {"code": "not_found", "message": "未找到，或你无权查看"}
    r = await api.get("/api/v1/no-such-thing", headers=h)
    assert r.status_code == 404 and r.json()["error"]["message"] == "未找到，或你无权查看"
    r = await api.delete("/api/v1/tickets", headers=h)
    assert r.status_code == 405 and r.json()["error"]["message"] == "不支持该请求方法"
    r = await api.post("/api/v1/tickets", headers=h, content=b"{")
    assert r.status_code == 400 and r.json()["error"]["message"] == "请求体不是合法的 JSON"


async def test_answers_are_gzipped_except_the_platform_callbacks() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from app.http import CompressionMiddleware

    async def big(request: object) -> PlainTextResponse:
        return PlainTextResponse("工单" * 2000)

    app = Starlette(routes=[Route("/api/v1/big", big), Route("/callbacks/wechat", big)],
                    middleware=[Middleware(CompressionMiddleware, minimum_size=1024)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
        api = await client.get("/api/v1/big", headers={"Accept-Encoding": "gzip"})
        callback = await client.get("/callbacks/wechat", headers={"Accept-Encoding": "gzip"})
    assert api.headers["content-encoding"] == "gzip" and api.text == "工单" * 2000
    assert "content-encoding" not in callback.headers and callback.text == "工单" * 2000
