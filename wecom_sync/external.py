"""External-contact sync: every follow user's customers become customer identities, in full and per event.

Follows 客户联系 https://developer.work.weixin.qq.com/document/path/92571 (get_follow_user_list), path/92994
(批量获取客户详情 ``batch/get_by_user``: ≤100 userids, limit ≤100, cursor paging, ``follow_info`` with tag ids),
path/92114 (``externalcontact/get`` for one contact), path/92117 (corp tag library) and path/92130
(客户变更事件 change_external_contact: add / edit / add_half / del_external_contact / del_follow_user /
transfer_fail; operations made through the API raise no event).

* An external contact is a customer identity ``external_userid`` scoped to the CorpID. When WeCom gives a
  ``unionid`` (the corp is bound to an Open Platform account), it is added as a ``unionid`` identity too, which
  merges the contact with the Official Account follower holding the same unionid: one customer, one history.
* Follow info (remark, description, tags, remark mobiles, add way, state) is kept per (contact, follow user). Remark
  mobiles are encrypted with keyed hashes; the first valid one becomes the customer's phone when they have none.
* WeCom tags become customer tags; ``WECOM_VIP_TAGS`` maps tag names to a VIP level (highest wins).
* Events re-read the contact (``externalcontact/get``) and apply what WeCom says now, so late or repeated events
  never roll a relation back.
* A full sync requests the pages ahead (``PREFETCH_PAGES``) while it writes ``GROUP_PAGES`` of them per transaction
  with hand-written statements over plain rows; the resume cursor is the last page written, so a crash re-reads at
  most one group.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import phonenumbers
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery

from app import heap
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.db import quote_and_mark
from app.errors import PermanentChannelError
from app.logs import get_logger
from app.rows import id_step, ids_after, insert_rows, max_id, select_rows, set_column, update_rows
from app.security.crypto import encrypt_field, keyed_hash, normalize_phone
from app.settings import get_settings
from app.staff.models import Staff
from app.timeutil import utcnow
from app.uow import transaction
from app.wecom.work import WeComApi
from wecom_sync.directory import SyncReport, _DryRun
from wecom_sync.models import CorpTag, ExternalContact, ExternalFollow, SyncRun

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]
IDENTITY_KIND = "external_userid"
BATCH_USERS = 100
PAGE_LIMIT = 100
#: pages requested ahead of the writes, and pages written per transaction
PREFETCH_PAGES = 20
GROUP_PAGES = 10

#: change_external_contact types and the follow status a missing relation gets after the re-read
_DELETIONS = {"del_external_contact": "deleted_by_staff", "del_follow_user": "deleted_by_customer"}


def identity_scope() -> str:
    """The scope of external_userid identities: the CorpID (external_userids are per corp for self-built apps)."""
    return get_settings().wecom.corp_id


async def customer_for(*, external_userid: str) -> Customer | None:
    """The customer behind an external contact (H5 chat sidebar, kf), or None when not synced yet."""
    return await customers.find_by_identity(kind=IDENTITY_KIND, scope=identity_scope(), value=external_userid)


def _vip_level(tag_names: list[str], mapping: dict[str, int] | None = None) -> int:
    mapping = dict(get_settings().wecom.vip_tags) if mapping is None else mapping
    return max((mapping[n] for n in tag_names if n in mapping), default=0)


def _mobiles(raw: list[Any]) -> tuple[list[str], list[str]]:
    """(E.164 numbers, their keyed hashes) of remark mobiles; encrypt only what gets written."""
    numbers = [n for n in (_normalize_mobile(str(m)) for m in raw or []) if n]
    return numbers, [keyed_hash(n) for n in numbers]


def _normalize_mobile(raw: str) -> str | None:
    """``normalize_phone`` with a shortcut for the usual remark mobile, 11 bare digits from 1: parsing the text is
    most of its cost, and for those digits it can only give the CN number they spell."""
    if len(raw) == 11 and raw.isascii() and raw.isdigit() and raw[0] == "1":
        if _CN_MOBILE.fullmatch(raw):
            return f"+86{raw}"  # a CN mobile number is a valid number: no need to try every other number type
        number = phonenumbers.PhoneNumber(country_code=86, national_number=int(raw))
        return f"+86{raw}" if phonenumbers.is_valid_number(number) else None
    return normalize_phone(raw)


#: libphonenumber's own CN mobile pattern (is_valid_number tries it among the other number types)
_CN_MOBILE = re.compile(cast(Any, phonenumbers.PhoneMetadata.metadata_for_region("CN")).mobile.national_number_pattern)


def _encrypt_mobiles(numbers: list[str]) -> str | None:
    return encrypt_field(orjson.dumps(numbers).decode()) if numbers else None


_CONTACT_FIELDS = ("name", "type", "gender", "corp_name", "avatar", "unionid", "status")
_CONTACT_COLUMNS = ("id", "external_userid", "customer_id", *_CONTACT_FIELDS, "tag_names", "vip_from_tags")
#: what a follow_info sets on a relation (compared to skip unchanged rows)
_FOLLOW_FIELDS = ("staff_id", "remark", "description", "createtime", "tag_ids", "remark_corp_name",
                  "remark_mobile_hashes", "add_way", "state", "oper_userid", "status")
_FOLLOW_COLUMNS = ("id", "contact_id", "userid", "seen_run", *_FOLLOW_FIELDS)
#: marks the rows of one bulk insert in ``email_hash`` until their ids are read back (keyed hashes are hex)
_PENDING = "~pending:"


async def _insert_customers(rows: list[dict[str, Any]]) -> None:
    """Insert new customers with one statement and set their ids (``row["id"]``).

    Where the server hands a bulk insert's rows consecutive ids (``app.rows.id_step``) they are taken from the
    insert. Elsewhere (SQLite, an interleaving MySQL) each row carries a unique marker in ``email_hash`` (always empty
    on a customer made here) until its id is read back; the marker never leaves the caller's transaction.
    """
    step = await id_step(Customer, rows=len(rows))
    if step:
        for row, new_id in zip(rows, await insert_rows(Customer, rows, id_step=step), strict=True):
            row["id"] = new_id
        return
    prefix = f"{_PENDING}{uuid.uuid4().hex}:"
    for i, row in enumerate(rows):
        row["email_hash"] = f"{prefix}{i:08d}"
    await insert_rows(Customer, rows)
    # the markers share a prefix and end in as many digits, so one index range holds them in the rows' order (in
    # binary order and in the unicode collation alike digits sort before "z"): only the ids need reading, and the
    # markers are cleared by the same range, with no parameter per row
    db = Customer._choose_db(True)
    q, mark = quote_and_mark(db.capabilities.dialect)
    where = f"WHERE {q}email_hash{q}>={mark} AND {q}email_hash{q}<{mark}"
    markers = [prefix, f"{prefix}z"]
    table = f"{q}{Customer._meta.db_table}{q}"
    found = await db.execute_query_dict(f"SELECT {q}id{q} FROM {table} {where} ORDER BY {q}email_hash{q}", markers)
    if len(found) != len(rows):
        raise RuntimeError(f"{len(found)} customers read back for {len(rows)} inserted")
    await db.execute_query(f"UPDATE {table} SET {q}email_hash{q}=NULL {where}", markers)
    for row, found_row in zip(rows, found, strict=True):
        del row["email_hash"]
        row["id"] = int(found_row["id"])


async def _insert_contacts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert new contacts with one statement; their ids by external_userid (from the insert where the server gives
    them, else read back by primary key: every new id is past the last one there was)."""
    keys = [str(r["external_userid"]) for r in rows]
    step = await id_step(ExternalContact, rows=len(rows))
    if step:
        return dict(zip(keys, await insert_rows(ExternalContact, rows, id_step=step), strict=True))
    last_id = await max_id(ExternalContact)
    await insert_rows(ExternalContact, rows)
    new_ids = await ids_after(ExternalContact, last_id, "external_userid")
    missing = [k for k in keys if k not in new_ids]
    if missing:  # a table that handed out lower ids (its counter reset): read those by key
        new_ids.update({c["external_userid"]: int(c["id"]) for c in await select_rows(
            ExternalContact, ("external_userid", "id"), "external_userid", missing)})
    return new_ids


