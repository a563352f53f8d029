"""A small hand-made dataset of facts, the answers of every figure worked out by hand in test_figures.py.

Period under test: Mon 2026-11-09 .. Sun 2026-11-15 (local); the previous period: 2026-11-02 .. 2026-11-08.

T1  Tue 11-10 10:00  wechat_mp  G1/A1  frt 600/600 (b/w)   resolved 11-10  res 3600/3600   csat 5 (11-10)
    keyword        sla met/met          handling 3000, replies 2
T2  Tue 11-10 14:00  wecom_kf   G1/A1  frt 1200/4000       resolved 11-11  res 7200/90000  csat 3 (11-12)
    bot:angry      sla breached/met     1 escalation, reopened once, handling 80000, replies 1
T3  Thu 11-12 09:00  wechat_mp  G2/A2  frt 300/300         open
    staff          sla met/running      replies 1
T4  Sat 11-14 20:00  email      G2/—   no response         open
    every_message  no SLA
T5  Sun 11-15 11:00  wechat_mp  G1/A1  frt 60/60           resolved 11-15  res 600/600     not rated
    keyword        sla met/met          handling 500, replies 1
P1  Tue 11-03 10:00  wechat_mp  G1/A1  frt 1800/1800       resolved 11-04  res 3600/3600   csat 2 (11-04)
    api            sla breached/met
P2  Thu 11-05 10:00  wechat_mp  G1/A1  frt 900/900         open
    keyword        sla met/running

Conversations: C1 11-10 wechat_mp, the bot answered, no ticket; C2 11-10 wecom_kf, the bot handed off (angry) -> T2;
C3 11-11 wechat_mp -> T1 (keyword); C4 11-13 wechat_mp, no ticket, no bot; C5 11-03 wechat_mp, the bot answered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.reports import facts
from app.reports.models import ReportConversationFact, ReportTicketFact
from app.timeutil import CHINA, utcnow

START, END = date(2026, 11, 9), date(2026, 11, 15)


def at(day: str, clock: str) -> datetime:
    """A local wall time in Shanghai, as the UTC instant the database stores."""
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=CHINA).astimezone(UTC)


def _fact(tid: int, created: datetime, *, channel: str = "wechat_mp", group: int | None, agent: int | None,
          frt: tuple[int, int] | None = None, resolved: datetime | None = None, res: tuple[int, int] | None = None,
          csat: int | None = None, rated: datetime | None = None, reason: str = "keyword",
          sla: tuple[str | None, str | None] = (None, None), escalations: int = 0, reopened: int = 0,
          handling: int | None = None, replies: int = 0) -> ReportTicketFact:
    local = created.astimezone(CHINA)
    return ReportTicketFact(
        ticket_id=tid, number=f"GD-{tid}", channel=channel, group_id=group, agent_id=agent, policy_id=None,
        status="resolved" if resolved else "open", is_open=resolved is None, created_at=created,
        created_day=local.date(), created_hour=local.hour, created_weekday=local.isoweekday(),
        frt_business=frt[0] if frt else None, frt_wall=frt[1] if frt else None,
        first_response_at=created + timedelta(seconds=frt[1]) if frt else None,
        resolved_at=resolved, resolved_day=facts.local_day(resolved) if resolved else None,
        resolution_business=res[0] if res else None, resolution_wall=res[1] if res else None,
        handling_wall=handling, reopened=reopened, frt_business_b=facts.bucket(frt[0] if frt else None),
        frt_wall_b=facts.bucket(frt[1] if frt else None), resolution_business_b=facts.bucket(res[0] if res else None),
        resolution_wall_b=facts.bucket(res[1] if res else None), handling_wall_b=facts.bucket(handling),
        sla_first=sla[0], sla_resolution=sla[1],
        breached="breached" in sla, escalations=escalations, csat=csat, rated_at=rated,
        rated_day=facts.local_day(rated) if rated else None, reason=reason, reason_group=facts.reason_group(reason),
        handoff=reason[4:] if reason.startswith("bot:") else None, replies=replies, customer_messages=1,
        computed_at=utcnow())


async def load(*, g1: int, g2: int, a1: int, a2: int, policy_id: int | None = None) -> dict[str, int]:
    """Insert the facts above (and four conversations), then build the daily sums from them."""
    rows = [
        _fact(1, at("2026-11-10", "10:00"), group=g1, agent=a1, frt=(600, 600), resolved=at("2026-11-10", "11:00"),
              res=(3600, 3600), csat=5, rated=at("2026-11-10", "12:00"), sla=("met", "met"), handling=3000,
              replies=2),
        _fact(2, at("2026-11-10", "14:00"), channel="wecom_kf", group=g1, agent=a1, frt=(1200, 4000),
              resolved=at("2026-11-11", "15:00"), res=(7200, 90000), csat=3, rated=at("2026-11-12", "09:00"),
              reason="bot:angry", sla=("breached", "met"), escalations=1, reopened=1, handling=80000, replies=1),
        _fact(3, at("2026-11-12", "09:00"), group=g2, agent=a2, frt=(300, 300), reason="staff",
              sla=("met", "running"), replies=1),
        _fact(4, at("2026-11-14", "20:00"), channel="email", group=g2, agent=None, reason="every_message"),
        _fact(5, at("2026-11-15", "11:00"), group=g1, agent=a1, frt=(60, 60), resolved=at("2026-11-15", "11:10"),
              res=(600, 600), sla=("met", "met"), handling=500, replies=1),
        _fact(6, at("2026-11-03", "10:00"), group=g1, agent=a1, frt=(1800, 1800), resolved=at("2026-11-04", "10:00"),
              res=(3600, 3600), csat=2, rated=at("2026-11-04", "11:00"), reason="api", sla=("breached", "met")),
        _fact(7, at("2026-11-05", "10:00"), group=g1, agent=a1, frt=(900, 900), sla=("met", "running")),
    ]
    if policy_id is not None:
        for r in rows:
            r.policy_id = policy_id
    await ReportTicketFact.bulk_create(rows)
    convs: list[dict[str, Any]] = [
        {"conversation_id": 1, "channel": "wechat_mp", "day": date(2026, 11, 10), "bot_messages": 2,
         "bot_resolved": True},
        {"conversation_id": 2, "channel": "wecom_kf", "day": date(2026, 11, 10), "bot_messages": 1, "ticket_id": 2,
         "ticket_number": "GD-2",
         "reason": "bot:angry", "reason_group": "handoff", "handoff": "angry", "group_id": g1, "agent_id": a1},
        {"conversation_id": 3, "channel": "wechat_mp", "day": date(2026, 11, 11), "ticket_id": 1,
         "ticket_number": "GD-1",
         "reason": "keyword", "reason_group": "keyword", "group_id": g1, "agent_id": a1},
        {"conversation_id": 4, "channel": "wechat_mp", "day": date(2026, 11, 13)},
        {"conversation_id": 5, "channel": "wechat_mp", "day": date(2026, 11, 3), "bot_messages": 1,
         "bot_resolved": True},
    ]
    await ReportConversationFact.bulk_create([ReportConversationFact(
        started_at=at(c["day"].isoformat(), "10:00"),
        computed_at=utcnow(), **c) for c in convs])
    await facts.recompute_days(date(2026, 11, 1), date(2026, 11, 30))
    return {"T1": 1, "T2": 2, "T3": 3, "T4": 4, "T5": 5, "P1": 6, "P2": 7}
