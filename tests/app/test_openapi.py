"""The OpenAPI document describes every operation mounted under /api/v1, and nothing that is not mounted."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.routing import Mount, Route

from app.main import create_app
from tests.conftest import make_settings

_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _mounted() -> set[tuple[str, str]]:
    """(method, path) of every route mounted under /api/v1 in the real app, path as OpenAPI writes it."""
    app = create_app(make_settings(), run_jobs=False)
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1")
    out: set[tuple[str, str]] = set()
    for route in mount.routes:
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":
                out.add((method.lower(), _CONVERTER.sub(r"{\1}", route.path)))
    return out


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in doc["paths"].items() for method in ops}


async def test_every_mounted_api_route_has_an_operation_and_every_operation_is_mounted(
        api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    mounted = _mounted()
    assert len(mounted) >= 53
    assert mounted - _documented(doc) == set(), "routes missing from app/openapi.py"
    assert _documented(doc) - mounted == set(), "documented operations that are not mounted"


async def test_every_operation_has_responses_parameters_and_security(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, spec in ops.items():
            where = f"{method.upper()} {path}"
            declared = {p["name"] for p in spec["parameters"] if p["in"] == "path"}
            assert declared == names, where
            assert all("type" in p["schema"] or "enum" in p["schema"] for p in spec["parameters"]), where
            codes = set(spec["responses"])
            assert any(c.startswith("2") for c in codes), where
            errors = {c for c in codes if c[0] in "45"}
            assert all(spec["responses"][c]["content"]["application/json"]["schema"] ==
                       {"$ref": "#/components/schemas/Error"} for c in errors), where
            public = spec["security"] == []
            assert public == (path in ("/openapi.json", "/kb/public/search")), where
            assert public or "401" in codes, where
            if "requestBody" in spec:
                assert {"400", "422"} <= codes, where
                for media in spec["requestBody"]["content"].values():
                    ref = media["schema"].get("$ref", "")
                    assert not ref or ref.rsplit("/", 1)[1] in schemas, where


async def test_request_bodies_come_from_the_endpoint_models(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/tickets/{ticket_id}/approvals"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ApprovalCreate"}
    assert schemas["TicketCreate"]["required"] == ["subject"]
    # the customer by the desk's id or by any identity (upserted), exactly one of the two
    assert schemas["TicketCreate"]["oneOf"] == [{"required": ["customer_id"]}, {"required": ["customer"]}]
    assert schemas["Duty"]["required"] == ["on_duty"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    limit = next(p for p in doc["paths"]["/tickets"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}


async def test_every_secured_operation_refuses_a_request_without_a_token(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method, spec in ops.items():
            if spec["security"] == []:
                continue
            r = await api.request(method.upper(), "/api/v1" + re.sub(r"\{\w+\}", "1", path),
                                  headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json() == {"error": {"code": "unauthorized", "message": "需要有效的 API 令牌"}}, (method, path)