class _Applier:
    """Applies pages of (external_contact, [follow_info, ...]) to our tables with a handful of queries per page."""

    def __init__(self, report: SyncReport, *, run_id: int = 0) -> None:
        self.report = report
        self.run_id = run_id
        self.scope = identity_scope()
        self.tag_names: dict[str, str] = {}
        self.staff_ids: dict[str, int] = {}
        self.vip_tags = dict(get_settings().wecom.vip_tags)

    async def load(self) -> None:
        self.tag_names = {t.id: t.name for t in await CorpTag.all()}

    async def _staff_ids(self, userids: set[str]) -> None:
        missing = sorted(u for u in userids if u not in self.staff_ids)  # no copy of every known id per page
        if missing:
            self.staff_ids.update({str(u): int(i) for u, i in await Staff.filter(userid__in=missing).values_list(
                "userid", "id")})

    async def apply(self, items: list[tuple[dict[str, Any], list[dict[str, Any]]]], *,
                    complete: bool = False, removed_status: dict[str, str] | None = None) -> None:
        """Upsert contacts and their follows; ``complete``: the follow lists are whole (mark the others gone)."""
        if not items:
            return
        ext_ids = [str(c["external_userid"]) for c, _ in items]
        # every follow of a contact on the page (a contact followed by two users comes twice)
        follows_of: dict[str, list[dict[str, Any]]] = {}
        for ext, (_contact, follows) in zip(ext_ids, items, strict=True):
            follows_of.setdefault(ext, []).extend(follows)
        # plain rows, not model instances: a sync reads every contact and follow, and models cost three times more
        contacts: dict[str, dict[str, Any]] = {c["external_userid"]: c for c in await select_rows(
            ExternalContact, _CONTACT_COLUMNS, "external_userid", list(follows_of))}
        # identities matter only for contacts we do not have (a reconcile reads none)
        idents: dict[str, int] = {str(r["value"]): int(r["customer_id"]) for r in await select_rows(
            CustomerIdentity, ("value", "customer_id"), "value", [e for e in follows_of if e not in contacts],
            kind=IDENTITY_KIND, scope=self.scope)}
        # one pass over the follow_infos: remark mobiles parsed once each (a new contact's customer takes the first),
        # and the tag names externalcontact/get gives, known before a new customer takes its tags
        mobiles: dict[int, tuple[list[str], list[str]]] = {}
        for follows in follows_of.values():
            for info in follows:
                mobiles[id(info)] = _mobiles(info.get("remark_mobiles") or [])
                for tag in info.get("tags") or []:
                    self.tag_names.setdefault(str(tag.get("tag_id")), str(tag.get("tag_name") or ""))
        now = utcnow()
        new_contacts: dict[str, tuple[dict[str, Any] | int, dict[str, Any]]] = {}
        created: set[str] = set()
        new_customers: list[dict[str, Any]] = []
        changed_contacts: dict[int, dict[str, Any]] = {}
        unionids: dict[str, str] = {}
        for ext, (contact_json, _follows) in zip(ext_ids, items, strict=True):
            contact = contacts.get(ext)
            fields: dict[str, Any] = {"name": str(contact_json.get("name") or "")[:128],
                                      "type": int(contact_json.get("type") or 1),
                                      "gender": int(contact_json.get("gender") or 0),
                                      "corp_name": str(contact_json.get("corp_name") or "")[:128],
                                      "avatar": str(contact_json.get("avatar") or "")[:512],
                                      "unionid": str(contact_json.get("unionid") or "") or None}
            if fields["unionid"]:
                unionids[ext] = fields["unionid"]
            if contact is None:
                if ext in new_contacts:
                    continue  # the same contact twice on one page (two follow users)
                names = self._tag_names(follows_of[ext])
                vip = _vip_level(names, self.vip_tags)
                holder: dict[str, Any] | int
                if ext in idents:
                    holder = idents[ext]
                    names, vip = [], 0  # applied below against the existing customer
                else:
                    # the customer starts with what the page says: tags, VIP level, first remark mobile
                    phone = next((n for f in follows_of[ext] for n in mobiles[id(f)][0]), None)
                    extra: dict[str, Any] = {"phone_enc": encrypt_field(phone), "phone_hash": keyed_hash(phone)} \
                        if phone else {}
                    holder = {"name": fields["name"], "tags": names, "vip_level": vip, **extra}
                    new_customers.append(holder)
                new_contacts[ext] = (holder, {"tag_names": names, "vip_from_tags": vip, **fields})
                self.report.count("external_contacts", "added")
            else:
                changes = {k: v for k, v in fields.items() if contact[k] != v}
                if contact["status"] != "active":
                    changes["status"] = "active"
                if changes:
                    contact.update(changes, synced_at=now)
                    changed_contacts[contact["id"]] = contact
                    self.report.count("external_contacts", "changed")
        if changed_contacts:
            await update_rows(ExternalContact, changed_contacts, [*_CONTACT_FIELDS, "synced_at"])
        if new_customers:
            await _insert_customers(new_customers)
            await self._bulk_identities([{"customer_id": h["id"], "kind": IDENTITY_KIND, "scope": self.scope,
                                          "value": ext} for ext, (h, _) in new_contacts.items()
                                         if isinstance(h, dict)])
        if new_contacts:
            rows = [{"external_userid": ext, "synced_at": now, "status": "active",
                     "customer_id": h["id"] if isinstance(h, dict) else h, **values}
                    for ext, (h, values) in new_contacts.items()]
            try:
                async with transaction():
                    new_ids = await _insert_contacts(rows)
                created = set(new_contacts)
            except IntegrityError:
                for row in rows:  # another job stored some of them meanwhile: one by one
                    if not await ExternalContact.exists(external_userid=row["external_userid"]):
                        await ExternalContact.create(**row)
                stored = await select_rows(ExternalContact, _CONTACT_COLUMNS, "external_userid", list(new_contacts))
                contacts.update({c["external_userid"]: c for c in stored})
            else:
                # the rows are as written: only their ids are new
                contacts.update({r["external_userid"]: {**{c: r[c] for c in _CONTACT_COLUMNS[1:]},
                                                        "id": new_ids[r["external_userid"]]} for r in rows})
        if unionids:
            await self._link_unionids(contacts, unionids)
        await self._staff_ids({str(f.get("userid") or "") for _, follows in items for f in follows} - {""})
        # follows of every contact on the page, in one read (a contact this call created has none)
        contact_ids = [contacts[e]["id"] for e in follows_of if e not in created]
        existing: dict[tuple[int, str], dict[str, Any]] = {
            (f["contact_id"], f["userid"]): f
            for f in await select_rows(ExternalFollow, _FOLLOW_COLUMNS, "contact_id", contact_ids)
        }
        new_rows: list[dict[str, Any]] = []
        changed_rows: dict[int, dict[str, Any]] = {}
        seen_pairs: set[tuple[int, str]] = set()
        first_phone: dict[int, str] = {}
        fresh_customers = {c["id"] for c in new_customers if c.get("phone_enc")}
        for ext, (_contact, follows) in zip(ext_ids, items, strict=True):
            contact_id, customer_id = contacts[ext]["id"], contacts[ext]["customer_id"]
            for info in follows:
                userid = str(info.get("userid") or "")
                if not userid:
                    continue
                seen_pairs.add((contact_id, userid))
                numbers, hashes = mobiles[id(info)]  # every follow_info of the page was parsed above
                follow = existing.get((contact_id, userid))
                if numbers and (follow is None or follow["remark_mobile_hashes"] != hashes) and \
                        customer_id not in fresh_customers:
                    # a new or changed remark mobile may give the customer a phone number
                    first_phone.setdefault(customer_id, numbers[0])
                tag_ids = [str(t) for t in info.get("tag_id") or [t.get("tag_id") for t in info.get("tags") or []]]
                values = {"staff_id": self.staff_ids.get(userid), "remark": str(info.get("remark") or "")[:128],
                          "description": str(info.get("description") or "")[:255],
                          "createtime": int(info.get("createtime") or 0), "tag_ids": sorted(tag_ids),
                          "remark_corp_name": str(info.get("remark_corp_name") or "")[:128],
                          "remark_mobile_hashes": hashes, "add_way": int(info.get("add_way") or 0),
                          "state": str(info.get("state") or "")[:64],
                          "oper_userid": str(info.get("oper_userid") or "")[:64], "status": "active"}
                if follow is None:
                    new_rows.append({"contact_id": contact_id, "userid": userid, "seen_run": self.run_id,
                                     "synced_at": now, "remark_mobiles_enc": _encrypt_mobiles(numbers), **values})
                    self.report.count("follows", "added")
                elif any(follow[k] != v for k, v in values.items()):
                    follow.update(values, remark_mobiles_enc=_encrypt_mobiles(numbers), synced_at=now,
                                  seen_run=self.run_id)
                    changed_rows[follow["id"]] = follow
                    self.report.count("follows", "changed")
        if new_rows:
            await insert_rows(ExternalFollow, new_rows)
        if changed_rows:
            await update_rows(ExternalFollow, changed_rows, [*_FOLLOW_FIELDS, "remark_mobiles_enc", "synced_at",
                                                             "seen_run"])
        if self.run_id:
            unchanged = [row["id"] for key, row in existing.items()
                         if key in seen_pairs and row["seen_run"] != self.run_id]
            if unchanged:
                await set_column(ExternalFollow, "seen_run", self.run_id, unchanged)
        if complete:
            ended: dict[str, list[int]] = {}
            for key, gone in existing.items():
                if key not in seen_pairs and gone["status"] == "active":
                    gone["status"] = (removed_status or {}).get(gone["userid"], "gone")
                    ended.setdefault(gone["status"], []).append(gone["id"])
                    self.report.count("follows", "disabled")
            for status, ids in ended.items():
                await ExternalFollow.filter(id__in=ids).update(status=status, synced_at=now)
        # the tags of every active relation of these contacts, as they stand now (no need to read them again); a
        # contact this call created with a new customer started with the tags and phone of exactly these relations
        settled = {e for e in created if isinstance(new_contacts[e][0], dict)}
        active_tags: dict[int, set[str]] = {contacts[e]["id"]: set() for e in follows_of if e not in settled}
        for row in [*existing.values(), *new_rows]:
            if row["status"] == "active" and row["contact_id"] in active_tags:
                active_tags[row["contact_id"]].update(row["tag_ids"] or [])
        await self._refresh_customers([contacts[e] for e in follows_of if e not in settled], active_tags, first_phone)

    def _tag_names(self, follows: list[dict[str, Any]]) -> list[str]:
        """The names of the tags of these follow_infos' relations (one without a userid is no relation)."""
        ids = {str(t) for f in follows if f.get("userid")
               for t in (f.get("tag_id") or [x.get("tag_id") for x in f.get("tags") or []])}
        return sorted({self.tag_names.get(t, "") for t in ids} - {""})

    async def _bulk_identities(self, rows: list[dict[str, Any]]) -> None:
        try:
            async with transaction():
                await insert_rows(CustomerIdentity, rows)
        except IntegrityError:
            for row in rows:  # a concurrent writer holds some: attach one by one (merging where needed)
                customer = await Customer.get(id=row["customer_id"])
                await customers.add_identity(customer=customer, kind=row["kind"], scope=row["scope"],
                                             value=row["value"])

    async def _link_unionids(self, contacts: dict[str, dict[str, Any]], unionids: dict[str, str]) -> None:
        """Attach unionids; where another customer holds one (an MP follower), merge them (the slow path)."""
        holders = {str(r["value"]): int(r["customer_id"]) for r in await select_rows(
            CustomerIdentity, ("value", "customer_id"), "value", sorted(set(unionids.values())), kind="unionid",
            scope="")}
        fresh: list[dict[str, Any]] = []
        claimed: dict[str, int] = {}
        for ext, unionid in unionids.items():
            contact = contacts[ext]
            customer_id = contact["customer_id"]
            holder = holders.get(unionid, claimed.get(unionid))
            if holder == customer_id:
                continue
            if holder is None:
                claimed[unionid] = customer_id
                fresh.append({"customer_id": customer_id, "kind": "unionid", "scope": "", "value": unionid})
            else:
                await self._link_unionid(contact, unionid)
        if fresh:
            await self._bulk_identities(fresh)

    async def _link_unionid(self, contact: dict[str, Any], unionid: str) -> None:
        holder = await customers.find_by_identity(kind="unionid", value=unionid)
        customer_id = contact["customer_id"]
        if holder is not None and holder.id == customer_id:
            return
        customer = await Customer.get(id=customer_id)
        while customer.merged_into_id is not None:  # type: ignore[attr-defined]
            customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
        if holder is not None and holder.id == customer.id:
            return
        merged = await customers.add_identity(customer=customer, kind="unionid", value=unionid)
        if merged.id != customer_id:
            await ExternalContact.filter(id=contact["id"]).update(customer_id=merged.id)
            contact["customer_id"] = merged.id
            self.report.count("customers_merged", "changed")

    async def _refresh_customers(self, contacts: list[dict[str, Any]], tag_ids: dict[int, set[str]],
                                 phones: dict[int, str]) -> None:
        """Customer tags and VIP level from the WeCom tags (``tag_ids``) of every active follow of each contact."""
        pending: list[tuple[dict[str, Any], list[str], int]] = []
        for contact in contacts:
            names = sorted({self.tag_names.get(t, "") for t in tag_ids[contact["id"]]} - {""})
            vip = _vip_level(names, self.vip_tags)
            if names != contact["tag_names"] or vip != contact["vip_from_tags"] or contact["customer_id"] in phones:
                pending.append((contact, names, vip))
        if not pending:
            return
        loaded = {int(c["id"]): c for c in await select_rows(Customer, ("id", "tags", "vip_level", "phone_enc",
                                                                    "phone_hash"), "id",
                                                         sorted({c["customer_id"] for c, _, _ in pending}))}
        changed_customers: dict[int, set[str]] = {}
        changed_contacts: dict[int, dict[str, Any]] = {}
        for contact, names, vip in pending:
            customer_id = contact["customer_id"]
            customer = loaded[customer_id]
            phone = phones.get(customer_id)
            if phone and not customer["phone_enc"]:
                if customer["phone_hash"] is None:
                    # what set_contact writes for a customer without a phone (nothing verified to keep), batched
                    customer.update(phone_enc=encrypt_field(phone), phone_hash=keyed_hash(phone))
                    changed_customers.setdefault(customer_id, set()).update(("phone_enc", "phone_hash"))
                else:
                    model = await Customer.get(id=customer_id)
                    await customers.set_contact(customer=model, phone=phone)
                    customer["phone_enc"] = model.phone_enc
            if names == contact["tag_names"] and vip == contact["vip_from_tags"]:
                continue
            new_tags = sorted((set(customer["tags"] or []) - set(contact["tag_names"] or [])) | set(names))
            changes: dict[str, Any] = {}
            if new_tags != list(customer["tags"] or []):
                changes["tags"] = new_tags
            level = vip if vip else (0 if customer["vip_level"] == contact["vip_from_tags"] else customer["vip_level"])
            if level != customer["vip_level"]:
                changes["vip_level"] = level
            if changes:
                customer.update(changes)
                changed_customers.setdefault(customer_id, set()).update(changes)
            contact.update(tag_names=names, vip_from_tags=vip)
            changed_contacts[contact["id"]] = contact
        # one statement per set of changed fields, so a field nobody changed is not written back
        groups: dict[tuple[str, ...], dict[int, dict[str, Any]]] = {}
        for customer_id, fields in changed_customers.items():
            groups.setdefault(tuple(sorted(fields)), {})[customer_id] = loaded[customer_id]
        for names_of_fields, rows in groups.items():
            await update_rows(Customer, rows, list(names_of_fields))
        if changed_contacts:
            await update_rows(ExternalContact, changed_contacts, ["tag_names", "vip_from_tags"])


