"""Personal data in free texts, tokenised at rest.

A phone number, ID-card number or e-mail address found (by `app.security.pii`) in a text we store - a customer's
message, a ticket's subject and description - is replaced by ``⟦pii:<id>:<masked>⟧`` and its value is kept in a
`PiiToken` row, Fernet-encrypted, with a keyed hash of the normalised value for exact-match search.

- Display: `pii.mask_text` / `pii.render_tokens` show a token as its masked form (138****5678) without a query.
- Delivery: the outbox delivery path calls `detokenise_data` on the payload, so the customer and the adapters see the
  clear value (one query per payload that holds tokens, none otherwise).
- Reveal: `reveal_token` shows one value in clear after the reveal right check and an audit row.
- Forgetting: deleting the token rows (retention, erasure) leaves only the masked form in the texts.

A text without personal data costs nothing but a regex scan: no statement is sent.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Sequence
from typing import Any

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.signals import Signals

from app.security.crypto import decrypt_field, encrypt_field, keyed_hash, normalize_phone
from app.security.models import PiiToken
from app.security.pii import TOKEN, find_pii, render_tokens
from app.security.scope import Actor

__all__ = [
    "detokenise", "detokenise_data", "drop_tokens", "fit", "install", "new_token_id", "normalised", "reveal_in_ticket",
    "reveal_token",
    "text_filter", "token_ids", "token_ids_in", "tokenise", "tokenise_many", "uninstall",
]

_LETTERS = string.ascii_lowercase
#: fields of the reveal API per token kind (app.security.service.REVEAL_FIELDS)
_REVEAL_FIELD = {"phone": "phone", "email": "email", "id_card": "id_card"}
_FULLWIDTH_DIGITS = str.maketrans({chr(0xFF10 + i): str(i) for i in range(10)} | {"＋": "+", "＠": "@", "．": "."})


def new_token_id() -> str:
    """12 random lowercase letters (56 bits): never digits, so no token looks like a number."""
    return "".join(secrets.choice(_LETTERS) for _ in range(12))


def normalised(kind: str, value: str) -> str:
    """The form a value is hashed in: E.164 for mobile numbers, digits for landlines, lower case e-mail, upper case
    ID-card number."""
    plain = value.translate(_FULLWIDTH_DIGITS).strip()
    if kind == "phone":
        digits = "".join(c for c in plain if c.isdigit() or c == "+")
        return normalize_phone(digits) or digits.lstrip("+")
    if kind == "id_card":
        return plain.upper()
    return plain.lower()


def _token(token_id: str, masked: str) -> str:
    return f"⟦pii:{token_id}:{masked}⟧"


async def tokenise_many(texts: Sequence[str], *, customer_id: int | None = None) -> list[str]:
    """Replace the personal data in several texts by tokens (one INSERT for all, none when there is nothing)."""
    rows: list[PiiToken] = []
    out: list[str] = []
    for text in texts:
        spans = find_pii(text)
        if not spans:
            out.append(text)
            continue
        parts, last = [], 0
        for start, end, kind, masked in spans:
            value = text[start:end]
            token_id = new_token_id()
            rows.append(PiiToken(id=token_id, kind=kind, value_enc=encrypt_field(value),
                                 value_hash=keyed_hash(normalised(kind, value)), customer_id=customer_id))
            parts += [text[last:start], _token(token_id, masked)]
            last = end
        parts.append(text[last:])
        out.append("".join(parts))
    if rows:
        await PiiToken.bulk_create(rows)
    return out


def has_pii(texts: Sequence[str]) -> bool:
    """Whether `tokenise_many` would write a token for any of the texts."""
    return any(find_pii(t) for t in texts)


async def tokenise(text: str, *, customer_id: int | None = None) -> str:
    """Replace the personal data in one text by tokens (no statement when there is none)."""
    return (await tokenise_many([text], customer_id=customer_id))[0]


def token_ids_in(value: Any) -> set[str]:
    """The token ids inside a text or a JSON-like value."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str):
            if "⟦" in v:
                found.update(m.group("id") for m in TOKEN.finditer(v))
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)

    walk(value)
    return found


