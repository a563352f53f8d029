"""Tickets, their audit trail, and the per-day number counter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.conversations.models import Conversation
    from app.customers.models import Customer
    from app.staff.models import SkillGroup, Staff


class Ticket(Model):
    id = fields.IntField(primary_key=True)
    #: human-readable, e.g. GD-20261125-0042 (per-day sequence, Asia/Shanghai date)
    number = fields.CharField(max_length=32, unique=True)
    subject = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    #: written only by app.tickets.states
    status = fields.CharField(max_length=16, default="new")
    #: low | normal | high | urgent
    priority = fields.CharField(max_length=16, default="normal")
    category = fields.CharField(max_length=32, default="", db_index=True)
    #: extracted or entered fields (problem type, address, ...) - phone numbers are never stored here
    custom_fields: dict[str, Any] = fields.JSONField(default=dict)
    order_no = fields.CharField(max_length=64, null=True, db_index=True)
    #: Fernet ciphertext of a phone number given for this ticket, and its keyed hash
    phone_enc = fields.TextField(null=True)
    phone_hash = fields.CharField(max_length=64, null=True, db_index=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="tickets", on_delete=fields.RESTRICT
    )
    # typed loosely: the ticket domain imports no channel code
    channel_account: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "gongdan.Conversation", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    group: fields.ForeignKeyNullableRelation[SkillGroup] = fields.ForeignKeyField(
        "gongdan.SkillGroup", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    assignee: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="assigned_tickets", null=True, on_delete=fields.SET_NULL
    )
    tags: list[str] = fields.JSONField(default=list)
    merged_into: fields.ForeignKeyNullableRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="merged_from", null=True, on_delete=fields.SET_NULL
    )
    first_response_due = fields.DatetimeField(null=True, db_index=True)
    next_response_due = fields.DatetimeField(null=True, db_index=True)
    resolution_due = fields.DatetimeField(null=True, db_index=True)
    first_responded_at = fields.DatetimeField(null=True)
    sla_policy: fields.ForeignKeyNullableRelation[SlaPolicy] = fields.ForeignKeyField(
        "gongdan.SlaPolicy", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    #: per clock: {"target": s, "warn_at": iso, "due": iso, "remaining": s (while paused), "done": [...]}
    sla_state: dict[str, Any] = fields.JSONField(default=dict)
    #: set while the ticket waits for the customer (the clocks stand still)
    sla_paused_at = fields.DatetimeField(null=True)
    #: the earliest pending warning, due time or escalation step: the SLA cron reads only rows <= now
    sla_next_check_at = fields.DatetimeField(null=True, db_index=True)
    sla_breached = fields.BooleanField(default=False)
    #: set while the ticket waits in the after-hours queue: when its group opens (then it is assigned)
    after_hours_until = fields.DatetimeField(null=True, db_index=True)
    resolved_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    #: optimistic lock: every write carries the version it read and bumps it
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    #: newest customer or staff activity - "my tickets" sort on it
    last_activity_at = fields.DatetimeField()

    class Meta:
        table = "ticket"
        indexes = (
            # "my open tickets" and a group's queue: the filter (assignee or group, status) then the list's exact
            # order (last_activity_at DESC, id DESC), so each status is one ordered range and LIMIT stops early
            ("assignee_id", "status", "last_activity_at", "id"),
            ("group_id", "status", "last_activity_at", "id"),
            ("customer_id", "status"),
            ("last_activity_at", "id"),
            ("status", "resolved_at"),
        )


class TicketEvent(Model):
    """One row per change: who did what, from which value to which, and why."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="events", on_delete=fields.CASCADE
    )
    #: created | status_changed | assigned | priority_changed | group_changed | updated | replied | note |
    #: merged | customer_message
    kind = fields.CharField(max_length=32)
    #: staff | customer | system | bot
    actor_kind = fields.CharField(max_length=16)
    actor: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="ticket_events", null=True, on_delete=fields.SET_NULL
    )
    old = fields.CharField(max_length=255, null=True)
    new = fields.CharField(max_length=255, null=True)
    reason = fields.CharField(max_length=500, default="")
    data: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ticket_event"
        indexes = (("ticket_id", "id"),)


class TicketCounter(Model):
    #: the local date, YYYYMMDD
    day = fields.CharField(max_length=8, primary_key=True)
    seq = fields.IntField(default=0)

    class Meta:
        table = "ticket_counter"


# ---- routing, business calendars, SLA (issue 6) ---------------------------------------------------------------


class RoutingRuleSet(Model):
    """The routing rules in force: one validated document (what `gongdan rules import` stores)."""

    id = fields.IntField(primary_key=True)
    #: {"default_group": ..., "after_hours_group": ..., "rules": [...]}, in the canonical (exported) form
    document: dict[str, Any] = fields.JSONField(default=dict)
    #: bumped on every change, so other processes drop their cached copy
    revision = fields.IntField(default=1)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "routing_rule_set"


