"""Rollup tables the dashboards read: one fact row per ticket and per conversation, daily sums per (day, channel,
group, agent), daily channel-account counts, and the queue of tickets waiting for their fact to be recomputed.

Every row here is derived: `app.reports.jobs.rebuild` recomputes any of them from the source tables, and recomputing
a fact replaces it, so the jobs may run twice. Days are Asia/Shanghai local dates.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

#: the fact columns the per-day GROUP BYs of app.reports.facts.bucket_sql read, by the day they count on
CREATED_MEASURES = ("frt_business_b", "frt_wall_b", "nrt_business_b", "nrt_wall_b", "created_weekday", "created_hour",
                    "reason_group", "policy_id", "sla_first", "sla_next", "sla_resolution")
RESOLVED_MEASURES = ("resolution_business_b", "resolution_wall_b", "handling_wall_b")


class ReportTicketFact(Model):
    """One row per ticket: who, where, when, how fast (wall and business seconds), SLA outcome, CSAT, why it exists."""

    ticket_id = fields.IntField(primary_key=True, generated=False)
    number = fields.CharField(max_length=32)
    #: the channel account's kind, else the intake source (staff_h5, api, customer_h5 ...)
    channel = fields.CharField(max_length=32)
    account_id = fields.IntField(null=True)
    conversation_id = fields.IntField(null=True)
    group_id = fields.IntField(null=True)
    #: the current assignee
    agent_id = fields.IntField(null=True)
    policy_id = fields.IntField(null=True)
    priority = fields.CharField(max_length=16, default="normal")
    status = fields.CharField(max_length=16)
    #: new | open | pending (the backlog)
    is_open = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    created_day = fields.DateField()
    #: local hour 0-23 and ISO weekday 1-7 of creation (the heat map)
    created_hour = fields.SmallIntField()
    created_weekday = fields.SmallIntField()
    first_response_at = fields.DatetimeField(null=True)
    frt_wall = fields.IntField(null=True)
    frt_business = fields.IntField(null=True)
    #: next response: the mean over the ticket's waits (a customer message after a staff reply -> the next reply)
    nrt_count = fields.IntField(default=0)
    nrt_wall = fields.IntField(null=True)
    nrt_business = fields.IntField(null=True)
    resolved_at = fields.DatetimeField(null=True)
    resolved_day = fields.DateField(null=True)
    resolution_wall = fields.IntField(null=True)
    resolution_business = fields.IntField(null=True)
    #: the current assignee's time: their assignment -> resolution, wall seconds
    handling_wall = fields.IntField(null=True)
    reopened = fields.IntField(default=0)
    #: per clock: met | breached | running | None (the policy sets no target)
    sla_first = fields.CharField(max_length=8, null=True)
    sla_next = fields.CharField(max_length=8, null=True)
    sla_resolution = fields.CharField(max_length=8, null=True)
    breached = fields.BooleanField(default=False)
    escalations = fields.IntField(default=0)
    csat = fields.SmallIntField(null=True)
    rated_at = fields.DatetimeField(null=True)
    rated_day = fields.DateField(null=True)
    #: the intake decision's reason (keyword, duration, human_request, bot:angry, staff, api ...) and its group
    reason = fields.CharField(max_length=48, default="")
    reason_group = fields.CharField(max_length=16, default="other")
    #: the bot's hand-off reason when the bot handed the customer over
    handoff = fields.CharField(max_length=32, null=True)
    replies = fields.IntField(default=0)
    customer_messages = fields.IntField(default=0)
    #: the durations rounded up to their histogram bucket (app.reports.facts.bucket), so counts group on them
    frt_business_b = fields.IntField(null=True)
    frt_wall_b = fields.IntField(null=True)
    nrt_business_b = fields.IntField(null=True)
    nrt_wall_b = fields.IntField(null=True)
    resolution_business_b = fields.IntField(null=True)
    resolution_wall_b = fields.IntField(null=True)
    handling_wall_b = fields.IntField(null=True)
    computed_at = fields.DatetimeField()

    class Meta:
        table = "report_ticket_fact"
        # An agent's figures, and a lead's narrowed to a channel, are grouped from the facts (an agent's tickets of
        # a day are too few for histogram rows to be fewer). Each (group_id, channel | agent_id, day) index carries
        # every column those GROUP BYs and filters read, so a 90-day slice is one index-only range read per group,
        # never a row lookup per ticket; the channel before the day keeps the other channels' tickets out of it.
        indexes = (
            ("created_day", "channel", "group_id", "agent_id"),
            ("group_id", "channel", "created_day", "agent_id", "is_open", *CREATED_MEASURES),
            ("agent_id", "created_day", "channel", "group_id", "is_open", *CREATED_MEASURES),
            ("group_id", "channel", "resolved_day", "agent_id", *RESOLVED_MEASURES),
            ("agent_id", "resolved_day", "channel", "group_id", *RESOLVED_MEASURES),
            ("group_id", "channel", "rated_day", "agent_id", "csat"),
            ("agent_id", "rated_day", "channel", "group_id", "csat"),
            ("resolved_day", "channel", "group_id", "agent_id"),
            ("rated_day", "channel", "group_id", "agent_id"),
            ("is_open", "created_day"),
            # the backlog's age buckets (the whole desk; a lead's groups; their own tickets), any filter inside
            ("is_open", "created_at", "channel", "group_id", "agent_id"),
            ("is_open", "group_id", "created_at", "channel", "agent_id"),
            ("is_open", "agent_id", "created_at", "channel", "group_id"),
        )


class ReportConversationFact(Model):
    """One row per conversation: its messages, whether the bot finished it, whether and why it became a ticket."""

    conversation_id = fields.IntField(primary_key=True, generated=False)
    channel = fields.CharField(max_length=32)
    account_id = fields.IntField(null=True)
    customer_id = fields.IntField(null=True)
    started_at = fields.DatetimeField()
    day = fields.DateField()
    messages_in = fields.IntField(default=0)
    messages_out = fields.IntField(default=0)
    bot_messages = fields.IntField(default=0)
    #: the first ticket the conversation became, if any
    ticket_id = fields.IntField(null=True)
    ticket_number = fields.CharField(max_length=32, null=True)
    reason = fields.CharField(max_length=48, default="")
    reason_group = fields.CharField(max_length=16, default="")
    handoff = fields.CharField(max_length=32, null=True)
    group_id = fields.IntField(null=True)
    agent_id = fields.IntField(null=True)
    #: the bot spoke and no ticket came of it: answered without a person
    bot_resolved = fields.BooleanField(default=False)
    computed_at = fields.DatetimeField()

    class Meta:
        table = "report_conversation_fact"
        indexes = (("day", "channel", "group_id", "agent_id"),)


class ReportDaily(Model):
    """Sums per (day, channel, group, agent), recomputed from the ticket facts of that key.

    Counts by the day they belong to: created-day counts (created, frt, sla, reopened), resolved-day counts (resolved,
    resolution, handling) and rated-day counts (rated, csat).
    """

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    channel = fields.CharField(max_length=32)
    #: 0 stands for "no group" / "nobody" so the unique key holds
    group_id = fields.IntField(default=0)
    agent_id = fields.IntField(default=0)
    created = fields.IntField(default=0)
    reopened = fields.IntField(default=0)
    replies = fields.IntField(default=0)
    frt_n = fields.IntField(default=0)
    frt_business_sum = fields.BigIntField(default=0)
    frt_wall_sum = fields.BigIntField(default=0)
    sla_met = fields.IntField(default=0)
    sla_breached = fields.IntField(default=0)
    breached = fields.IntField(default=0)
    escalations = fields.IntField(default=0)
    resolved = fields.IntField(default=0)
    resolution_business_sum = fields.BigIntField(default=0)
    resolution_wall_sum = fields.BigIntField(default=0)
    handling_n = fields.IntField(default=0)
    handling_sum = fields.BigIntField(default=0)
    resolved_rated = fields.IntField(default=0)
    rated = fields.IntField(default=0)
    csat_sum = fields.IntField(default=0)
    csat_positive = fields.IntField(default=0)

    class Meta:
        table = "report_daily"
        unique_together = (("day", "channel", "group_id", "agent_id"),)
        indexes = (("group_id", "day"), ("agent_id", "day"))


class ReportDailyGroup(Model):
    """The daily sums of ReportDaily added up over the agents: per (day, channel, group). An admin's or a lead's
    figures without an agent read these (about a hundred rows a day) instead of one row per agent, channel and group
    (about a thousand a day at a million tickets a year). Kept by app.reports.facts from the ReportDaily rows."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    channel = fields.CharField(max_length=32)
    #: 0 stands for "no group"
    group_id = fields.IntField(default=0)
    created = fields.IntField(default=0)
    reopened = fields.IntField(default=0)
    replies = fields.IntField(default=0)
    frt_n = fields.IntField(default=0)
    frt_business_sum = fields.BigIntField(default=0)
    frt_wall_sum = fields.BigIntField(default=0)
    sla_met = fields.IntField(default=0)
    sla_breached = fields.IntField(default=0)
    breached = fields.IntField(default=0)
    escalations = fields.IntField(default=0)
    resolved = fields.IntField(default=0)
    resolution_business_sum = fields.BigIntField(default=0)
    resolution_wall_sum = fields.BigIntField(default=0)
    handling_n = fields.IntField(default=0)
    handling_sum = fields.BigIntField(default=0)
    resolved_rated = fields.IntField(default=0)
    rated = fields.IntField(default=0)
    csat_sum = fields.IntField(default=0)
    csat_positive = fields.IntField(default=0)

    class Meta:
        table = "report_daily_group"
        # no (group_id, day) index: GROUP BY group_id would walk it whole; a lead's groups are a filter on the
        # period's range (about a hundred rows a day)
        unique_together = (("day", "channel", "group_id"),)


