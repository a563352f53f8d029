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
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.errors import PermanentChannelError
from app.logs import get_logger
from app.security.crypto import encrypt_field, keyed_hash, normalize_phone
from app.settings import get_settings
from app.staff.models import Staff
from app.timeutil import utcnow
from app.wecom.work import WeComApi
from wecom_sync.directory import SyncReport, _DryRun
from wecom_sync.models import CorpTag, ExternalContact, ExternalFollow, SyncRun

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]
IDENTITY_KIND = "external_userid"
BATCH_USERS = 100
PAGE_LIMIT = 100

#: change_external_contact types and the follow status a missing relation gets after the re-read
_DELETIONS = {"del_external_contact": "deleted_by_staff", "del_follow_user": "deleted_by_customer"}


def identity_scope() -> str:
    """The scope of external_userid identities: the CorpID (external_userids are per corp for self-built apps)."""
    return get_settings().wecom.corp_id


async def customer_for(*, external_userid: str) -> Customer | None:
    """The customer behind an external contact (H5 chat sidebar, kf), or None when not synced yet."""
    return await customers.find_by_identity(kind=IDENTITY_KIND, scope=identity_scope(), value=external_userid)


def _vip_level(tag_names: list[str]) -> int:
    mapping = dict(get_settings().wecom.vip_tags)
    return max((mapping[n] for n in tag_names if n in mapping), default=0)


def _mobiles(raw: list[Any]) -> tuple[list[str], list[str]]:
    """(E.164 numbers, their keyed hashes) of remark mobiles; encrypt only what gets written."""
    numbers = [n for n in (normalize_phone(str(m)) for m in raw or []) if n]
    return numbers, [keyed_hash(n) for n in numbers]


def _encrypt_mobiles(numbers: list[str]) -> str | None:
    return encrypt_field(json.dumps(numbers)) if numbers else None


