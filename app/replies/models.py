"""A canned reply: a titled text staff insert into a reply (shared by everyone, or for one skill group)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.staff.models import SkillGroup, Staff


class CannedReply(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=64)
    #: the text inserted into the reply box, {客户称呼} {工单号} {客服姓名} are filled for the ticket
    body = fields.TextField()
    category = fields.CharField(max_length=32, default="", db_index=True)
    #: typed in the reply box to insert it quickly, e.g. "/fp", unique among active replies
    shortcut = fields.CharField(max_length=16, default="")
    #: None: everyone's, else only members (and leads) of this group see it
    group: fields.ForeignKeyNullableRelation[SkillGroup] = fields.ForeignKeyField(
        "gongdan.SkillGroup", related_name="canned_replies", null=True, on_delete=fields.CASCADE
    )
    active = fields.BooleanField(default=True)
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="canned_replies", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "canned_reply"