class BusinessCalendar(Model):
    """Working hours of a week, Chinese public holidays and 调休 days, and company-specific days off."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    #: {"1": [["09:00", "18:00"]], ..., "7": []} by ISO weekday - a 调休 working weekend uses Monday's hours
    weekly: dict[str, Any] = fields.JSONField(default=dict)
    #: close on statutory holidays and open on make-up working days (chinese_calendar)
    public_holidays = fields.BooleanField(default=True)
    #: company-specific closed days and extra working days, "YYYY-MM-DD"
    extra_days_off: list[str] = fields.JSONField(default=list)
    extra_workdays: list[str] = fields.JSONField(default=list)
    is_default = fields.BooleanField(default=False)

    class Meta:
        table = "business_calendar"


class HolidayNotice(Model):
    """An imported State Council holiday notice (国务院办公厅关于部分节假日安排的通知) for one year."""

    id = fields.IntField(primary_key=True)
    year = fields.IntField(unique=True)
    title = fields.CharField(max_length=200, default="")
    #: where the notice was published (gov.cn), if given
    source_url = fields.CharField(max_length=500, null=True)
    #: canonical form: {"year", "title", "source", "holidays": [{"name", "start", "end", "workdays": [...]}]}
    document: dict[str, Any] = fields.JSONField(default=dict)
    #: the staff userid of the importing admin, or "cli"
    imported_by = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "holiday_notice"


class GroupSettings(Model):
    """Per skill group: its calendar and how tickets are assigned inside it."""

    id = fields.IntField(primary_key=True)
    group: fields.OneToOneRelation[SkillGroup] = fields.OneToOneField(
        "gongdan.SkillGroup", related_name="settings", on_delete=fields.CASCADE
    )
    calendar: fields.ForeignKeyNullableRelation[BusinessCalendar] = fields.ForeignKeyField(
        "gongdan.BusinessCalendar", related_name="groups", null=True, on_delete=fields.SET_NULL
    )
    #: round_robin | least_open | skills | manual
    assignment = fields.CharField(max_length=16, default="least_open")
    #: round robin's cursor: the member who got the last ticket
    last_assignee_id = fields.IntField(null=True)

    class Meta:
        table = "group_settings"


class StaffSkills(Model):
    """Skill tags of a staff member (assignment by skill matches them against ticket tags and category)."""

    id = fields.IntField(primary_key=True)
    staff: fields.OneToOneRelation[Staff] = fields.OneToOneField(
        "gongdan.Staff", related_name="skills", on_delete=fields.CASCADE
    )
    tags: list[str] = fields.JSONField(default=list)

    class Meta:
        table = "staff_skills"


def default_escalation_minutes() -> list[int]:
    """Minutes after a breach for the three escalation steps (assignee, group lead, department head)."""
    return [0, 30, 60]


class SlaPolicy(Model):
    """Targets in business minutes - the most specific active policy matching a ticket applies."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    #: match criteria (None = any)
    priority = fields.CharField(max_length=16, null=True)
    vip_min = fields.IntField(null=True)
    channel = fields.CharField(max_length=32, null=True)
    group: fields.ForeignKeyNullableRelation[SkillGroup] = fields.ForeignKeyField(
        "gongdan.SkillGroup", related_name="sla_policies", null=True, on_delete=fields.CASCADE
    )
    first_response_minutes = fields.IntField(null=True)
    next_response_minutes = fields.IntField(null=True)
    resolution_minutes = fields.IntField(null=True)
    #: a warning goes out when this share of a target has elapsed
    warn_ratio = fields.FloatField(default=0.8)
    #: business minutes after a breach at which escalation steps 1, 2, 3 run
    escalation_minutes: list[int] = fields.JSONField(default=default_escalation_minutes)
    active = fields.BooleanField(default=True)
    position = fields.IntField(default=0)

    class Meta:
        table = "sla_policy"


class SlaEvent(Model):
    """A warning, breach or escalation step: UNIQUE per (ticket, clock, due time, kind), so it happens once."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="sla_events", on_delete=fields.CASCADE
    )
    #: first_response | next_response | resolution
    clock = fields.CharField(max_length=16)
    due_at = fields.DatetimeField()
    #: warning | breach | escalation_1 | escalation_2 | escalation_3
    kind = fields.CharField(max_length=16)
    #: a denormalised copy for reports (group at the time)
    group_id = fields.IntField(null=True)
    data: dict[str, Any] = fields.JSONField(default=dict)
    #: when it happened, by the desk's clock (reports count by it)
    at = fields.DatetimeField()

    class Meta:
        table = "sla_event"
        unique_together = (("ticket", "clock", "due_at", "kind"),)
        indexes = (("kind", "at"),)


# ---- satisfaction ratings (issue 10) ----------------------------------------------------------------------------


class TicketRating(Model):
    """The customer's current rating of a ticket (one per ticket), written only by app.tickets.ratings.

    A later rating (the H5 page after the chat survey, or a second visit) replaces the current one, which moves to
    `history`, so every rating given is kept.
    """

    id = fields.IntField(primary_key=True)
    ticket: fields.OneToOneRelation[Ticket] = fields.OneToOneField(
        "gongdan.Ticket", related_name="rating", on_delete=fields.CASCADE
    )
    #: 1 (very unhappy) to 5 (very happy)
    score = fields.SmallIntField()
    comment = fields.CharField(max_length=500, default="")
    #: the channel kind the customer rated on: wecom_kf, wechat_mp, h5, ...
    channel = fields.CharField(max_length=32, default="")
    #: bot_survey (the chat survey after resolution) or h5_page (the customer ticket page)
    source = fields.CharField(max_length=16)
    #: the agent the rating counts for: the assignee when the ticket was resolved (or rated)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="ratings", null=True, on_delete=fields.SET_NULL
    )
    #: the caller's own key of this rating - recording again with the same ref updates it in place
    ref = fields.CharField(max_length=64, default="")
    #: when the current rating was given
    at = fields.DatetimeField()
    #: earlier ratings, oldest first, each {"score", "comment", "channel", "source", "staff_id", "at"}
    history: list[dict[str, Any]] = fields.JSONField(default=list)

    class Meta:
        table = "ticket_rating"
        indexes = (("staff_id", "at"),)
