"""HTTP plumbing shared by every JSON endpoint: errors, body parsing, authentication, request ids, headers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BadRequest, DomainError, PermissionDenied, ValidationFailed
from app.logs import get_logger
from app.security import service as security
from app.security.scope import Actor

log = get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_JSON_BODY = 1_000_000
#: the largest id a row can have (MySQL's signed INT primary keys); the OpenAPI document bounds id parameters by it
MAX_ID = 2**31 - 1
#: integers a query may carry at all (SQLite and MySQL compare signed 64-bit values; larger ones overflow)
_INT64 = (-(2**63), 2**63 - 1)
#: an id in a request body: positive and within MAX_ID (a larger one names no row and overflows the database)
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
#: an optimistic-lock version in a request body
Version = Annotated[int, Field(ge=0, le=MAX_ID)]


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (several times faster on ticket lists)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    """The one error shape: {"error": {"code", "message", "details"?}}."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


#: what an API error says when the code raising it gave no Chinese message ("ticket not found", "Not Found")
DEFAULT_MESSAGES = {400: "请求不合法", 401: "需要有效的 API 令牌", 403: "没有权限", 404: "未找到，或你无权查看",
                    405: "不支持该请求方法", 409: "数据已被他人修改，请刷新后重试", 413: "请求体过大",
                    422: "请求字段不合法", 429: "请求过于频繁，请稍后重试"}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def chinese_message(message: str, status: int) -> str:
    """The message itself when it is Chinese, else the Chinese default for the status (people read these)."""
    return message if _CJK.search(message) else DEFAULT_MESSAGES.get(status, "请求未完成")


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if exc.status_code >= 400:
        log.info("request.refused", path=request.url.path, status=exc.status_code, code=exc.code)
    return error_response(exc.status_code, exc.code, chinese_message(exc.message, exc.status_code), exc.details)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 400: "bad_request"}
    if request.url.path.startswith(("/api/", "/callbacks/")):
        return error_response(exc.status_code, codes.get(exc.status_code, "error"),
                              chinese_message(str(exc.detail), exc.status_code))
    return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain; charset=utf-8")


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("request.crashed", path=request.url.path)
    return error_response(500, "internal_error", "服务器内部错误")


#: pydantic error type -> Chinese message; {field} is the field's dotted path, the rest come from the error's ctx
VALIDATION_MESSAGES = {
    "missing": "缺少必填字段 {field}",
    "extra_forbidden": "不支持的字段 {field}",
    "string_type": "字段 {field} 必须是字符串",
    "string_too_short": "字段 {field} 至少需要 {min_length} 个字符",
    "string_too_long": "字段 {field} 最多 {max_length} 个字符",
    "string_pattern_mismatch": "字段 {field} 的格式不正确",
    "int_type": "字段 {field} 必须是整数",
    "int_parsing": "字段 {field} 必须是整数",
    "int_from_float": "字段 {field} 必须是整数，不能带小数",
    "float_type": "字段 {field} 必须是数字",
    "float_parsing": "字段 {field} 必须是数字",
    "decimal_parsing": "字段 {field} 必须是数字",
    "bool_type": "字段 {field} 必须是布尔值（true 或 false）",
    "bool_parsing": "字段 {field} 必须是布尔值（true 或 false）",
    "literal_error": "字段 {field} 只能是以下值之一：{expected}",
    "enum": "字段 {field} 只能是以下值之一：{expected}",
    "dict_type": "字段 {field} 必须是对象",
    "model_type": "字段 {field} 必须是对象",
    "model_attributes_type": "字段 {field} 必须是对象",
    "list_type": "字段 {field} 必须是数组",
    "too_short": "字段 {field} 至少需要 {min_length} 项",
    "too_long": "字段 {field} 最多 {max_length} 项",
    "greater_than": "字段 {field} 必须大于 {gt}",
    "greater_than_equal": "字段 {field} 必须大于或等于 {ge}",
    "less_than": "字段 {field} 必须小于 {lt}",
    "less_than_equal": "字段 {field} 必须小于或等于 {le}",
    "multiple_of": "字段 {field} 必须是 {multiple_of} 的倍数",
    "none_required": "字段 {field} 必须为空",
    "date_parsing": "字段 {field} 不是合法的日期",
    "date_from_datetime_parsing": "字段 {field} 不是合法的日期",
    "datetime_parsing": "字段 {field} 不是合法的时间",
    "datetime_from_date_parsing": "字段 {field} 不是合法的时间",
    "uuid_parsing": "字段 {field} 不是合法的 UUID",
    "url_parsing": "字段 {field} 不是合法的网址",
    "identity_required": "字段 {field} 至少需要一种身份（外部编号、公众号用户标识、企业微信外部联系人 ID、"
                         "手机号或邮箱）",
    "customer_required": "请提供客户编号或客户身份，二者只能选其一",
}
INVALID_VALUE = "字段 {field} 的值不合法"


