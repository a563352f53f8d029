"""Fallback approvers: who takes over when the org chart has nobody to ask or to tell.

``APPROVAL_FALLBACK`` names them by WeCom userid, unless an admin set them on the console's 审批设置 page (the
source ``app.setup`` registers: this package may not import ``approvals``); when empty every active admin is one.
Approval chains (``approvals.service``) fill the levels an amount needs but the org chart cannot reach with them,
and an SLA escalation step with nobody above (``sla``) goes to them; either way a ``TicketEvent`` with a Chinese
reason puts it on the ticket's timeline, so nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.logs import get_logger
from app.settings import get_settings
from app.staff.models import Staff
from app.tickets.models import Ticket, TicketEvent

log = get_logger(__name__)

_source: Callable[[], Awaitable[tuple[str, ...]]] | None = None


def register_fallback_source(source: Callable[[], Awaitable[tuple[str, ...]]] | None) -> None:
    """Where the fallback approvers' userids come from (None: the APPROVAL_FALLBACK setting)."""
    global _source
    _source = source


async def fallback_approvers(*, exclude: set[int] | None = None) -> list[Staff]:
    """The configured fallback approvers (every active admin by default), in setting order, minus ``exclude``."""
    userids = await _source() if _source is not None else get_settings().workflow.approval_fallback
    if userids:
        found = {s.userid: s for s in await Staff.filter(userid__in=list(userids), status="active")}
        people = [found[u] for u in userids if u in found]
    else:
        people = list(await Staff.filter(role="admin", status="active").order_by("id"))
    return [p for p in people if p.id not in (exclude or set())]


def names(people: list[Staff]) -> str:
    """People's names as one Chinese list."""
    return "、".join(p.name or p.userid for p in people)


async def escalate_to_fallback(*, ticket: Ticket, title: str, body: str, key: str) -> list[Staff]:
    """An SLA escalation step found nobody above: card the fallback approvers and say so on the ticket."""
    from app.notifications import staff as staff_cards  # notifications import tickets: import late

    people = await fallback_approvers()
    for person in people:
        await staff_cards.ticket_card(staff=person, ticket=ticket, title=title, description=body,
                                      dedupe_key=f"{key}:fallback:{person.id}")
    if people:
        reason = f"{title}：组织架构中没有可通知的上级，已转给兜底审批人{names(people)}"
    else:
        reason = (f"{title}：组织架构中没有可通知的上级，也没有可用的兜底审批人，"
                  "请管理员在控制台「审批设置」中设置兜底审批人")
    await TicketEvent.create(ticket_id=ticket.id, kind="escalation_fallback", actor_kind="system",
                             new=",".join(p.userid for p in people) or None, reason=reason[:500],
                             data={"key": key, "notified": [p.userid for p in people]})
    log.warning("sla.escalated_to_fallback", ticket_id=ticket.id, key=key, notified=len(people))
    return people