class ReportDailyAgent(Model):
    """The daily sums of ReportDaily added up over channels and groups: per (day, agent). The whole desk's tables per
    agent read these (a row per agent and day) instead of one per agent, channel and group. Kept with
    ReportDailyGroup."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    #: 0 stands for "nobody"
    agent_id = fields.IntField(default=0)
    created = fields.IntField(default=0)
    reopened = fields.IntField(default=0)
    replies = fields.IntField(default=0)
    frt_n = fields.IntField(default=0)
    frt_business_sum = fields.BigIntField(default=0)
    frt_wall_sum = fields.BigIntField(default=0)
    sla_met = fields.IntField(default=0)
    sla_breached = fields.IntField(default=0)
    breached = fields.IntField(default=0)
    escalations = fields.IntField(default=0)
    resolved = fields.IntField(default=0)
    resolution_business_sum = fields.BigIntField(default=0)
    resolution_wall_sum = fields.BigIntField(default=0)
    handling_n = fields.IntField(default=0)
    handling_sum = fields.BigIntField(default=0)
    resolved_rated = fields.IntField(default=0)
    rated = fields.IntField(default=0)
    csat_sum = fields.IntField(default=0)
    csat_positive = fields.IntField(default=0)

    class Meta:
        table = "report_daily_agent"
        # no (agent_id, day) index: for GROUP BY agent_id the database would walk it whole (every day of the year)
        # instead of the period's range of the unique key
        unique_together = (("day", "agent_id"),)


class ReportCount(Model):
    """Ticket counts per day and bucket of one measure (a duration histogram, the heat map's hour, a CSAT score, a
    conversion reason, an SLA outcome per policy) over the whole desk (dim ""), per skill group ("group"), per channel
    ("channel") and per group and channel ("gch", value "12:wecom_kf"), and the same summed per ISO week and calendar
    month (facts.GRAINS: "week"/"month", "group_w"/"group_m", ...; day = the Monday, the 1st). The conversation
    figures have day rows for the whole desk and per channel.

    Percentiles and distributions over a long period read these few rows instead of every ticket fact.
    """

    id = fields.BigIntField(primary_key=True)
    #: "" (all tickets) | group | channel | gch (group and channel), or one of their week and month dims
    dim = fields.CharField(max_length=8)
    #: the group id as text, the channel kind, "group id:channel" ("" for dim "")
    dim_value = fields.CharField(max_length=48, default="")
    day = fields.DateField()
    metric = fields.CharField(max_length=24)
    bucket = fields.IntField()
    n = fields.IntField(default=0)

    class Meta:
        table = "report_count"
        # bucket and n ride in the index: a 90-day histogram is one index range, not a row lookup per bucket and day
        # (dim, day, ...): a week's or month's rows of one dim are re-summed (a rebuild) and a range of days'
        # rows replaced without reading the other dims' rows
        indexes = (("dim", "dim_value", "metric", "day", "bucket", "n"),
                   ("dim", "day", "dim_value", "metric", "bucket", "n"))


class ReportChannelDay(Model):
    """Per channel account and local day: platform messages received and processed, customer messages sent."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    #: 0: no account (a callback for an unknown account)
    account_id = fields.IntField(default=0)
    channel = fields.CharField(max_length=32, default="")
    #: callbacks stored (InboundEvent) plus kf messages pulled (KfSeen)
    received = fields.IntField(default=0)
    #: done or ignored callbacks plus the pulled kf messages (a pulled message is recorded once handled)
    processed = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    pending = fields.IntField(default=0)
    #: customer-bound outbox rows whose send was made: sent, failed, dead, unknown or sending (a row waiting for
    #: a retry counts once it settles)
    out_attempted = fields.IntField(default=0)
    out_sent = fields.IntField(default=0)
    out_failed = fields.IntField(default=0)
    #: template messages with a TEMPLATESENDJOBFINISH receipt, and those whose receipt says success
    receipts = fields.IntField(default=0)
    receipts_ok = fields.IntField(default=0)

    class Meta:
        table = "report_channel_day"
        unique_together = (("day", "account_id"),)


class ReportDirty(Model):
    """A ticket (or a conversation) whose fact is stale: the event listeners insert one row, the refresh job drains."""

    id = fields.BigIntField(primary_key=True)
    ticket_id = fields.IntField(null=True)
    conversation_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "report_dirty"


class ReportState(Model):
    """Watermarks of the refresh job (the last message id whose conversation was refreshed)."""

    key = fields.CharField(max_length=32, primary_key=True)
    value = fields.BigIntField(default=0)

    class Meta:
        table = "report_state"