async def _sync_corp_tags(api: WeComApi) -> None:
    known = {t.id: (t.name, t.group_name) for t in await CorpTag.all()}
    for group in await api.list_corp_tags():
        for tag in group.get("tag") or []:
            tag_id, values = str(tag["id"]), (str(tag.get("name") or "")[:64],
                                              str(group.get("group_name") or "")[:64])
            if known.get(tag_id) != values:
                await CorpTag.update_or_create(id=tag_id, defaults={"name": values[0], "group_name": values[1]})


async def full_sync(*, api: WeComApi, dry_run: bool = False, progress: Progress | None = None,
                    resume: bool = True) -> SyncReport:
    """Read every follow user's external contacts (batch/get_by_user, cursor paging) and make ours equal."""
    report = SyncReport(kind="external_contacts", dry_run=dry_run)
    calls_before, wait_before = api.stats.total_calls, api.stats.limiter_wait
    if dry_run:
        try:
            async with transaction():
                await _full_sync(api, report, progress, run=None)
                raise _DryRun
        except _DryRun:
            pass
    else:
        run = (await SyncRun.filter(kind="external_contacts", status="running").order_by("-id").first()
               if resume else None)
        if run is None:
            run = await SyncRun.create(kind="external_contacts", cursor={})
        else:
            report.resumed = True
            report.added, report.changed, report.disabled = (dict(run.report.get(k) or {}) for k in
                                                             ("added", "changed", "disabled"))
        report.run_id = run.id
        try:
            await _full_sync(api, report, progress, run=run)
        except BaseException:
            await SyncRun.filter(id=run.id).update(report=report.to_json())
            raise
    report.api_calls = api.stats.total_calls - calls_before
    report.limiter_wait = api.stats.limiter_wait - wait_before
    if report.run_id is not None:
        await SyncRun.filter(id=report.run_id).update(status="done", finished_at=utcnow(), report=report.to_json())
    log.info("wecom_sync.external_done", **report.to_json())
    return report


