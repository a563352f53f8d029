"""Satisfaction ratings: one current rating per ticket, whichever way the customer gave it.

The bot's chat survey (app.kb.bot) and the customer's H5 ticket page both call `record_rating`; a later rating
replaces the current one and the replaced one moves to the rating's history, so nothing a customer said is lost and
staff see one answer. The rating counts for the agent who had the ticket (the survey's agent, else the assignee);
an agent's figures (我的评分) are computed from current ratings only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tortoise.functions import Count, Sum

from app import events
from app.errors import NotFound, ValidationFailed
from app.security.pii import mask_text
from app.tickets.models import Ticket, TicketEvent, TicketRating
from app.timeutil import utcnow
from app.uow import atomic

SOURCES = ("bot_survey", "h5_page")
SOURCE_LABELS = {"bot_survey": "聊天评价", "h5_page": "网页评价"}
#: scores that count as satisfied (满意) in an agent's figures
SATISFIED = 4


@dataclass(frozen=True)
class RatingSummary:
    """An agent's figures: how many current ratings, their average, the share of 4 and 5."""

    count: int
    average: float | None
    satisfied_share: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the figures."""
        return {"count": self.count, "average": self.average, "satisfied_share": self.satisfied_share}


def _entry(rating: TicketRating) -> dict[str, Any]:
    return {"score": rating.score, "comment": rating.comment, "channel": rating.channel, "source": rating.source,
            "staff_id": rating.staff_id, "at": rating.at.isoformat()}  # type: ignore[attr-defined]


async def record_rating(*, ticket_id: int, score: int, comment: str = "", channel: str, source: str,
                        staff_id: int | None = None, ref: str = "") -> TicketRating:
    """Record a customer's 1-5 rating: it becomes the ticket's rating, an earlier one moves to the history."""
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise ValidationFailed("评分必须是 1 到 5 分。", code="invalid_score")
    if source not in SOURCES:
        raise ValidationFailed(f"未知的评价来源 {source}", code="invalid_source")
    comment = comment.strip()[:500]
    async with atomic():
        # the ticket row lock serialises two quick ratings of one ticket
        ticket = await Ticket.filter(id=ticket_id).select_for_update().first()
        if ticket is None:
            raise NotFound("ticket not found")
        credited = staff_id if staff_id is not None else ticket.assignee_id  # type: ignore[attr-defined]
        current = await TicketRating.get_or_none(ticket_id=ticket_id)
        now = utcnow()
        replaced: int | None = None
        if current is None:
            rating = await TicketRating.create(ticket_id=ticket_id, score=score, comment=comment, channel=channel,
                                               source=source, staff_id=credited, ref=ref[:64], at=now)
        elif ref and current.ref == ref:
            # the same rating told in two steps (the survey's score, then its comment): no new entry
            same_score = current.score == score
            current.score, current.comment = score, comment or current.comment
            await current.save(update_fields=["score", "comment"])
            if same_score:
                return current
            rating = current
        else:
            replaced = current.score
            current.history = [*(current.history or []), _entry(current)]
            current.score, current.comment, current.channel, current.source = score, comment, channel, source
            current.staff_id, current.ref, current.at = credited, ref[:64], now  # type: ignore[attr-defined]
            await current.save()
            rating = current
        await TicketEvent.create(ticket_id=ticket_id, kind="rated", actor_kind="customer", new=str(score),
                                 reason=comment, data={"score": score, "comment": comment, "channel": channel,
                                                       "source": source, "replaced": replaced})
        await events.emit(events.CSAT_SUBMITTED, ticket_id=ticket_id, rating=rating, replaced=replaced)
    return rating


async def current_rating(*, ticket_id: int) -> TicketRating | None:
    """The ticket's current rating, or None when the customer has not rated it."""
    return await TicketRating.get_or_none(ticket_id=ticket_id)


async def scores_for(*, ticket_ids: Iterable[int]) -> dict[int, int]:
    """Ticket id -> current score, for a page of tickets in one query (unrated tickets are left out)."""
    ids = list(ticket_ids)
    if not ids:
        return {}
    pairs = await TicketRating.filter(ticket_id__in=ids).values_list("ticket_id", "score")
    return {int(t): int(s) for t, s in pairs}


async def staff_summary(*, staff_id: int) -> RatingSummary:
    """我的评分: an agent's current ratings - count, average score and the share of 4-5."""
    # Sum, not Avg: tortoise casts an aggregate to the column's type, and the scores are integers
    rows = await TicketRating.filter(staff_id=staff_id).annotate(n=Count("id"), total=Sum("score")).group_by(
        "staff_id").values("n", "total")
    count = int(rows[0]["n"]) if rows else 0
    if not count:
        return RatingSummary(count=0, average=None, satisfied_share=None)
    happy = await TicketRating.filter(staff_id=staff_id, score__gte=SATISFIED).count()
    return RatingSummary(count=count, average=round(int(rows[0]["total"]) / count, 2),
                         satisfied_share=round(happy / count, 4))


def as_dict(rating: TicketRating) -> dict[str, Any]:
    """A rating for staff (API detail, H5): comments shown with personal data masked."""

    def shown(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "comment": mask_text(entry.get("comment") or ""),
                "source_label": SOURCE_LABELS.get(str(entry.get("source")), "其他")}

    return {**shown(_entry(rating)), "history": [shown(h) for h in rating.history or []]}
