"""app.errors: the one-field validation error every form shows beside its field."""

from __future__ import annotations

from app.errors import ValidationFailed


def test_for_field_names_the_field_and_keeps_the_code() -> None:
    message = "接单上限应为 0 到 200 之间的整数"
    error = ValidationFailed.for_field("capacity", message, code="invalid_capacity")
    assert (error.status_code, error.code, error.message) == (422, "invalid_capacity", message)
    assert error.details == {"fields": [{"field": "capacity", "message": message}]}