class _Applier:
    """Applies pages of (external_contact, [follow_info, ...]) to our tables with a handful of queries per page."""

    def __init__(self, report: SyncReport, *, run_id: int = 0) -> None:
        self.report = report
        self.run_id = run_id
        self.scope = identity_scope()
        self.tag_names: dict[str, str] = {}
        self.staff_ids: dict[str, int] = {}
        self._new_identities: list[CustomerIdentity] = []

    async def load(self) -> None:
        self.tag_names = {t.id: t.name for t in await CorpTag.all()}

    async def _staff_ids(self, userids: set[str]) -> None:
        missing = sorted(userids - set(self.staff_ids))
        if missing:
            self.staff_ids.update({str(u): int(i) for u, i in await Staff.filter(userid__in=missing).values_list(
                "userid", "id")})

    async def apply(self, items: list[tuple[dict[str, Any], list[dict[str, Any]]]], *,
                    complete: bool = False, removed_status: dict[str, str] | None = None) -> None:
        """Upsert contacts and their follows; ``complete``: the follow lists are whole (mark the others gone)."""
        if not items:
            return
        ext_ids = [str(c["external_userid"]) for c, _ in items]
        contacts = {c.external_userid: c for c in await ExternalContact.filter(external_userid__in=ext_ids)}
        idents = {i.value: i for i in await CustomerIdentity.filter(kind=IDENTITY_KIND, scope=self.scope,
                                                                    value__in=ext_ids)}
        now = utcnow()
        new_contacts: list[ExternalContact] = []
        unionids: dict[str, str] = {}
        for contact_json, _follows in items:
            ext = str(contact_json["external_userid"])
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
                if any(c.external_userid == ext for c in new_contacts):
                    continue  # the same contact twice on one page (two follow users)
                ident = idents.get(ext)
                names = self._tag_names_of(items, ext)
                vip = _vip_level(names)
                if ident is not None:
                    customer_id = ident.customer_id  # type: ignore[attr-defined]
                    names, vip = [], 0  # applied below against the existing customer
                else:
                    # the customer starts with what the page says: tags, VIP level, first remark mobile
                    phone = next((n for c, fl in items if str(c["external_userid"]) == ext for f in fl
                                  for n in _mobiles(f.get("remark_mobiles") or [])[0]), None)
                    extra: dict[str, Any] = {"phone_enc": encrypt_field(phone), "phone_hash": keyed_hash(phone)} \
                        if phone else {}
                    customer = await Customer.create(name=fields["name"], tags=names, vip_level=vip, **extra)
                    customer_id = customer.id
                    self._new_identities.append(CustomerIdentity(customer_id=customer_id, kind=IDENTITY_KIND,
                                                                 scope=self.scope, value=ext))
                new_contacts.append(ExternalContact(external_userid=ext, customer_id=customer_id, synced_at=now,
                                                    tag_names=names, vip_from_tags=vip, **fields))
                self.report.count("external_contacts", "added")
            else:
                changes = {k: v for k, v in fields.items() if getattr(contact, k) != v}
                if contact.status != "active":
                    changes["status"] = "active"
                if changes:
                    await ExternalContact.filter(id=contact.id).update(synced_at=now, **changes)
                    for k, v in changes.items():
                        setattr(contact, k, v)
                    self.report.count("external_contacts", "changed")
        if self._new_identities:
            await self._bulk_identities(self._new_identities)
            self._new_identities = []
        if new_contacts:
            try:
                async with in_transaction():
                    await ExternalContact.bulk_create(new_contacts)
            except IntegrityError:
                for row in new_contacts:  # another job stored some of them meanwhile: one by one
                    if not await ExternalContact.exists(external_userid=row.external_userid):
                        await row.save()
            contacts.update({c.external_userid: c for c in await ExternalContact.filter(
                external_userid__in=[c.external_userid for c in new_contacts])})
        if unionids:
            await self._link_unionids(contacts, unionids)
        await self._staff_ids({str(f.get("userid") or "") for _, follows in items for f in follows} - {""})
        # follows of every contact on the page, in one read
        contact_ids = [contacts[e].id for e in ext_ids]
        existing: dict[tuple[int, str], ExternalFollow] = {
            (f.contact_id, f.userid): f  # type: ignore[attr-defined]
            for f in await ExternalFollow.filter(contact_id__in=contact_ids)
        }
        new_rows: list[ExternalFollow] = []
        seen_pairs: set[tuple[int, str]] = set()
        first_phone: dict[int, str] = {}
        for contact_json, follows in items:
            contact = contacts[str(contact_json["external_userid"])]
            for info in follows:
                userid = str(info.get("userid") or "")
                if not userid:
                    continue
                seen_pairs.add((contact.id, userid))
                numbers, hashes = _mobiles(info.get("remark_mobiles") or [])
                known = existing.get((contact.id, userid))
                if numbers and (known is None or known.remark_mobile_hashes != hashes):
                    # a new or changed remark mobile may give the customer a phone number
                    first_phone.setdefault(contact.customer_id, numbers[0])  # type: ignore[attr-defined]
                tag_ids = [str(t) for t in info.get("tag_id") or [t.get("tag_id") for t in info.get("tags") or []]]
                for tag in info.get("tags") or []:
                    # externalcontact/get names its tags; remember names we have not synced yet
                    self.tag_names.setdefault(str(tag.get("tag_id")), str(tag.get("tag_name") or ""))
                values = {"staff_id": self.staff_ids.get(userid), "remark": str(info.get("remark") or "")[:128],
                          "description": str(info.get("description") or "")[:255],
                          "createtime": int(info.get("createtime") or 0), "tag_ids": sorted(tag_ids),
                          "remark_corp_name": str(info.get("remark_corp_name") or "")[:128],
                          "remark_mobile_hashes": hashes, "add_way": int(info.get("add_way") or 0),
                          "state": str(info.get("state") or "")[:64],
                          "oper_userid": str(info.get("oper_userid") or "")[:64], "status": "active"}
                follow = existing.get((contact.id, userid))
                if follow is None:
                    new_rows.append(ExternalFollow(contact_id=contact.id, userid=userid, seen_run=self.run_id,
                                                   synced_at=now, remark_mobiles_enc=_encrypt_mobiles(numbers),
                                                   **values))
                    self.report.count("follows", "added")
                elif any(getattr(follow, k) != v for k, v in values.items()):
                    await ExternalFollow.filter(id=follow.id).update(remark_mobiles_enc=_encrypt_mobiles(numbers),
                                                                  synced_at=now,
                                                                  seen_run=self.run_id, **values)
                    self.report.count("follows", "changed")
        if new_rows:
            await ExternalFollow.bulk_create(new_rows)
        if self.run_id:
            unchanged = [row.id for key, row in existing.items() if key in seen_pairs]
            if unchanged:
                await ExternalFollow.filter(id__in=unchanged).update(seen_run=self.run_id)
        if complete:
            for key, gone in existing.items():
                if key not in seen_pairs and gone.status == "active":
                    status = (removed_status or {}).get(gone.userid, "gone")
                    await ExternalFollow.filter(id=gone.id).update(status=status, synced_at=now)
                    self.report.count("follows", "disabled")
        await self._refresh_customers([contacts[e] for e in dict.fromkeys(ext_ids)], first_phone)

    def _tag_names_of(self, items: list[tuple[dict[str, Any], list[dict[str, Any]]]], ext: str) -> list[str]:
        ids = {str(t) for c, follows in items if str(c["external_userid"]) == ext for f in follows
               for t in (f.get("tag_id") or [x.get("tag_id") for x in f.get("tags") or []])}
        return sorted({self.tag_names.get(t, "") for t in ids} - {""})

    async def _bulk_identities(self, rows: list[CustomerIdentity]) -> None:
        try:
            async with in_transaction():
                await CustomerIdentity.bulk_create(rows)
        except IntegrityError:
            for row in rows:  # a concurrent writer holds some: attach one by one (merging where needed)
                customer = await Customer.get(id=row.customer_id)  # type: ignore[attr-defined]
                await customers.add_identity(customer=customer, kind=row.kind, scope=row.scope, value=row.value)

    async def _link_unionids(self, contacts: dict[str, ExternalContact], unionids: dict[str, str]) -> None:
        """Attach unionids; where another customer holds one (an MP follower), merge them (the slow path)."""
        holders = {i.value: i.customer_id for i in await CustomerIdentity.filter(  # type: ignore[attr-defined]
            kind="unionid", scope="", value__in=sorted(set(unionids.values())))}
        fresh: list[CustomerIdentity] = []
        claimed: dict[str, int] = {}
        for ext, unionid in unionids.items():
            contact = contacts[ext]
            customer_id = contact.customer_id  # type: ignore[attr-defined]
            holder = holders.get(unionid, claimed.get(unionid))
            if holder == customer_id:
                continue
            if holder is None:
                claimed[unionid] = customer_id
                fresh.append(CustomerIdentity(customer_id=customer_id, kind="unionid", scope="", value=unionid))
            else:
                await self._link_unionid(contact, unionid)
        if fresh:
            await self._bulk_identities(fresh)

    async def _link_unionid(self, contact: ExternalContact, unionid: str) -> None:
        holder = await customers.find_by_identity(kind="unionid", value=unionid)
        customer_id = contact.customer_id  # type: ignore[attr-defined]
        if holder is not None and holder.id == customer_id:
            return
        customer = await Customer.get(id=customer_id)
        while customer.merged_into_id is not None:  # type: ignore[attr-defined]
            customer = await Customer.get(id=customer.merged_into_id)  # type: ignore[attr-defined]
        if holder is not None and holder.id == customer.id:
            return
        merged = await customers.add_identity(customer=customer, kind="unionid", value=unionid)
        if merged.id != customer_id:
            await ExternalContact.filter(id=contact.id).update(customer_id=merged.id)
            contact.customer_id = merged.id
            self.report.count("customers_merged", "changed")

    async def _refresh_customers(self, contacts: list[ExternalContact], phones: dict[int, str]) -> None:
        """Customer tags and VIP level from the WeCom tags of every active follow of each contact."""
        ids = [c.id for c in contacts]
        tag_ids: dict[int, set[str]] = {i: set() for i in ids}
        for contact_id, tags in await ExternalFollow.filter(contact_id__in=ids, status="active").values_list(
                "contact_id", "tag_ids"):
            tag_ids[int(contact_id)].update(tags or [])
        pending: list[tuple[ExternalContact, list[str], int]] = []
        for contact in contacts:
            names = sorted({self.tag_names.get(t, "") for t in tag_ids[contact.id]} - {""})
            vip = _vip_level(names)
            if names != contact.tag_names or vip != contact.vip_from_tags or \
                    contact.customer_id in phones:  # type: ignore[attr-defined]
                pending.append((contact, names, vip))
        if not pending:
            return
        loaded = {c.id: c for c in await Customer.filter(id__in=[c.customer_id for c, _, _ in pending])}  # type: ignore[attr-defined]
        for contact, names, vip in pending:
            customer_id = contact.customer_id  # type: ignore[attr-defined]
            customer = loaded[customer_id]
            phone = phones.get(customer_id)
            if phone and not customer.phone_enc:
                await customers.set_contact(customer=customer, phone=phone)
            if names == contact.tag_names and vip == contact.vip_from_tags:
                continue
            new_tags = sorted((set(customer.tags or []) - set(contact.tag_names or [])) | set(names))
            changes: dict[str, Any] = {}
            if new_tags != list(customer.tags or []):
                changes["tags"] = new_tags
            level = vip if vip else (0 if customer.vip_level == contact.vip_from_tags else customer.vip_level)
            if level != customer.vip_level:
                changes["vip_level"] = level
            if changes:
                await Customer.filter(id=customer_id).update(**changes)
                for k, v in changes.items():
                    setattr(customer, k, v)
            await ExternalContact.filter(id=contact.id).update(tag_names=names, vip_from_tags=vip)
            contact.tag_names, contact.vip_from_tags = names, vip


