"""Request bodies of the ticket API (pydantic: validated, documented in OpenAPI from the same classes)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.customers.schemas import CustomerRef
from app.http import DbId, Version

Priority = Literal["low", "normal", "high", "urgent"]
StatusName = Literal["new", "open", "pending", "resolved", "closed"]

#: JSON columns (MySQL JSON, our orjson encoder) hold signed 64-bit integers at most
_INT64 = (-(2**63), 2**63 - 1)
_CUSTOM_FIELDS_DEPTH = 5


def _check_json_value(value: Any, depth: int) -> None:
    if depth > _CUSTOM_FIELDS_DEPTH:
        raise PydanticCustomError("custom_fields_too_deep", "custom_fields nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise PydanticCustomError("int_out_of_range", "integer beyond 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("float_not_finite", "NaN or infinity")
    elif isinstance(value, dict):
        for item in value.values():
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse what the JSON column cannot hold: integers beyond 64 bits, NaN/infinity, deep nesting."""
    _check_json_value(value, 1)
    return value


#: custom ticket fields: a JSON object whose values a JSON column can store
CustomFields = Annotated[dict[str, Any], AfterValidator(_storable)]

#: error type per patch field that has a column which cannot be null (the messages are app.http's, in Chinese)
_NOT_NULL = {"subject": "string_type", "category": "string_type", "priority": "literal_error",
             "tags": "list_type", "custom_fields": "dict_type"}


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["customer_id"]}, {"required": ["customer"]}]})

    #: the desk's customer id, or ``customer``: any identity the caller knows (exactly one of the two)
    customer_id: DbId | None = None
    customer: CustomerRef | None = Field(default=None, description="the customer by any identity; upserted")
    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20000)
    priority: Priority = "normal"
    category: str = Field(default="", max_length=32)
    order_no: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    custom_fields: CustomFields = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    group_id: DbId | None = None
    assignee_id: DbId | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> TicketCreate:
        """Exactly one way of naming the customer."""
        if (self.customer_id is None) == (self.customer is None):
            raise PydanticCustomError("customer_required", "customer_id or customer")
        return self


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version = Field(description="the version you read; a stale one is refused with 409")
    status: StatusName | None = None
    confirm: bool = Field(default=False, description="true to confirm a close; without it a close is refused with "
                                                      "409 confirmation_required and the question to ask")
    reason: str = Field(default="", max_length=500)
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=32)
    group_id: DbId | None = None
    assignee_id: DbId | None = None
    tags: list[str] | None = None
    order_no: str | None = Field(default=None, max_length=64)
    custom_fields: CustomFields | None = None

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        """An explicit null for a column that cannot be null is refused (a 422, not a database error)."""
        if value is None:
            kind = _NOT_NULL.get(info.field_name or "", "string_type")
            ctx = {"expected": "'low'、'normal'、'high'、'urgent'"} if kind == "literal_error" else {}
            raise PydanticCustomError(kind, "must not be null", ctx)
        return value


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000)
    #: internal note instead of a reply to the customer
    internal: bool = False
    #: optionally move the ticket in the same step (e.g. pending: waiting for the customer)
    status: StatusName | None = None
    #: true to confirm a close in the same step (see TicketPatch.confirm)
    confirm: bool = False


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["phone", "email"]
    reason: str = Field(min_length=1, max_length=500)
