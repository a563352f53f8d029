"""SLA clocks on the business calendar of the ticket's group, warnings, breaches and the escalation ladder.

Three clocks (Chatwoot's frt/nrt/rt, Zammad's escalation calculator): first response and resolution start when the
ticket is created, next response when the customer writes after a staff reply. Targets come from the most specific
active `SlaPolicy` (priority, VIP level, channel, group) unless routing named one, and count business time only.
While the ticket waits for the customer (pending) the clocks stand still; the customer's reply resumes them with
the business time they had left.

Each clock's due time is stored on the ticket (`*_due`, indexed) and the earliest pending moment - a warning, a
due time or an escalation step - in `sla_next_check_at` (indexed): the cron reads only rows whose moment has come.
A warning, breach and each escalation step is an `SlaEvent` row, UNIQUE per (ticket, clock, due time, kind), written
under a row lock together with its outbox rows: two crons running at once escalate once.

Escalation ladder after a breach (minutes of business time per policy, default 0/30/60): 1 the assignee (or the
group's lead when nobody has it), 2 the group's lead, 3 the head of the group's department from the WeCom
directory, and the priority goes up one step. Staff are told by WeCom cards: outbox rows (channel wecom_app, kind
staff_card) that the WeCom app adapter delivers (message/send textcard, https://developer.work.weixin.qq.com/document/path/90236).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from app import events
from app.customers.models import Customer
from app.logs import get_logger
from app.staff.models import Department, SkillGroup, Staff
from app.tickets import calendar as bizcal
from app.tickets.models import SlaEvent, SlaPolicy, Ticket, TicketEvent
from app.timeutil import utcnow
from app.ttl import Expiring
from app.uow import atomic

log = get_logger(__name__)

FIRST, NEXT, RESOLUTION = "first_response", "next_response", "resolution"
CLOCKS = (FIRST, NEXT, RESOLUTION)
DUE_COLUMN = {FIRST: "first_response_due", NEXT: "next_response_due", RESOLUTION: "resolution_due"}
CLOCK_LABELS = {FIRST: "首次响应", NEXT: "下次响应", RESOLUTION: "解决"}
PRIORITIES = ("low", "normal", "high", "urgent")
#: how many due tickets one cron run takes (the rest wait for the next run, oldest first)
BATCH = 500


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# ---- policies ---------------------------------------------------------------------------------------------------

CACHE_SECONDS = 30.0
_policies: Expiring[list[SlaPolicy]] = Expiring(CACHE_SECONDS)


def invalidate() -> None:
    """Forget cached policies (after an import)."""
    _policies.clear()


async def policies() -> list[SlaPolicy]:
    """Active policies, by position (cached briefly)."""
    cached = _policies.get()
    if cached is not None:
        return cached
    return _policies.put(list(await SlaPolicy.filter(active=True).order_by("position", "id")))


async def _policy(policy_id: int | None) -> SlaPolicy | None:
    if policy_id is None:
        return None
    for p in await policies():
        if p.id == policy_id:
            return p
    return await SlaPolicy.get_or_none(id=policy_id)


def pick(candidates: list[SlaPolicy], *, priority: str, vip_level: int, channel: str,
         group_id: int | None) -> SlaPolicy | None:
    """The most specific policy whose every criterion matches (ties: the lower position)."""
    best: tuple[int, int, SlaPolicy] | None = None
    for p in candidates:
        score = 0
        if p.priority is not None:
            if p.priority != priority:
                continue
            score += 1
        if p.vip_min is not None:
            if vip_level < p.vip_min:
                continue
            score += 1
        if p.channel is not None:
            if p.channel != channel:
                continue
            score += 1
        if p.group_id is not None:  # type: ignore[attr-defined]
            if p.group_id != group_id:  # type: ignore[attr-defined]
                continue
            score += 1
        if best is None or score > best[0] or (score == best[0] and p.position < best[1]):
            best = (score, p.position, p)
    return best[2] if best else None


async def select_policy(*, ticket: Ticket) -> SlaPolicy | None:
    """The policy for a ticket from its priority, customer VIP level, channel and group."""
    candidates = await policies()
    if not candidates:
        return None
    customer = await Customer.get_or_none(id=ticket.customer_id)  # type: ignore[attr-defined]
    channel = ""
    if ticket.channel_account_id is not None:  # type: ignore[attr-defined]
        kinds = await Ticket.filter(id=ticket.id).values_list("channel_account__kind", flat=True)
        channel = str(kinds[0]) if kinds else ""
    return pick(candidates, priority=ticket.priority, vip_level=customer.vip_level if customer else 0, channel=channel,
                group_id=ticket.group_id)  # type: ignore[attr-defined]


# ---- clock state ------------------------------------------------------------------------------------------------


def _start_clock(cal: bizcal.Calendar, *, start: datetime, seconds: float, ratio: float) -> dict[str, Any]:
    due = cal.add(start, seconds)
    warn = cal.add(start, seconds * ratio) if 0 < ratio < 1 else None
    return {"target": seconds, "due": _iso(due), "warn_at": _iso(warn), "done": []}


def next_check(state: dict[str, Any]) -> datetime | None:
    """The earliest moment the cron has something to do for these clocks (None: nothing pending)."""
    moments: list[datetime] = []
    for clock in CLOCKS:
        st = state.get(clock)
        if not st or not st.get("due"):
            continue
        done = st.get("done", [])
        if "breach" not in done:
            if st.get("warn_at") and "warning" not in done:
                moments.append(_dt(st["warn_at"]))  # type: ignore[arg-type]
            moments.append(_dt(st["due"]))  # type: ignore[arg-type]
            continue
        for k, at in enumerate(st.get("esc", []), 1):
            if f"escalation_{k}" not in done:
                moments.append(_dt(at))  # type: ignore[arg-type]
                break
    return min(moments) if moments else None


def _columns(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ticket's SLA columns for these clocks: the state, each clock's due time, the cron's next moment."""
    columns: dict[str, Any] = {DUE_COLUMN[c]: _dt((state.get(c) or {}).get("due")) for c in CLOCKS}
    paused = bool(extra.get("sla_paused_at"))
    columns["sla_next_check_at"] = None if paused else next_check(state)
    columns.update(extra)
    return columns


