"""Staff, departments (a tree mirrored from the WeCom directory) and the skill groups departments own."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Department(Model):
    #: the WeCom department id (1 is the root)
    id = fields.IntField(primary_key=True, generated=False)
    name = fields.CharField(max_length=128)
    parent: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "gongdan.Department", related_name="children", null=True, on_delete=fields.SET_NULL
    )
    #: "/1/2/7/": ancestors and self, so a subtree is one prefix match on an index
    path = fields.CharField(max_length=512, db_index=True, default="")
    order = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "department"


class Staff(Model):
    id = fields.IntField(primary_key=True)
    #: the WeCom userid
    userid = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=64)
    #: admin | lead | agent (a WeCom department leader is a lead - admin is granted in Gongdan)
    role = fields.CharField(max_length=16, default="agent")
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "gongdan.Department", related_name="staff", null=True, on_delete=fields.SET_NULL
    )
    #: every department the member belongs to (WeCom ids)
    department_ids: list[int] = fields.JSONField(default=list)
    #: the departments this member leads (is_leader_in_dept)
    leads_department_ids: list[int] = fields.JSONField(default=list)
    position = fields.CharField(max_length=64, default="")
    #: active | disabled (people who leave are disabled, never deleted)
    status = fields.CharField(max_length=16, default="active", db_index=True)
    can_reveal = fields.BooleanField(default=False)
    on_duty = fields.BooleanField(default=True)
    capacity = fields.IntField(default=20)
    avatar = fields.CharField(max_length=512, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "staff"


class SkillGroup(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "gongdan.Department", related_name="groups", null=True, on_delete=fields.SET_NULL
    )
    lead: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="led_groups", null=True, on_delete=fields.SET_NULL
    )
    members: fields.ManyToManyRelation[Staff] = fields.ManyToManyField(
        "gongdan.Staff", related_name="groups", through="skill_group_member"
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "skill_group"
