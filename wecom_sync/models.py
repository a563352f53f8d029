"""What the WeCom sync keeps beside the domain models: private staff fields (encrypted), directory tags,
external contacts with their follow relations, corp tags, and sync runs (for resuming and reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.customers.models import Customer
    from app.staff.models import Staff


class StaffProfile(Model):
    """WeCom fields of a synced staff member - its existence marks the member as coming from the directory."""

    id = fields.IntField(primary_key=True)
    staff: fields.OneToOneRelation[Staff] = fields.OneToOneField(
        "gongdan.Staff", related_name="wecom_profile", on_delete=fields.CASCADE
    )
    #: Fernet ciphertext - only when the secret may see it (通讯录同步 or member-authorised)
    mobile_enc = fields.TextField(null=True)
    #: keyed hash of the E.164 number, for exact-match search
    mobile_hash = fields.CharField(max_length=64, null=True, db_index=True)
    email_enc = fields.TextField(null=True)
    email_hash = fields.CharField(max_length=64, null=True, db_index=True)
    main_department = fields.IntField(default=0)
    direct_leader: list[str] = fields.JSONField(default=list)
    #: WeCom's status: 1 active, 2 disabled, 4 not activated, 5 quit - 0 = gone from the directory
    wecom_status = fields.IntField(default=1)
    #: the last full sync run that saw this member (members a full run did not see are disabled)
    seen_run = fields.IntField(default=0)
    synced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wecom_staff_profile"


class DirectoryTag(Model):
    """A WeCom directory tag (标签) and its members."""

    #: the WeCom tagid
    id = fields.IntField(primary_key=True, generated=False)
    name = fields.CharField(max_length=64)
    userids: list[str] = fields.JSONField(default=list)
    party_ids: list[int] = fields.JSONField(default=list)
    synced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wecom_directory_tag"


class CorpTag(Model):
    """An external-contact tag of the corp's tag library (企业客户标签)."""

    #: the WeCom tag id ("et...")
    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=64)
    group_name = fields.CharField(max_length=64, default="")

    class Meta:
        table = "wecom_corp_tag"


class ExternalContact(Model):
    """A WeCom external contact: one customer identity (``external_userid``) with what WeCom tells about it."""

    id = fields.IntField(primary_key=True)
    external_userid = fields.CharField(max_length=64, unique=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="external_contacts", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    #: 1 WeChat user, 2 WeCom user
    type = fields.IntField(default=1)
    gender = fields.IntField(default=0)
    corp_name = fields.CharField(max_length=128, default="")
    avatar = fields.CharField(max_length=512, default="")
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    #: tag names last applied to the customer from WeCom (so removals can be undone) and the VIP level they set
    tag_names: list[str] = fields.JSONField(default=list)
    vip_from_tags = fields.IntField(default=0)
    #: active | gone (no follow user left)
    status = fields.CharField(max_length=16, default="active")
    synced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wecom_external_contact"


class ExternalFollow(Model):
    """One staff member's relation with an external contact (follow_info)."""

    id = fields.IntField(primary_key=True)
    contact: fields.ForeignKeyRelation[ExternalContact] = fields.ForeignKeyField(
        "gongdan.ExternalContact", related_name="follows", on_delete=fields.CASCADE
    )
    userid = fields.CharField(max_length=64, db_index=True)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="external_follows", null=True, on_delete=fields.SET_NULL
    )
    remark = fields.CharField(max_length=128, default="")
    description = fields.CharField(max_length=255, default="")
    createtime = fields.BigIntField(default=0)
    tag_ids: list[str] = fields.JSONField(default=list)
    remark_corp_name = fields.CharField(max_length=128, default="")
    #: Fernet ciphertext of the JSON list of remark mobiles, with their keyed hashes for exact search
    remark_mobiles_enc = fields.TextField(null=True)
    remark_mobile_hashes: list[str] = fields.JSONField(default=list)
    add_way = fields.IntField(default=0)
    state = fields.CharField(max_length=64, default="")
    oper_userid = fields.CharField(max_length=64, default="")
    #: active | deleted_by_staff | deleted_by_customer | gone (no index on purpose: nearly every row is "active",
    #: and SQLite would pick it over the (contact, userid) index and scan)
    status = fields.CharField(max_length=24, default="active")
    seen_run = fields.IntField(default=0)
    synced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wecom_external_follow"
        unique_together = (("contact", "userid"),)


class SyncRun(Model):
    """One full sync: its progress (to resume after a crash) and its closing report."""

    id = fields.IntField(primary_key=True)
    #: directory | external_contacts
    kind = fields.CharField(max_length=32)
    #: running | done | failed
    status = fields.CharField(max_length=16, default="running", db_index=True)
    #: where to resume: the phase and position reached
    cursor: dict[str, Any] = fields.JSONField(default=dict)
    report: dict[str, Any] = fields.JSONField(default=dict)
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wecom_sync_run"