async def _full_sync(api: WeComApi, report: SyncReport, progress: Progress | None, *, run: SyncRun | None) -> None:
    await _sync_corp_tags(api)
    applier = _Applier(report, run_id=run.id if run is not None else -1)
    await applier.load()
    users = await api.list_follow_users()
    batches = [users[i: i + BATCH_USERS] for i in range(0, len(users), BATCH_USERS)]
    start = int(run.cursor.get("batch") or 0) if run is not None else 0
    cursor = str(run.cursor.get("cursor") or "") if run is not None else ""
    if progress:
        progress("follow users", min(start * BATCH_USERS, len(users)), len(users))
    pages: asyncio.Queue[_Page | BaseException | None] = asyncio.Queue(maxsize=PREFETCH_PAGES)
    reader = asyncio.create_task(_read_pages(api, batches, start, cursor, pages))
    try:
        finished = False
        while not finished:
            # a few pages per transaction: each statement costs the same for 100 rows as for 500
            group: list[_Page] = []
            while len(group) < GROUP_PAGES:
                page = await pages.get()
                if isinstance(page, BaseException):
                    raise page
                if page is None:
                    finished = True
                    break
                group.append(page)
            if not group:
                break
            with heap.paused():
                async with transaction():
                    await applier.apply([item for page in group for item in page.items])
                    if run is not None:
                        await SyncRun.filter(id=run.id).update(cursor=group[-1].position)
            if progress:
                for page in group:
                    if not page.position["cursor"]:
                        progress("follow users", min(int(page.position["batch"]) * BATCH_USERS, len(users)),
                                 len(users))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    # relations this run did not see are over (a missed del_* event); contacts nobody follows are gone
    stale = ExternalFollow.filter(status="active").exclude(seen_run=applier.run_id)
    n = await stale.count()
    if n:
        ended = sorted({int(cast(Any, c)) for c in await stale.values_list("contact_id", flat=True)})
        await ExternalFollow.filter(status="active").exclude(seen_run=applier.run_id).update(status="gone")
        report.count("follows", "disabled", n)
        # an ended relation's tags leave its customer, as they do when the event arrives (VIP routing reads them)
        for k in range(0, len(ended), PAGE_LIMIT * 5):
            chunk = ended[k:k + PAGE_LIMIT * 5]
            rows = await ExternalContact.filter(id__in=chunk).values(*_CONTACT_COLUMNS)
            tags: dict[int, set[str]] = {int(r["id"]): set() for r in rows}
            for contact_id, tag_ids in await ExternalFollow.filter(contact_id__in=chunk, status="active").values_list(
                    "contact_id", "tag_ids"):
                tags[int(contact_id)].update(tag_ids or [])
            await applier._refresh_customers(rows, tags, {})
    await _mark_gone_contacts(report)