async def _save(ticket: Ticket, state: dict[str, Any], **extra: Any) -> None:
    columns = _columns(state, **extra)
    await Ticket.filter(id=ticket.id).update(sla_state=state, **columns)
    ticket.sla_state = state
    for key, value in columns.items():
        setattr(ticket, key, value)


async def _locked(ticket_id: int) -> Ticket:
    # every SLA writer takes the row lock: the cron, a reply and a status change never interleave
    return await Ticket.filter(id=ticket_id).select_for_update().get()


async def started_clocks(*, policy_id: int | None, group_id: int | None, start: datetime) -> dict[str, Any]:
    """The SLA columns of a new ticket in `group_id` whose clocks start at `start` under a policy (the policy's
    id, its first-response and resolution clocks on the group's calendar; none found: no clocks). A new ticket
    takes them in its INSERT (app.tickets.service.create)."""
    policy = await _policy(policy_id)
    state: dict[str, Any] = {}
    if policy is not None:
        cal = await bizcal.for_group(group_id=group_id)
        if policy.first_response_minutes:
            state[FIRST] = _start_clock(cal, start=start, seconds=policy.first_response_minutes * 60,
                                        ratio=policy.warn_ratio)
        if policy.resolution_minutes:
            state[RESOLUTION] = _start_clock(cal, start=start, seconds=policy.resolution_minutes * 60,
                                             ratio=policy.warn_ratio)
    return _columns(state, sla_state=state, sla_policy_id=policy.id if policy else None)


async def on_created(*, ticket: Ticket) -> None:
    """Start the clocks of the best matching policy on a new ticket that came without a policy (a routed one has
    its clocks from its INSERT)."""
    if ticket.sla_policy_id is not None:  # type: ignore[attr-defined]
        return
    policy = await select_policy(ticket=ticket)
    if policy is None:
        return
    # ticket.created is emitted inside the creating transaction: its INSERT holds the row lock, the object is the row
    columns = await started_clocks(policy_id=policy.id, group_id=ticket.group_id,  # type: ignore[attr-defined]
                                   start=utcnow())
    await Ticket.filter(id=ticket.id).update(**columns)
    for key, value in columns.items():
        setattr(ticket, key, value)


