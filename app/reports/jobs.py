"""Keeping the rollups current: event listeners mark tickets stale, jobs recompute them; rebuild; the weekly card.

The listeners run inside the ticket's transaction and only insert a `ReportDirty` row (one cheap INSERT, no lock on
shared rows), so a change never waits for report maths and two agents never contend for one daily-sum row. The
`reports_refresh` job drains the queue: it recomputes the facts of the stale tickets, of the conversations with
new messages (a message id watermark, since a conversation that never becomes a ticket emits no ticket event) and
the daily sums those facts touch. Everything is recomputed from the source rows, so a job that runs twice, or a
rebuild over the same days, leaves the same rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, cast

import structlog
from tortoise.expressions import Q

from app.conversations.models import Conversation, Message
from app.lease import renewed
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.reports import facts
from app.reports.models import ReportDirty, ReportState, ReportTicketFact
from app.security.scope import actor_for
from app.settings import get_settings
from app.staff.models import Staff
from app.tickets.models import SlaEvent, Ticket
from app.timeutil import CHINA, utcnow
from app.uow import atomic, insert_later

log = structlog.get_logger(__name__)

#: tickets recomputed per transaction
BATCH = 500
REFRESH_EVERY = 10
CHANNEL_EVERY = 300
WEEKLY_EVERY = 3600
WATERMARK = "message_id"
#: one refresh at a time across processes (`ReportState` row: the holder's lease expiry, epoch seconds): the cron
#: fires every REFRESH_EVERY s, and during a burst a run outlasts that; overlapping runs redid each other's work
#: from the same watermark and deadlocked on the same fact rows
REFRESH_LEASE = "refresh_lease"
LEASE_SECONDS = 60
RENEW_EVERY = 20.0
SLA_WATERMARK = "sla_event_id"


# ---- listeners (registered by app.setup) -------------------------------------------------------------------------


async def mark_ticket(*, ticket: Any = None, ticket_id: int | None = None, **_: Any) -> None:
    """Any ticket event: the ticket's fact is stale (refresh recomputes it)."""
    tid = ticket_id if ticket_id is not None else getattr(ticket, "id", None)
    if tid is None:
        return
    # nothing reads the mark back before the refresh: the marks of a transaction (a ticket's creation, assignment
    # and first message; a batch of creations) go in one INSERT just before its commit
    await insert_later(ReportDirty, {"ticket_id": tid, "conversation_id": getattr(ticket, "conversation_id", None)})


# ---- refresh ---------------------------------------------------------------------------------------------------


async def refresh(*, limit: int = BATCH * 10) -> dict[str, int]:
    """Recompute the stale ticket facts, the conversations with new messages and the daily sums they touch."""
    tickets = 0
    await _new_sla_events()
    conversations = await _new_messages()
    while tickets < limit:
        rows = await ReportDirty.all().order_by("id").limit(BATCH).values_list("id", "ticket_id", "conversation_id")
        if not rows:
            break
        top = max(r[0] for r in rows)
        ticket_ids = sorted({r[1] for r in rows if r[1] is not None})
        conv_ids = {r[2] for r in rows if r[2] is not None}
        async with atomic():
            old, new = await facts.save_ticket_facts(ticket_ids)
            conv_ids.update(f["conversation_id"] for f in new if f["conversation_id"])
            days = await facts.save_conversation_facts(sorted(conv_ids))
            # only the facts that changed in a column some rollup reads move sums and counts
            moved_old, moved_new = facts.moved(old, new)
            keys = facts.fact_keys([*moved_old, *moved_new])
            await facts.recompute_keys(keys)
            await facts.recompute_count_days([*(k[0] for k in keys), *days])
            await ReportDirty.filter(id__lte=top, id__in=[r[0] for r in rows]).delete()
        tickets += len(ticket_ids)
        conversations += len(conv_ids)
        if len(rows) < BATCH:
            break  # caught up: what is marked meanwhile waits for the next run (the cron's period)
    return {"tickets": tickets, "conversations": conversations}


async def _new_sla_events() -> None:
    """Escalation steps are written by the SLA cron without a ticket event: their tickets are stale too."""
    state, _ = await ReportState.get_or_create(key=SLA_WATERMARK, defaults={"value": 0})
    rows = await SlaEvent.filter(id__gt=state.value).order_by("id").limit(BATCH * 10).values_list("id", "ticket_id")
    if not rows:
        return
    async with atomic():
        await ReportDirty.bulk_create([ReportDirty(ticket_id=t) for t in sorted({r[1] for r in rows})])
        await ReportState.filter(key=SLA_WATERMARK).update(value=max(r[0] for r in rows))