@dataclass
class _Page:
    """One batch/get_by_user page as (contact, [follow_info]) items, and where a resume starts after it."""

    items: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    position: dict[str, Any]


async def _read_pages(api: WeComApi, batches: list[list[str]], start: int, cursor: str,
                      out: asyncio.Queue[_Page | BaseException | None]) -> None:
    """Request the pages in order into ``out`` (then None, or the error), ahead of the writes: the next request
    waits on WeCom and the limiter while we write the previous page."""
    try:
        for index in range(start, len(batches)):
            while True:
                page = await api.batch_get_by_user(batches[index], cursor=cursor, limit=PAGE_LIMIT)
                cursor = str(page.get("next_cursor") or "")
                items = [(item["external_contact"], [item["follow_info"]]) for item in
                         page.get("external_contact_list") or []]
                await out.put(_Page(items, {"batch": index, "cursor": cursor} if cursor else
                                    {"batch": index + 1, "cursor": ""}))
                if not cursor:
                    break
    except Exception as exc:  # handed to the writer, which raises it
        await out.put(exc)
        return
    await out.put(None)


async def _mark_gone_contacts(report: SyncReport, contact_id: int | None = None) -> None:
    """Contacts no active relation is left on are ``gone`` (kept, with their customer and history)."""
    if contact_id is not None:
        # one contact (an event): a point lookup, not a scan of every relation
        if await ExternalFollow.exists(contact_id=contact_id, status="active"):
            return
        query = ExternalContact.filter(status="active", id=contact_id)
    else:
        followed = Subquery(ExternalFollow.filter(status="active").values("contact_id"))
        query = ExternalContact.filter(status="active").exclude(id__in=followed)
    n = await query.count()
    if n:
        ids = await query.values_list("id", flat=True)
        await ExternalContact.filter(id__in=list(ids)).update(status="gone")
        report.count("external_contacts", "disabled", n)