async def _stop(ticket_id: int, clocks: tuple[str, ...], *, now: datetime) -> None:
    """Stop clocks that were met (a reply, a resolution); a late stop still records its breach."""
    async with atomic():
        ticket = await _locked(ticket_id)
        state = dict(ticket.sla_state or {})
        changed = False
        for clock in clocks:
            st = state.get(clock)
            if not st or not st.get("due"):
                continue
            due = _dt(st["due"])
            if due is not None and now > due and "breach" not in st.get("done", []):
                # met, but late: the cron had not seen it yet
                await _record(ticket, clock=clock, due=due, kind="breach", now=now)
            state.pop(clock)
            changed = True
        if changed:
            await _save(ticket, state)


async def on_staff_reply(*, ticket_id: int) -> None:
    """A staff reply meets the first-response and next-response clocks."""
    await _stop(ticket_id, (FIRST, NEXT), now=utcnow())


async def on_customer_message(*, ticket_id: int, ticket: Ticket | None = None) -> None:
    """A customer message after a staff reply starts the next-response clock (if not already running)."""
    if ticket is not None and (ticket.first_responded_at is None or NEXT in (ticket.sla_state or {})):
        return  # nobody has answered yet (the first-response clock runs), or the clock runs already
    async with atomic():
        ticket = await _locked(ticket_id)
        state = dict(ticket.sla_state or {})
        # a pending or resolved ticket is about to reopen (the caller transitions it next); the clock starts now
        if ticket.first_responded_at is None or NEXT in state or ticket.status in ("closed", "merged"):
            return
        policy = await _policy(ticket.sla_policy_id)  # type: ignore[attr-defined]
        if policy is None or not policy.next_response_minutes:
            return
        cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
        state[NEXT] = _start_clock(cal, start=utcnow(), seconds=policy.next_response_minutes * 60,
                                   ratio=policy.warn_ratio)
        await _save(ticket, state)


async def pause(*, ticket_id: int) -> None:
    """Stop the clocks while the ticket waits for the customer, keeping the business time each had left."""
    now = utcnow()
    async with atomic():
        ticket = await _locked(ticket_id)
        if ticket.sla_paused_at is not None:
            return
        cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
        state = dict(ticket.sla_state or {})
        for st in state.values():
            if st.get("due") and "breach" not in st.get("done", []):
                st["remaining"] = cal.seconds_between(now, _dt(st["due"]))  # type: ignore[arg-type]
                if st.get("warn_at") and "warning" not in st.get("done", []):
                    st["warn_remaining"] = cal.seconds_between(now, _dt(st["warn_at"]))  # type: ignore[arg-type]
                st["due"] = None
        await _save(ticket, state, sla_paused_at=now)


async def resume(*, ticket_id: int) -> None:
    """Restart paused clocks from now with the business time they had left."""
    now = utcnow()
    async with atomic():
        ticket = await _locked(ticket_id)
        if ticket.sla_paused_at is None:
            return
        cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
        state = dict(ticket.sla_state or {})
        for st in state.values():
            if "remaining" in st:
                st["due"] = _iso(cal.add(now, st.pop("remaining")))
                st["done"] = [d for d in st.get("done", []) if d == "warning"]
            if "warn_remaining" in st:
                left = st.pop("warn_remaining")
                st["warn_at"] = _iso(cal.add(now, left)) if left > 0 else None
        await _save(ticket, state, sla_paused_at=None)


async def on_status_changed(*, ticket: Ticket, old: str, new: str) -> None:
    """Pause on pending, resume on the way back, stop on resolved/closed/merged, restart resolution on reopen."""
    if new == "pending":
        await pause(ticket_id=ticket.id)
    elif old == "pending" and new == "open":
        await resume(ticket_id=ticket.id)
    elif new in ("resolved", "closed", "merged"):
        await _stop(ticket.id, CLOCKS, now=utcnow())
        if ticket.sla_paused_at is not None:
            await Ticket.filter(id=ticket.id).update(sla_paused_at=None)
    elif old in ("resolved", "closed") and new == "open":
        await _reopen(ticket_id=ticket.id)


