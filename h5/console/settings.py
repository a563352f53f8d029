"""What every settings page shares: the admin check, turning a service's ``ValidationFailed`` into Chinese errors next
to the form fields, the audit row written in the same transaction as the change, and form-value helpers.

The rule of the settings pages: a page never validates on its own. It turns the form into the same raw document the
YAML/CLI/API paths hand to the service (``routing.parse_document``, ``sla_config.parse_document``, ...), lets that
service validate and store it, and shows the service's messages. Form helpers only change the shape (a text box of
comma-separated words becomes a list; digits become an int, anything else is passed on as typed so the service's
validator reports it).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from app.errors import DomainError, PermissionDenied, ValidationFailed
from app.http import validation_detail
from app.security.scope import Actor
from app.security.service import record_audit
from app.uow import atomic
from h5.web import Ctx

__all__ = ["audited", "form_list", "int_or_raw", "manager", "parse_form", "require_admin", "split_errors",
           "tri_bool"]

_SPLIT = re.compile(r"[,，、;；\n\r]+")
M = TypeVar("M", bound=BaseModel)


def manager(ctx: Ctx) -> Actor:
    """The logged-in actor (console pages always have one)."""
    assert ctx.actor is not None
    return ctx.actor


def require_admin(ctx: Ctx, message: str) -> Actor:
    """The actor, when an admin; leads may look but not change (the API's rule for the same settings)."""
    actor = manager(ctx)
    if not actor.is_admin:
        raise PermissionDenied(message, code="admin_only")
    return actor


@asynccontextmanager
async def audited(ctx: Ctx, *, action: str, object_type: str, object_id: str | int,
                  reason: str = "") -> AsyncIterator[None]:
    """Run the change and write its audit row in one transaction (no change without its row, and no row for a
    change that failed)."""
    async with atomic():
        yield
        await record_audit(actor=manager(ctx), action=action, object_type=object_type, object_id=str(object_id),
                           reason=reason[:500])


def split_errors(exc: DomainError, field_of: Callable[[str], str | None]) -> tuple[dict[str, str], list[str]]:
    """A service's validation errors as (form field -> message, messages that belong to no field).

    Understands both shapes the services use: ``details.errors`` (``"where: message"`` strings, e.g.
    ``"规则 'x'.when.vip_min: 应为不小于 0 的整数"``) and ``details.fields`` (``[{"field", "message"}]``)."""
    fields: dict[str, str] = {}
    general: list[str] = []
    details = exc.details or {}
    for item in details.get("fields") or []:
        if isinstance(item, dict):
            name = field_of(str(item.get("field", "")))
            message = str(item.get("message", ""))
            if name and name not in fields:
                fields[name] = message
            else:
                general.append(message)
    for text in details.get("errors") or []:
        where, sep, message = str(text).partition(": ")
        name = field_of(where) if sep else None
        if name and name not in fields:
            fields[name] = message
        else:
            general.append(str(text))
    if not fields and not general:
        general.append(exc.message)
    return fields, general


def form_list(value: str) -> list[str]:
    """Comma/、/newline-separated words as a list (blanks dropped)."""
    return [part.strip() for part in _SPLIT.split(value or "") if part.strip()]


def int_or_raw(value: str) -> int | str | None:
    """An optional whole number: None when blank, int for digits, else the text as typed (the service refuses it)."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if re.fullmatch(r"-?\d{1,9}", value) else value


def tri_bool(value: str) -> bool | None:
    """A yes/no/either select: "1" true, "0" false, anything else None (the condition is not set)."""
    return {"1": True, "0": False}.get((value or "").strip())


def field_values(form: Any, names: list[str]) -> dict[str, Any]:
    """The submitted values of ``names`` (to show the form again as typed)."""
    out: dict[str, Any] = {}
    for name in names:
        values = form.getlist(name) if form is not None else []
        out[name] = values[0].strip() if len(values) == 1 and isinstance(values[0], str) else values
    return out


def parse_form(model: type[M], data: dict[str, Any], labels: dict[str, str]) -> M:
    """Validate form values with the service's own input model; its errors (in Chinese, named by the form's
    labels) are raised as ``ValidationFailed`` with ``details.fields``, like the JSON API's."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        fields = []
        for error in exc.errors(include_url=False, include_input=False):
            name = ".".join(str(p) for p in error.get("loc", ()))
            detail = validation_detail({**error, "loc": (labels.get(name, name),)})
            fields.append({"field": name, "message": detail["message"]})
        raise ValidationFailed("请检查标红的字段", code="invalid_fields", details={"fields": fields}) from exc
