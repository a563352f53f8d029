"""Model fields encrypted at rest as a whole.

`encrypted_json_field` is a tortoise JSONField whose column holds a JSON string: the Fernet ciphertext of the JSON
document (so a MySQL JSON column still holds valid JSON). Python code sees the plain dict, reading and writing as
with any JSONField. Rows written before encryption (a plain JSON object) are still read.
"""

from __future__ import annotations

import json
from typing import Any

from tortoise import fields

from app.security.crypto import decrypt_field, encrypt_field

#: Fernet tokens are url-safe base64 of a version byte 0x80 and a timestamp: they start with "gAAAA"
_FERNET_PREFIX = "gAAAA"


def dumps_encrypted(value: Any) -> str:
    """The JSON string of the ciphertext of ``value``'s JSON."""
    return json.dumps(encrypt_field(json.dumps(value, ensure_ascii=False, separators=(",", ":"))))


def loads_encrypted(raw: str | bytes) -> Any:
    """Read what `dumps_encrypted` wrote (or plain JSON written before encryption)."""
    data = json.loads(raw)
    if isinstance(data, str) and data.startswith(_FERNET_PREFIX):
        return json.loads(decrypt_field(data))
    return data


class EncryptedTextField(fields.TextField):  # type: ignore[misc]
    """A text column holding the Fernet ciphertext of its value (raw callbacks: they carry the customer's words,
    phone numbers included). Rows written before encryption are read as they are."""

    def to_db_value(self, value: Any, instance: Any) -> Any:
        """Encrypt on the way in."""
        if value is None or (isinstance(value, str) and value.startswith(_FERNET_PREFIX)):
            return value
        return encrypt_field(str(value))

    def to_python_value(self, value: Any) -> Any:
        """Decrypt on the way out."""
        if isinstance(value, str) and value.startswith(_FERNET_PREFIX):
            return decrypt_field(value)
        return value


def encrypted_json_field(**kwargs: Any) -> Any:
    """A JSONField encrypted as a whole at rest (e.g. ``payload = encrypted_json_field(default=dict)``)."""
    return fields.JSONField(encoder=dumps_encrypted, decoder=loads_encrypted, **kwargs)