async def _reopen(*, ticket_id: int) -> None:
    # a reopened ticket gets a fresh resolution clock and, as the customer wrote again, a next-response clock
    async with atomic():
        ticket = await _locked(ticket_id)
        policy = await _policy(ticket.sla_policy_id)  # type: ignore[attr-defined]
        if policy is None:
            return
        cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
        now = utcnow()
        state = dict(ticket.sla_state or {})
        if policy.resolution_minutes:
            state[RESOLUTION] = _start_clock(cal, start=now, seconds=policy.resolution_minutes * 60,
                                             ratio=policy.warn_ratio)
        if policy.next_response_minutes and ticket.first_responded_at is not None:
            state[NEXT] = _start_clock(cal, start=now, seconds=policy.next_response_minutes * 60,
                                       ratio=policy.warn_ratio)
        await _save(ticket, state)


# ---- the cron -------------------------------------------------------------------------------------------------


async def _record(ticket: Ticket, *, clock: str, due: datetime, kind: str, now: datetime,
                  data: dict[str, Any] | None = None) -> bool:
    """Write the SlaEvent (once per ticket, clock, due time and kind) and its side effects; False if it exists."""
    if await SlaEvent.filter(ticket_id=ticket.id, clock=clock, due_at=due, kind=kind).exists():
        return False
    await SlaEvent.create(ticket_id=ticket.id, clock=clock, due_at=due, kind=kind, at=now,
                          group_id=ticket.group_id, data=data or {})  # type: ignore[attr-defined]
    if kind == "breach":
        await Ticket.filter(id=ticket.id).update(sla_breached=True)
        ticket.sla_breached = True
        await TicketEvent.create(ticket_id=ticket.id, kind="sla_breached", actor_kind="system", new=clock,
                                 reason=f"{CLOCK_LABELS[clock]}超时", data={"due": due.isoformat()})
        log.info(events.SLA_BREACHED, ticket_id=ticket.id, clock=clock)
    elif kind == "warning":
        from app.notifications import staff as staff_cards

        # the assignee, or the group's members while nobody has it
        await staff_cards.sla_warning(ticket=ticket, clock=CLOCK_LABELS[clock], due_label=_local(due))
    elif kind.startswith("escalation_"):
        await _escalate(ticket, step=int(kind.rsplit("_", 1)[1]), clock=clock, due=due)
    if kind in ("breach", "warning"):
        await events.emit(events.SLA_BREACHED if kind == "breach" else events.SLA_WARNING, ticket=ticket, clock=clock,
                          due=due)
    return True


def _local(dt: datetime) -> str:
    from app.timeutil import local

    return local(dt).strftime("%m-%d %H:%M")


async def _responsible(ticket: Ticket) -> Staff | None:
    if ticket.assignee_id is not None:  # type: ignore[attr-defined]
        staff = await Staff.get_or_none(id=ticket.assignee_id, status="active")  # type: ignore[attr-defined]
        if staff is not None:
            return staff
    return await group_lead(group_id=ticket.group_id)  # type: ignore[attr-defined]


async def group_lead(*, group_id: int | None) -> Staff | None:
    """The group's lead, else the leader of the group's department."""
    if group_id is None:
        return None
    group = await SkillGroup.get_or_none(id=group_id)
    if group is None:
        return None
    if group.lead_id is not None:  # type: ignore[attr-defined]
        lead = await Staff.get_or_none(id=group.lead_id, status="active")  # type: ignore[attr-defined]
        if lead is not None:
            return lead
    return await department_head(department_id=group.department_id, skip_levels=0)  # type: ignore[attr-defined]


async def department_head(*, department_id: int | None, skip_levels: int = 0,
                          exclude: set[int] | None = None) -> Staff | None:
    """A leader from the WeCom directory: of the department, or `skip_levels` departments further up."""
    if department_id is None:
        return None
    dept = await Department.get_or_none(id=department_id)
    if dept is None:
        return None
    chain = [int(x) for x in dept.path.strip("/").split("/") if x][::-1] or [dept.id]
    found = 0
    for dept_id in chain:
        leaders = [s for s in await Staff.filter(status="active").order_by("id")
                   if dept_id in (s.leads_department_ids or []) and s.id not in (exclude or set())]
        if leaders:
            if found == skip_levels:
                return leaders[0]
            found += 1
    return None