async def _sync_corp_tags(api: WeComApi) -> None:
    for group in await api.list_corp_tags():
        for tag in group.get("tag") or []:
            await CorpTag.update_or_create(id=str(tag["id"]), defaults={
                "name": str(tag.get("name") or "")[:64], "group_name": str(group.get("group_name") or "")[:64]})


async def full_sync(*, api: WeComApi, dry_run: bool = False, progress: Progress | None = None,
                    resume: bool = True) -> SyncReport:
    """Read every follow user's external contacts (batch/get_by_user, cursor paging) and make ours equal."""
    report = SyncReport(kind="external_contacts", dry_run=dry_run)
    calls_before, wait_before = api.stats.total_calls, api.stats.limiter_wait
    if dry_run:
        try:
            async with in_transaction():
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
    for index in range(start, len(batches)):
        while True:
            page = await api.batch_get_by_user(batches[index], cursor=cursor, limit=PAGE_LIMIT)
            items = [(item["external_contact"], [item["follow_info"]]) for item in
                     page.get("external_contact_list") or []]
            async with in_transaction():
                await applier.apply(items)
                cursor = str(page.get("next_cursor") or "")
                if run is not None:
                    position = {"batch": index, "cursor": cursor} if cursor else {"batch": index + 1, "cursor": ""}
                    await SyncRun.filter(id=run.id).update(cursor=position)
            if not cursor:
                break
        if progress:
            progress("follow users", min((index + 1) * BATCH_USERS, len(users)), len(users))
    # relations this run did not see are over (a missed del_* event); contacts nobody follows are gone
    stale = ExternalFollow.filter(status="active").exclude(seen_run=applier.run_id)
    n = await stale.count()
    if n:
        await ExternalFollow.filter(status="active").exclude(seen_run=applier.run_id).update(status="gone")
        report.count("follows", "disabled", n)
    await _mark_gone_contacts(report)


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
            async with in_transaction():
                applier = _Applier(report)
                await applier.load()
                await applier.apply([({"external_userid": external_userid, "name": contact.name,
                                       "type": contact.type, "gender": contact.gender,
                                       "corp_name": contact.corp_name, "avatar": contact.avatar,
                                       "unionid": contact.unionid or ""}, [])],
                                    complete=True, removed_status=removed_status)
                await _mark_gone_contacts(report, contact.id)
        return "done"
    async with in_transaction():
        applier = _Applier(report)
        await applier.load()
        await applier.apply([(data["external_contact"], data["follow_user"])], complete=True,
                            removed_status=removed_status)
        contact = await ExternalContact.get(external_userid=external_userid)
        await _mark_gone_contacts(report, contact.id)
    return "done"
