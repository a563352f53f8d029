"""A customer named by another system: by any identity it knows (request bodies of the ticket and events API)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

#: the identities a caller may name a customer by, in the order they are looked up
IDENTITY_FIELDS = ("external_ref", "openid", "external_userid", "phone", "email")


class CustomerRef(BaseModel):
    """At least one identity; the first one found names the customer, the others are added to them."""

    model_config = ConfigDict(extra="forbid")

    external_ref: str | None = Field(default=None, min_length=1, max_length=128,
                                     description="the caller's own id for the customer (kept per API caller)")
    openid: str | None = Field(default=None, min_length=1, max_length=128, description="Official Account openid")
    external_userid: str | None = Field(default=None, min_length=1, max_length=128,
                                        description="WeCom external contact id")
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    email: str | None = Field(default=None, min_length=3, max_length=254)
    name: str = Field(default="", max_length=128, description="used when the customer is new")

    @model_validator(mode="after")
    def _one_identity(self) -> CustomerRef:
        """Refuse a reference that names nobody."""
        if not any(getattr(self, f) for f in IDENTITY_FIELDS):
            raise PydanticCustomError("identity_required", "at least one identity")
        return self