async def _escalate(ticket: Ticket, *, step: int, clock: str, due: datetime, bulk: _Bulk | None = None) -> None:
    key = f"sla:{ticket.id}:{clock}:{due.isoformat()}:escalation_{step}"
    label = CLOCK_LABELS[clock]
    title = f"工单超时升级（第{step}级）：{label}"
    body = f"工单 {ticket.number}「{ticket.subject[:30]}」的{label}已于 {_local(due)} 超时，请立即处理。"
    if step == 1:
        target = await (bulk.responsible(ticket) if bulk is not None else _responsible(ticket))
    elif step == 2:
        target = await (bulk.group_lead(ticket.group_id) if bulk is not None  # type: ignore[attr-defined]
                        else group_lead(group_id=ticket.group_id))  # type: ignore[attr-defined]
    else:
        group = await SkillGroup.get_or_none(id=ticket.group_id) if ticket.group_id else None  # type: ignore[attr-defined]
        lead = await group_lead(group_id=ticket.group_id)  # type: ignore[attr-defined]
        target = await department_head(
            department_id=group.department_id if group else None,  # type: ignore[attr-defined]
            skip_levels=0, exclude={lead.id} if lead else set())
        await raise_priority(ticket=ticket, reason=f"{label}超时，升级至部门负责人")
    row = TicketEvent(ticket_id=ticket.id, kind="sla_escalated", actor_kind="system", new=str(step),
                      reason=f"{label}超时升级第{step}级", data={"clock": clock,
                                                              "notified": target.userid if target else None})
    if bulk is not None:
        bulk.ticket_events.append(row)
    else:
        await row.save()
    await _card_to(ticket, target, title=title, body=body, key=key)


async def raise_priority(*, ticket: Ticket, reason: str) -> None:
    """Move the ticket's priority one step up (audited; bumps the version)."""
    current = PRIORITIES.index(ticket.priority) if ticket.priority in PRIORITIES else 1
    if current >= len(PRIORITIES) - 1:
        return
    new = PRIORITIES[current + 1]
    await Ticket.filter(id=ticket.id).update(priority=new, version=F("version") + 1, updated_at=utcnow())
    await TicketEvent.create(ticket_id=ticket.id, kind="priority_changed", actor_kind="system", old=ticket.priority,
                             new=new, reason=reason[:500])
    ticket.priority = new
    ticket.version += 1


async def _card_to(ticket: Ticket, staff: Staff | None, *, title: str, body: str, key: str) -> None:
    if staff is None:
        log.warning("sla.nobody_to_tell", ticket_id=ticket.id, key=key)
        from app.tickets.fallback import escalate_to_fallback

        await escalate_to_fallback(ticket=ticket, title=title, body=body, key=key)
        return
    from app.notifications import staff as staff_cards  # notifications import tickets: import late

    await staff_cards.ticket_card(staff=staff, ticket=ticket, title=title, description=body, dedupe_key=key)


Record = Callable[..., Awaitable[bool]]


async def _plan(ticket: Ticket, *, now: datetime, record: Record) -> None:
    """Walk the ticket's clocks and record what is due (warnings, breaches, escalation steps) through `record`,
    then save the clocks; the ticket's row lock is held by the caller."""
    policy = await _policy(ticket.sla_policy_id)  # type: ignore[attr-defined]
    steps = list(policy.escalation_minutes if policy else [0, 30, 60])[:3]
    cal = await bizcal.for_group(group_id=ticket.group_id)  # type: ignore[attr-defined]
    state = {k: dict(v) for k, v in (ticket.sla_state or {}).items()}
    for clock in CLOCKS:
        st = state.get(clock)
        if not st or not st.get("due"):
            continue
        due = _dt(st["due"])
        assert due is not None
        done: list[str] = st.setdefault("done", [])
        warn_at = _dt(st.get("warn_at"))
        if warn_at is not None and warn_at <= now < due and "warning" not in done:
            await record(ticket, clock=clock, due=due, kind="warning", now=now)
            done.append("warning")
        if due <= now and "breach" not in done:
            await record(ticket, clock=clock, due=due, kind="breach", now=now)
            done.append("breach")
            st["esc"] = [_iso(cal.add(due, float(m) * 60)) for m in steps]
        if "breach" in done:
            for k, at in enumerate(st.get("esc", []), 1):
                kind = f"escalation_{k}"
                if kind in done:
                    continue
                if _dt(at) > now:  # type: ignore[operator]
                    break
                await record(ticket, clock=clock, due=due, kind=kind, now=now)
                done.append(kind)
    ticket.sla_state = state


