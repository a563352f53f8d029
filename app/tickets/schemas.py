"""Request bodies of the ticket API (pydantic: validated, documented in OpenAPI from the same classes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["low", "normal", "high", "urgent"]
StatusName = Literal["new", "open", "pending", "resolved", "closed"]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int
    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20000)
    priority: Priority = "normal"
    category: str = Field(default="", max_length=32)
    order_no: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    group_id: int | None = None
    assignee_id: int | None = None


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(description="the version you read; a stale one is refused with 409")
    status: StatusName | None = None
    reason: str = Field(default="", max_length=500)
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=32)
    group_id: int | None = None
    assignee_id: int | None = None
    tags: list[str] | None = None
    order_no: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, Any] | None = None


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000)
    #: internal note instead of a reply to the customer
    internal: bool = False
    #: optionally move the ticket in the same step (e.g. pending: waiting for the customer)
    status: StatusName | None = None


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["phone", "email"]
    reason: str = Field(min_length=1, max_length=500)