async def _new_messages() -> int:
    """Conversations with messages past the watermark get their facts recomputed, and their tickets are marked
    stale (a customer's message emits no ticket event: this keeps the intake path free of report writes)."""
    state, _ = await ReportState.get_or_create(key=WATERMARK, defaults={"value": 0})
    done = 0
    mark = state.value
    while True:
        # by primary key only: a filter on conversation_id would walk every message without one
        rows = await Message.filter(id__gt=mark).order_by("id").limit(BATCH * 4).values_list(
            "id", "conversation_id", "ticket_id")
        if not rows:
            break
        mark = max(r[0] for r in rows)
        conv_ids = sorted({r[1] for r in rows if r[1] is not None})
        ticket_ids = sorted({r[2] for r in rows if r[2] is not None})
        async with atomic():
            # the conversation figures are day counts: a new conversation (or one the bot answered) moves its day's
            await facts.recompute_count_days(await facts.save_conversation_facts(conv_ids))
            if ticket_ids:
                await ReportDirty.bulk_create([ReportDirty(ticket_id=t) for t in ticket_ids])
            await ReportState.filter(key=WATERMARK).update(value=mark)
        done += len(conv_ids)
        if len(rows) < BATCH * 4:
            # caught up: a burst writes messages faster than a run reads them, and a run that chased them never
            # ended; the next run (the cron's period later) takes what came meanwhile
            break
    return done


async def reports_refresh(ctx: dict[str, Any]) -> int:
    """Cron: drain the stale-ticket queue and follow new messages, unless another run is at it (then 0)."""
    token = await _take_refresh_lease()
    if token is None:
        return 0
    lease = {"token": token}

    async def renew() -> None:
        lease["token"] = await _renew_refresh_lease(lease["token"])

    try:
        async with renewed(renew, every=RENEW_EVERY, name="reports:refresh"):
            result = await refresh()
    finally:
        await ReportState.filter(key=REFRESH_LEASE, value=lease["token"]).update(value=0)
    return result["tickets"] + result["conversations"]


async def _take_refresh_lease() -> int | None:
    """The refresh lease's expiry when this run took it, None when another run holds it."""
    now = int(utcnow().timestamp())
    await ReportState.get_or_create(key=REFRESH_LEASE, defaults={"value": 0})
    # a conditional UPDATE: of two runs in the same second only one changes the row
    token = now + LEASE_SECONDS
    taken = await ReportState.filter(key=REFRESH_LEASE, value__lt=now).update(value=token)
    return token if taken else None


async def _renew_refresh_lease(token: int) -> int:
    """Extend the lease this run holds (a run past its lease goes on; the next one may start beside it)."""
    new = max(token + 1, int(utcnow().timestamp()) + LEASE_SECONDS)
    changed = await ReportState.filter(key=REFRESH_LEASE, value=token).update(value=new)
    return new if changed else token


async def reports_channel_tick(ctx: dict[str, Any]) -> int:
    """Cron: recompute today's and yesterday's channel counts (callbacks late by a day still land)."""
    today = utcnow().astimezone(CHINA).date()
    await facts.recompute_channel_days(today - timedelta(days=1), today)
    return 2


# ---- rebuild ---------------------------------------------------------------------------------------------------