async def apply_event(*, api: WeComApi, fields: dict[str, str]) -> str:
    """Apply one change_external_contact event by re-reading the contact; returns the event's final status."""
    change = fields.get("ChangeType", "")
    external_userid = fields.get("ExternalUserID", "")
    userid = fields.get("UserID", "")
    if not external_userid:
        return "ignored"
    if change == "transfer_fail":
        log.info("wecom_sync.transfer_fail", userid=userid, reason=fields.get("FailReason", ""))
    report = SyncReport(kind="event")
    return await refresh_contact(api=api, external_userid=external_userid, report=report,
                                 removed_status={userid: _DELETIONS[change]} if change in _DELETIONS else None)


async def refresh_contact(*, api: WeComApi, external_userid: str, report: SyncReport | None = None,
                          removed_status: dict[str, str] | None = None) -> str:
    """Make one external contact and all its follow relations equal to what WeCom says now."""
    report = report or SyncReport(kind="event")
    try:
        data = await api.get_external_contact(external_userid)
    except PermanentChannelError as exc:
        if exc.code not in ("wecom_no_relation", "wecom_invalid_external_userid"):
            raise
        contact = await ExternalContact.get_or_none(external_userid=external_userid)
        if contact is not None:
            async with transaction():
                applier = _Applier(report)
                await applier.load()
                await applier.apply([({"external_userid": external_userid, "name": contact.name,
                                       "type": contact.type, "gender": contact.gender,
                                       "corp_name": contact.corp_name, "avatar": contact.avatar,
                                       "unionid": contact.unionid or ""}, [])],
                                    complete=True, removed_status=removed_status)
                await _mark_gone_contacts(report, contact.id)
        return "done"
    async with transaction():
        applier = _Applier(report)
        await applier.load()
        await applier.apply([(data["external_contact"], data["follow_user"])], complete=True,
                            removed_status=removed_status)
        contact = await ExternalContact.get(external_userid=external_userid)
        await _mark_gone_contacts(report, contact.id)
    return "done"