def validation_detail(error: Any) -> dict[str, str]:
    """One pydantic error as {field, type, message}, the message in Chinese with the field's name."""
    field = ".".join(str(p) for p in error.get("loc", ())) or "请求体"
    kind = str(error.get("type", ""))
    ctx = {k: (str(v).replace("' or '", "'、'").replace(", ", "、") if k == "expected" else v)
           for k, v in (error.get("ctx") or {}).items()}
    try:
        message = VALIDATION_MESSAGES.get(kind, INVALID_VALUE).format(field=field, **ctx)
    except (KeyError, IndexError, ValueError):
        message = INVALID_VALUE.format(field=field)
    return {"field": field, "type": kind, "message": message}


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body: malformed JSON is a 400, wrong fields a 422; nothing is changed."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise BadRequest("请求体过大", code="body_too_large")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.info("request.bad_json", path=request.url.path)
        raise BadRequest("请求体不是合法的 JSON", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("请求体必须是 JSON 对象", code="malformed_json")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        errors = [validation_detail(e) for e in exc.errors(include_url=False, include_input=False)]
        raise ValidationFailed("请求字段不合法", code="invalid_fields", details={"fields": errors}) from exc


async def require_actor(request: Request) -> Actor:
    """Authenticate the bearer token of an API request."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    actor = await security.authenticate(raw=raw.strip()) if scheme.lower() == "bearer" and raw else None
    if actor is None:
        raise _Unauthorized("需要有效的 API 令牌", code="unauthorized")
    structlog.contextvars.bind_contextvars(staff_id=actor.staff_id)
    return actor


class _Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


#: the Chinese name of each token scope, for the 403 that names the missing one
SCOPE_LABELS = {"read": "读取", "write": "写入", "events": "业务事件", "admin": "管理"}
_Handler = Callable[[Request, Actor], Awaitable[Response]]


def require_scope(actor: Actor, scope: str) -> None:
    """Refuse (403 scope_required) a caller whose API token lacks ``scope``."""
    if not actor.allows(scope):
        raise PermissionDenied(f"该 API 令牌没有“{SCOPE_LABELS.get(scope, scope)}”权限（{scope}）",
                               code="scope_required", details={"scope": scope})


def _wrap(handler: _Handler, scope: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        actor = await require_actor(request)
        # the token's scope: the endpoint's own (events, admin), else read for reads and write for changes
        require_scope(actor, scope or ("read" if request.method in ("GET", "HEAD") else "write"))
        return await handler(request, actor)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    endpoint.__module__ = handler.__module__
    return endpoint


def api(handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an endpoint that needs an authenticated staff actor (a token needs read for GET, write otherwise)."""
    return _wrap(handler, None)


def api_scope(scope: str) -> Callable[[_Handler], Callable[[Request], Awaitable[Response]]]:
    """Like ``api``, for an endpoint whose token needs one named scope (events, admin) instead."""

    def decorate(handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        return _wrap(handler, scope)

    return decorate


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter (400 when it is not one)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    return _bounded(name, value)


def parse_time(value: str | None, name: str, *, assume: tzinfo = UTC) -> datetime | None:
    """An ISO 8601 moment (a naive one is in ``assume``); None when empty; 400 naming ``name`` otherwise."""
    if not value or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{name} 必须是 ISO 8601 时间，例如 2026-12-05T08:00:00+08:00", code="invalid_parameter",
                         details={"fields": [{"field": name, "message": "时间格式不正确"}]}) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=assume)


def _bounded(name: str, value: str | int | None) -> int:
    """An integer within 64 bits, else a 400 that names the parameter."""
    try:
        number = int(value if value is not None else "")
    except ValueError as exc:
        raise BadRequest(f"{name} 必须是整数", code="invalid_parameter") from exc
    if not _INT64[0] <= number <= _INT64[1]:
        raise BadRequest(f"{name} 超出范围", code="invalid_parameter")
    return number


def path_int(request: Request, name: str) -> int:
    """An integer path parameter (400 when it is not one, or beyond 64 bits)."""
    return _bounded(name, request.path_params.get(name))


#: WeChat's and WeCom's callbacks: their answers are `success` or a short encrypted reply, far below GZip's minimum
#: size, and a burst brings thousands a second
UNCOMPRESSED_PREFIX = "/callbacks/"


class CompressionMiddleware(GZipMiddleware):
    """Starlette's GZip for pages and the API; the platform callbacks skip its wrapper (it parsed every answer's
    headers to decide not to compress them)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(UNCOMPRESSED_PREFIX):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class RequestContextMiddleware:
    """Request id in every log line and in the X-Request-ID header; security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                headers.append((b"x-frame-options", b"SAMEORIGIN"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