async def rebuild(*, since: date | None = None, batch: int = BATCH) -> dict[str, int]:
    """Recompute every rollup from `since` (a local date; None: everything); the same rows however often it runs."""
    lo = facts.day_bounds(since, since)[0] if since is not None else None
    ticket_q = Ticket.filter(created_at__gte=lo) if lo is not None else Ticket.all()
    ids: list[int] = [int(cast(Any, i)) for i in await ticket_q.order_by("id").values_list("id", flat=True)]
    if lo is not None:
        # tickets created earlier but resolved or rated since still count on those days
        later = await ReportTicketFact.filter(Q(resolved_at__gte=lo) | Q(rated_at__gte=lo), created_at__lt=lo) \
            .values_list("ticket_id", flat=True)
        ids = sorted({*ids, *(int(cast(Any, i)) for i in later)})
    else:
        await ReportTicketFact.filter(ticket_id__not_in=list(ids) or [-1]).delete()
    first_day = since
    for i in range(0, len(ids), batch):
        async with atomic():
            _, new = await facts.save_ticket_facts(list(ids[i:i + batch]))
        for f in new:
            if first_day is None or f["created_day"] < first_day:
                first_day = f["created_day"]
    conv_q = Conversation.filter(started_at__gte=lo) if lo is not None else Conversation.all()
    conv_ids = [int(cast(Any, i)) for i in await conv_q.order_by("id").values_list("id", flat=True)]
    for i in range(0, len(conv_ids), batch):
        async with atomic():
            await facts.save_conversation_facts(list(conv_ids[i:i + batch]))
    today = utcnow().astimezone(CHINA).date()
    earliest = await ReportTicketFact.all().order_by("created_day").first().values_list("created_day", flat=True)
    start = max(first_day or today, cast(date, earliest)) if earliest else (first_day or today)
    await facts.recompute_days(start, today)
    await facts.recompute_channel_days(start, today)
    await caught_up()
    log.info("reports.rebuilt", tickets=len(ids), conversations=len(conv_ids), since=str(since or ""))
    return {"tickets": len(ids), "conversations": len(conv_ids), "days": (today - start).days + 1}


async def caught_up() -> None:
    """Mark every message and SLA event so far as reflected in the rollups (after a rebuild)."""
    top = await Message.all().order_by("-id").first().values_list("id", flat=True)
    await ReportState.update_or_create(key=WATERMARK, defaults={"value": int(cast(Any, top) or 0)})
    sla_top = await SlaEvent.all().order_by("-id").first().values_list("id", flat=True)
    await ReportState.update_or_create(key=SLA_WATERMARK, defaults={"value": int(cast(Any, sla_top) or 0)})
    await ReportDirty.all().delete()


# ---- weekly summary ------------------------------------------------------------------------------------------------


#: the week's figures on the card (WeCom shows at most 6 rows; key names of at most 5 characters read best)
CARD_FIGURES = (("created", "新建工单"), ("conversion_rate", "转化率"), ("csat_avg", "满意度"),
                ("frt_business_median", "首响中位"), ("sla_attainment", "SLA达成"), ("reception_rate", "接收率"))


def _card_value(service: Any, f: Any) -> str:
    text = str(service.format_value(f))
    if f.change is None or f.value is None:
        return text
    delta = service.format_value(replace(f, value=abs(f.change)))
    return f"{text}（{'↑' if f.change > 0 else '↓' if f.change < 0 else '持平'}{delta if f.change else ''}）"


def last_week(now: datetime) -> tuple[date, date]:
    """Monday..Sunday of the last complete local week before `now`."""
    today = now.astimezone(CHINA).date()
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


async def weekly_summary(*, now: datetime | None = None) -> int:
    """One WeCom card per active lead with last week's key figures (one per lead and week); returns cards written."""
    from app.reports import service  # the figures read what this module writes: import late

    start, end = last_week(now or utcnow())
    sent = 0
    for lead in await Staff.filter(role="lead", status="active").order_by("id"):
        key = f"card:weekly_report:{start.isoformat()}:{lead.id}"
        if await OutboxMessage.exists(dedupe_key=key):
            continue
        actor = await actor_for(lead)
        section = await service.overview(actor=actor, flt=service.ReportFilter(start=start, end=end))
        by_key = {f.key: f for f in section.figures}
        rows = [{"keyname": label, "value": _card_value(service, by_key[key])} for key, label in CARD_FIGURES
                if key in by_key]
        target = f"/console/reports?from={start.isoformat()}&to={end.isoformat()}"
        card = {
            "card_type": "text_notice",
            "source": {"desc": "工单周报", "desc_color": 0},
            "main_title": {"title": "上周服务数据", "desc": f"{start:%m月%d日} - {end:%m月%d日}"},
            "horizontal_content_list": rows,
            "card_action": {"type": 1, "url": f"{get_settings().public_url}{target}"},
        }
        await outbox.create(channel="wecom_app", kind="staff_card", recipient=lead.userid,
                            payload={"msgtype": "template_card", "template_card": card}, dedupe_key=key)
        sent += 1
    log.info("reports.weekly_summary", week=start.isoformat(), leads=sent)
    return sent


async def reports_weekly(ctx: dict[str, Any]) -> int:
    """Cron (hourly): last week's card to every lead; the dedupe key keeps it to one per lead per week."""
    return await weekly_summary()
