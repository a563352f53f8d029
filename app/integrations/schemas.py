"""Request bodies of the events API and of the event rules (pydantic; documented in OpenAPI from these classes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.customers.schemas import CustomerRef
from app.tickets.schemas import CustomFields, Priority

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
ConditionOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]
Action = Literal["ticket", "message", "both"]
_Num = Annotated[float, Field(allow_inf_nan=False)]
_Str = Annotated[str, Field(max_length=200)]


class EventIn(BaseModel):
    """A business event from another system (payment_failed, delivery_delayed, ...)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=EVENT_TYPE_PATTERN, description="the event type the rules match on")
    customer: CustomerRef
    data: CustomFields = Field(default_factory=dict, description="the event's fields, read by rule conditions "
                                                                 "and {field} placeholders")


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$",
                       description="a field of the event's data; dots reach into objects")
    op: ConditionOp = "eq"
    value: bool | _Num | _Str | list[bool | _Num | _Str] | None = Field(default=None, description="compared "
                                                                      "with the field; a list for op in")


class EventRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    event_type: str = Field(pattern=EVENT_TYPE_PATTERN)
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    action: Action
    subject: str = Field(default="", max_length=200, description="ticket subject; {field} takes the event's value")
    description: str = Field(default="", max_length=5000)
    message: str = Field(default="", max_length=1000, description="text sent to the customer on their channel")
    priority: Priority | None = None
    category: str = Field(default="", max_length=32)
    tags: list[str] = Field(default_factory=list, max_length=20)
    active: bool = True


class EventRulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    event_type: str | None = Field(default=None, pattern=EVENT_TYPE_PATTERN)
    conditions: list[Condition] | None = Field(default=None, max_length=20)
    action: Action | None = None
    subject: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    message: str | None = Field(default=None, max_length=1000)
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=32)
    tags: list[str] | None = Field(default=None, max_length=20)
    active: bool | None = None
