"""Plumbing shared by every WeCom API route: faults, access_token, rate limits, JSON bodies, errors, call log.

WeCom lives on its own host (``qyapi.weixin.qq.com``); in the simulator its routes are mounted under
``/qyapi/cgi-bin/`` so they never collide with the MP ones (both platforms have ``media/get``, ``menu/create``...).
Give the desk ``WECOM_API_BASE=<simulator>/qyapi/cgi-bin/`` (``SimulatorServer.wecom_api_base_url``).

Error conventions (全局错误码 https://developer.work.weixin.qq.com/document/path/90455): HTTP 200 with errcode/errmsg,
the errmsg carrying the hint suffix; ``access_token`` in the query string; bodies parsed as JSON whatever the
Content-Type (wechatpy posts raw bytes without one). Each route counts against the corp's per-API limits
(``WeComStore.rate_limits``) unless mounted with ``rate_limited=False`` (gettoken has its own rules; a valid-code
``auth/getuserinfo`` is exempt).

To add routes from another module, create ``simulator/wecom/<feature>.py`` with a module-level
``routes: list[Route]`` built with ``wecom_route``; ``simulator.wecom.routes.wecom_routes`` mounts every such module.
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

from simulator.responses import bad_gateway, wechat_json
from simulator.state import SimulatorState
from simulator.wecom.errors import WeComError, wecom_error_body
from simulator.wecom.store import WeComApp

__all__ = ["WECOM_PREFIX", "WeComCall", "WeComHandler", "wecom_route"]

WECOM_PREFIX = "/qyapi/cgi-bin/"


@dataclass
class WeComCall:
    """One WeCom API request as a handler sees it."""

    request: Request
    state: SimulatorState
    path: str
    #: the app whose access_token was used (None on gettoken)
    app: WeComApp | None
    body: bytes

    @property
    def wecom(self) -> Any:
        """The WeCom store (``state.wecom``)."""
        return self.state.wecom

    def query(self, name: str, missing: int | None = None) -> str:
        """A query parameter; raises ``missing`` (an errcode) when absent and one is given."""
        value = self.request.query_params.get(name, "")
        if not value and missing is not None:
            raise WeComError(missing)
        return value

    def json(self) -> dict[str, Any]:
        """The body as a JSON object: 44002 when empty, 47001 when not JSON."""
        if not self.body.strip():
            raise WeComError(44002)
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WeComError(47001, "Warning: wrong json format.") from exc
        if not isinstance(data, dict):
            raise WeComError(47001, "Warning: wrong json format.")
        return data

    def require_app(self) -> WeComApp:
        """The calling app (routes mounted with ``needs_token=True`` always have one)."""
        if self.app is None:
            raise WeComError(41001)
        return self.app


WeComHandler = Callable[[WeComCall], Awaitable[Response | dict[str, Any]]]


def wecom_route(
    path: str, handler: WeComHandler, *, methods: list[str], needs_token: bool = True, rate_limited: bool = True
) -> Route:
    """Mount ``handler`` at ``/qyapi/cgi-bin/<path>`` with faults (scope ``wecom``), token check, rate limits,
    error rendering and the call log."""

    async def endpoint(request: Request) -> Response:
        state: SimulatorState = request.app.state.sim
        body = await request.body()
        app: WeComApp | None = None
        errcode: int | None = None
        response: Response
        fault = state.faults.take(path, scope="wecom")
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.http_status is not None:
            response = bad_gateway(fault.http_status)
        elif fault is not None and fault.errcode is not None:
            errcode = fault.errcode
            error = WeComError(fault.errcode, fault.errmsg)
            response = wechat_json(wecom_error_body(error.errcode, error.errmsg or ""))
        else:
            try:
                if needs_token:
                    app = state.wecom.check_token(request.query_params.get("access_token"))
                if rate_limited:
                    state.wecom.check_rate(path)
                result = await handler(WeComCall(request=request, state=state, path=path, app=app, body=body))
                if isinstance(result, dict):
                    result = wechat_json({"errcode": 0, "errmsg": "ok", **result})
                response = result
            except WeComError as error:
                errcode = error.errcode
                response = wechat_json({**wecom_error_body(error.errcode, error.errmsg or ""), **error.extra})
        if fault is not None and fault.slow > 0:
            # the call took effect above; only its answer is late
            await asyncio.sleep(fault.slow)
        state.record_api_call(
            platform="wecom",
            method=request.method,
            path=path,
            query=request.query_params,
            body=body,
            appid=app.name if app is not None else None,
            errcode=errcode,
            http_status=response.status_code,
        )
        return response

    return Route(f"{WECOM_PREFIX}{path}", endpoint, methods=methods, name=f"wecom:{path}")