async def check_ticket(*, ticket_id: int, now: datetime | None = None) -> list[str]:
    """Do what is due for one ticket: warnings, breaches, escalation steps. Returns what it recorded."""
    now = now or utcnow()
    recorded: list[str] = []

    async def record(ticket: Ticket, *, clock: str, due: datetime, kind: str, now: datetime) -> bool:
        if await _record(ticket, clock=clock, due=due, kind=kind, now=now):
            recorded.append(f"{clock}:{kind}")
        return True

    async with atomic():
        ticket = await _locked(ticket_id)
        if ticket.sla_next_check_at is None or ticket.sla_next_check_at > now or ticket.sla_paused_at is not None:
            return recorded
        await _plan(ticket, now=now, record=record)
        await _save(ticket, ticket.sla_state)
    return recorded


#: due tickets handled in one transaction of a cron run (their row locks are held together, taken in id order)
CHUNK = 50
#: chunks of a run in flight at once (each holds one pooled connection)
CONCURRENCY = 5


class _Bulk:
    """What a cron chunk writes, gathered while its tickets are planned and written in a few statements: one
    INSERT of SLA events, one of ticket events, one UPDATE of the tickets' clocks; the lookups escalation needs
    (assignees, group leads) once per chunk."""

    def __init__(self, existing: set[tuple[int, str, datetime, str]]) -> None:
        self.existing = existing
        self.sla_events: list[SlaEvent] = []
        self.ticket_events: list[TicketEvent] = []
        self.after: list[Callable[[], Awaitable[None]]] = []
        self.recorded = 0
        self._staff: dict[int, Staff | None] = {}
        self._leads: dict[int | None, Staff | None] = {}

    async def responsible(self, ticket: Ticket) -> Staff | None:
        """The assignee while active, else the group's lead (each looked up once per chunk)."""
        assignee_id = ticket.assignee_id  # type: ignore[attr-defined]
        if assignee_id is not None:
            if assignee_id not in self._staff:
                self._staff[assignee_id] = await Staff.get_or_none(id=assignee_id, status="active")
            if self._staff[assignee_id] is not None:
                return self._staff[assignee_id]
        return await self.group_lead(ticket.group_id)  # type: ignore[attr-defined]

    async def group_lead(self, group_id: int | None) -> Staff | None:
        """`group_lead`, once per group per chunk."""
        if group_id not in self._leads:
            self._leads[group_id] = await group_lead(group_id=group_id)
        return self._leads[group_id]

    async def record(self, ticket: Ticket, *, clock: str, due: datetime, kind: str, now: datetime) -> bool:
        if (ticket.id, clock, due, kind) in self.existing:
            return False
        self.existing.add((ticket.id, clock, due, kind))
        self.recorded += 1
        self.sla_events.append(SlaEvent(ticket_id=ticket.id, clock=clock, due_at=due, kind=kind, at=now,
                                        group_id=ticket.group_id, data={}))  # type: ignore[attr-defined]
        if kind == "breach":
            ticket.sla_breached = True
            self.ticket_events.append(TicketEvent(ticket_id=ticket.id, kind="sla_breached", actor_kind="system",
                                                  new=clock, reason=f"{CLOCK_LABELS[clock]}超时",
                                                  data={"due": due.isoformat()}))
            log.info(events.SLA_BREACHED, ticket_id=ticket.id, clock=clock)
        if kind in ("breach", "warning") or kind.startswith("escalation_"):
            # cards (the outbox) and listeners run after the bulk writes, in the same transaction, in order
            self.after.append(lambda: self._effects(ticket, clock=clock, due=due, kind=kind))
        return True

    async def _effects(self, ticket: Ticket, *, clock: str, due: datetime, kind: str) -> None:
        if kind == "warning":
            from app.notifications import staff as staff_cards

            await staff_cards.sla_warning(ticket=ticket, clock=CLOCK_LABELS[clock], due_label=_local(due))
        elif kind.startswith("escalation_"):
            await _escalate(ticket, step=int(kind.rsplit("_", 1)[1]), clock=clock, due=due, bulk=self)
        if kind in ("breach", "warning"):
            await events.emit(events.SLA_BREACHED if kind == "breach" else events.SLA_WARNING, ticket=ticket,
                              clock=clock, due=due)


