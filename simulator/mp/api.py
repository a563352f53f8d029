"""Plumbing shared by the MP API routes: faults, access_token checks, JSON bodies, error rendering, call log.

Error conventions (全局返回码说明 https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html):
errors are HTTP 200 with errcode/errmsg and a ``rid:`` suffix; ``access_token`` always comes in the query string.
wechatpy POSTs raw bytes without a Content-Type header, so bodies are parsed as JSON whatever the header says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.mp.errors import MPError
from simulator.responses import bad_gateway, mp_error_body, wechat_json
from simulator.state import SimulatorState

__all__ = ["MPCall", "mp_route"]


@dataclass
class MPCall:
    """One API request as a handler sees it."""

    request: Request
    state: SimulatorState
    path: str
    appid: str
    body: bytes

    def query(self, name: str, missing: int | None = None) -> str:
        """A query parameter; raises ``missing`` (an errcode) when absent and one is given."""
        value = self.request.query_params.get(name, "")
        if not value and missing is not None:
            raise MPError(missing)
        return value

    def json(self) -> dict[str, Any]:
        """The body as a JSON object: 44002 when empty, 47001 when not JSON."""
        if not self.body.strip():
            raise MPError(44002)
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MPError(47001) from exc
        if not isinstance(data, dict):
            raise MPError(47001)
        return data


Handler = Callable[[MPCall], Awaitable[Response | dict[str, Any]]]


def mp_route(path: str, handler: Handler, *, methods: list[str], needs_token: bool = True) -> Route:
    """Mount ``handler`` at ``/cgi-bin/<path>`` with fault injection, token check, error rendering and logging."""

    async def endpoint(request: Request) -> Response:
        state: SimulatorState = request.app.state.sim
        body = await request.body()
        appid: str | None = None
        errcode: int | None = None
        response: Response
        fault = state.faults.take(path, scope="mp")
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.http_status is not None:
            response = bad_gateway(fault.http_status)
        elif fault is not None and fault.errcode is not None:
            errcode = fault.errcode
            error = MPError(fault.errcode, fault.errmsg)
            response = wechat_json(mp_error_body(error.errcode, error.errmsg or ""))
        else:
            try:
                if needs_token:
                    appid = state.mp.check_token(request.query_params.get("access_token"))
                result = await handler(MPCall(request=request, state=state, path=path, appid=appid or "", body=body))
                response = wechat_json(result) if isinstance(result, dict) else result
            except MPError as error:
                errcode = error.errcode
                response = wechat_json(mp_error_body(error.errcode, error.errmsg or ""))
        if fault is not None and fault.slow > 0:
            # the call took effect above; only its answer is late
            await asyncio.sleep(fault.slow)
        state.record_api_call(
            platform="mp",
            method=request.method,
            path=path,
            query=request.query_params,
            body=body,
            appid=appid,
            errcode=errcode,
            http_status=response.status_code,
        )
        return response

    return Route(f"/cgi-bin/{path}", endpoint, methods=methods, name=f"mp:{path}")