async def _values(ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await PiiToken.filter(id__in=wanted).values("id", "value_enc")
    return {r["id"]: decrypt_field(r["value_enc"]) for r in rows}


def _replace(text: str, values: dict[str, str]) -> str:
    if "⟦" not in text:
        return text
    # a token whose row is gone (retention, erasure) keeps showing its masked form
    return TOKEN.sub(lambda m: values.get(m.group("id")) or m.group("masked") or "***", text)


def _apply(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _replace(value, values)
    if isinstance(value, dict):
        return {k: _apply(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_apply(v, values) for v in value]
    return value


async def detokenise(text: str) -> str:
    """The text with every token back in clear (for the customer, an adapter, extraction); no query without
    tokens."""
    ids = token_ids_in(text)
    return _replace(text, await _values(ids)) if ids else text


async def detokenise_data(value: Any) -> Any:
    """`detokenise` for every string inside a JSON-like value (an outbox payload), with one query in all."""
    ids = token_ids_in(value)
    return _apply(value, await _values(ids)) if ids else value


async def token_ids(*, value: str) -> list[str]:
    """Ids of the tokens holding this value (a phone, e-mail or ID-card number), by keyed hash."""
    spans = find_pii(value)
    kind = spans[0][2] if spans else ("email" if "@" in value else "phone")
    hashes = {keyed_hash(normalised(kind, value))}
    return [str(i) for i in await PiiToken.filter(value_hash__in=sorted(hashes)).values_list("id", flat=True)]


async def text_filter(*, value: str, fields: Sequence[str] = ("subject", "description")) -> Q | None:
    """A filter matching rows whose text fields hold a token of this value (ticket search by phone), or None."""
    ids = await token_ids(value=value)
    if not ids:
        return None
    cond = Q()
    for token_id in ids[:100]:
        for name in fields:
            cond |= Q(**{f"{name}__contains": f"⟦pii:{token_id}:"})
    return cond


async def drop_tokens(ids: Iterable[str]) -> int:
    """Forget the values of these tokens (their texts keep the masked form); returns how many rows went."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    return await PiiToken.filter(id__in=wanted).delete()


async def reveal_token(*, actor: Actor, token_id: str, reason: str, object_type: str, object_id: str) -> str:
    """One tokenised value in clear, after the reveal right check and an audit row (app.security.service)."""
    from app.errors import NotFound
    from app.security import service

    row = await PiiToken.get_or_none(id=token_id)
    if row is None:
        raise NotFound("没有可显示的信息", code="nothing_to_reveal")
    return await service.reveal(actor=actor, object_type=object_type, object_id=object_id,
                                field=_REVEAL_FIELD.get(row.kind, row.kind), reason=reason,
                                value=decrypt_field(row.value_enc))


def fit(text: str, limit: int) -> str:
    """A tokenised text cut to a column's length without cutting a token: tokens show masked when it is too long."""
    if len(text) <= limit:
        return text
    return render_tokens(text)[:limit]


async def reveal_in_ticket(*, actor: Actor, ticket_id: int, token_id: str, reason: str) -> str:
    """A value tokenised in a ticket's subject, description or messages, in clear: the ticket must be in the actor's
    scope (else 404), the reveal right is checked and an audit row written."""
    from app.conversations.models import Message
    from app.errors import NotFound
    from app.tickets import service as tickets

    ticket = await tickets.get(actor=actor, ticket_id=ticket_id)
    marker = f"⟦pii:{token_id}:"
    if marker not in ticket.subject and marker not in ticket.description and not await Message.filter(
            ticket_id=ticket.id, text__contains=marker).exists():
        raise NotFound("没有可显示的信息", code="nothing_to_reveal")
    return await reveal_token(actor=actor, token_id=token_id, reason=reason, object_type="ticket",
                              object_id=str(ticket.id))


# ---- the catch-all: every Message and Ticket save ----------------------------------------------------------------

#: model label -> the text fields tokenised on save
TOKENISED_FIELDS = {"Message": ("text",), "Ticket": ("subject", "description")}
_LIMITS = {"subject": 200}


async def _tokenise_on_save(sender: type[Model], instance: Model, using_db: Any, update_fields: Any) -> None:
    names = [n for n in TOKENISED_FIELDS.get(sender.__name__, ()) if not update_fields or n in update_fields]
    texts = [getattr(instance, n) or "" for n in names]
    if not any(find_pii(t) for t in texts):
        return
    customer_id = getattr(instance, "customer_id", None)
    for name, text in zip(names, await tokenise_many(texts, customer_id=customer_id), strict=True):
        setattr(instance, name, fit(text, _LIMITS[name]) if name in _LIMITS else text)


def install() -> None:
    """Tokenise personal data in every Message and Ticket written with ``create``/``save`` (staff replies and
    notes, bot messages, API tickets), whoever writes them; the setup function calls it once (idempotent)."""
    from app.conversations.models import Message
    from app.tickets.models import Ticket

    for model in (Message, Ticket):
        model.register_listener(Signals.pre_save, _tokenise_on_save)


def uninstall() -> None:
    """Undo `install` (tests)."""
    from app.conversations.models import Message
    from app.tickets.models import Ticket

    for model in (Message, Ticket):
        listeners = Model._listeners[Signals.pre_save].get(model, [])  # type: ignore[index]
        if _tokenise_on_save in listeners:
            listeners.remove(_tokenise_on_save)