async def _run_chunk(ids: list[int], *, now: datetime) -> int:
    async with atomic():
        # every SLA writer takes the row lock; in id order, so two runs never wait on each other in a cycle
        locked = await Ticket.filter(id__in=ids).select_for_update().order_by("id")
        due = [t for t in locked if t.sla_next_check_at is not None and t.sla_next_check_at <= now
               and t.sla_paused_at is None]
        if not due:
            return 0
        rows = await SlaEvent.filter(ticket_id__in=[t.id for t in due]).values_list("ticket_id", "clock", "due_at",
                                                                                   "kind")
        bulk = _Bulk({(int(r[0]), str(r[1]), r[2], str(r[3])) for r in rows})  # type: ignore[misc]
        for ticket in due:
            await _plan(ticket, now=now, record=bulk.record)
            state = ticket.sla_state
            for clock in CLOCKS:
                setattr(ticket, DUE_COLUMN[clock], _dt((state.get(clock) or {}).get("due")))
            ticket.sla_next_check_at = next_check(state)
        # cards and listeners first: escalation adds its ticket events to the bulk
        for effect in bulk.after:
            await effect()
        if bulk.sla_events:
            await SlaEvent.bulk_create(bulk.sla_events)
        if bulk.ticket_events:
            await TicketEvent.bulk_create(bulk.ticket_events)
        await Ticket.bulk_update(due, fields=["sla_state", "sla_next_check_at", "sla_breached",
                                              *DUE_COLUMN.values()], batch_size=CHUNK)
    return len(due)


async def run_due(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """One cron pass: the tickets whose next SLA moment has come (an index range, never a scan), in chunks whose
    writes are bulk statements; nothing due is one query."""
    now = now or utcnow()
    rows = await Ticket.filter(sla_next_check_at__lte=now).order_by("sla_next_check_at").limit(limit).values_list(
        "id", flat=True)
    ids: list[int] = [int(t) for t in rows]  # type: ignore[call-overload]
    # chunks hold disjoint tickets, each locked in id order: a few run at once (a run waits on round trips)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def chunk(part: list[int]) -> None:
        async with gate:
            await _run_chunk(part, now=now)

    ordered = sorted(ids)
    await asyncio.gather(*(chunk(ordered[i:i + CHUNK]) for i in range(0, len(ordered), CHUNK)))
    return len(ids)


async def sla_tick(ctx: dict[str, Any]) -> int:
    """Cron job: warnings, breaches and escalations that are due."""
    return await run_due()


# ---- reports --------------------------------------------------------------------------------------------------


async def ticket_sla(*, ticket: Ticket) -> dict[str, Any]:
    """The SLA view of one ticket: policy, clocks, breaches and escalations."""
    policy = await _policy(ticket.sla_policy_id)  # type: ignore[attr-defined]
    rows = await SlaEvent.filter(ticket_id=ticket.id).order_by("id")
    return {
        "policy": policy.name if policy else None,
        "paused": ticket.sla_paused_at is not None,
        "breached": ticket.sla_breached,
        "clocks": {c: {"due": (ticket.sla_state or {}).get(c, {}).get("due"),
                       "warn_at": (ticket.sla_state or {}).get(c, {}).get("warn_at"),
                       "done": (ticket.sla_state or {}).get(c, {}).get("done", [])}
                   for c in CLOCKS if c in (ticket.sla_state or {})},
        "events": [{"clock": e.clock, "kind": e.kind, "due_at": e.due_at.isoformat(),
                    "at": e.at.isoformat()} for e in rows],
    }


async def breach_report(*, since: datetime, until: datetime, group_ids: list[int] | None = None) -> dict[str, Any]:
    """Breaches per group and clock in a period (None: every group)."""
    query = SlaEvent.filter(kind="breach", at__gte=since, at__lt=until)
    if group_ids is not None:
        query = query.filter(group_id__in=group_ids)
    rows = await query.values_list("group_id", "clock", "ticket_id")
    by: dict[tuple[Any, str], set[int]] = {}
    for group_id, clock, ticket_id in rows:
        by.setdefault((group_id, str(clock)), set()).add(int(ticket_id))
    names = dict(await SkillGroup.all().values_list("id", "name"))
    return {"items": [{"group_id": g, "group": names.get(g), "clock": c, "breaches": len(t)}
                      for (g, c), t in sorted(by.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))]}
