"""Cards to staff in WeCom: a ticket assigned to them, a new customer message on their ticket, an SLA warning, an
approval waiting for them. Writes only outbox rows (channel ``wecom_app``, kind ``staff_card``), inside the cause's
transaction; ``app.channels.wecom_app.outbound`` delivers them with ``message/send``.

Cards follow 模板卡片消息 https://developer.work.weixin.qq.com/document/path/101032 (``text_notice``, whose
``card_action`` is required) and 文本卡片 https://developer.work.weixin.qq.com/document/path/90236 (``textcard``,
title ≤128 bytes, description ≤512 bytes, btntxt ≤4 characters). Every card opens the ticket's H5 page through
WeCom OAuth (``/h5/auth/wecom?next=/h5/tickets/<number>``), so one tap logs the member in and shows the ticket;
an approval card opens the approval instead (``/h5/approvals/<id>``), where the approver decides.

Who is told: only staff who may see the ticket — its assignee, or when nobody is assigned the active members of its
skill group — and never the person who caused the change. A dedupe key per cause keeps one row per recipient
however often the cause is replayed.

Cards pass through WeCom's servers and sit on phones' lock screens: every text in them (subject, message, summary)
is masked with ``app.security.pii.mask_text``, whatever the recipient's role; the full number is one audited
显示 away on the H5 page.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from app.db import dialect_sql
from app.outbox import service as outbox
from app.security.pii import mask_text
from app.settings import get_settings
from app.staff.models import Staff
from app.tickets.models import Ticket
from app.tickets.service import PRIORITY_LABELS
from app.timeutil import utcnow
from app.ttl import ExpiringMap

__all__ = [
    "approval_url",
    "approval_waiting",
    "calendar_notice_missing",
    "card_url",
    "customer_message",
    "sla_warning",
    "ticket_assigned",
    "ticket_card",
    "webhook_disabled",
]

CHANNEL = "wecom_app"
KIND = "staff_card"


def card_url(ticket: Ticket) -> str:
    """The H5 page of a ticket behind WeCom OAuth (one tap opens it, logged in)."""
    target = f"/h5/tickets/{ticket.number}"
    return f"{get_settings().public_url}/h5/auth/wecom?next={quote(target, safe='')}"


def approval_url(approval_id: int) -> str:
    """The H5 page of an approval behind WeCom OAuth: the approver lands on the decision, not on the ticket."""
    target = f"/h5/approvals/{approval_id}"
    return f"{get_settings().public_url}/h5/auth/wecom?next={quote(target, safe='')}"


def _clip(text: str, limit: int) -> str:
    """Mask personal data, then cut to ``limit`` UTF-8 bytes on a character boundary (WeCom counts bytes)."""
    text = mask_text(text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _text_notice(ticket: Ticket, *, title: str, desc: str, rows: list[tuple[str, str]],
                 emphasis: tuple[str, str] | None = None, url: str | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "card_type": "text_notice",
        "source": {"desc": "工单", "desc_color": 0},
        "main_title": {"title": _clip(title, 36 * 3), "desc": _clip(desc, 44 * 3)},
        "horizontal_content_list": [{"keyname": k, "value": _clip(v, 90)} for k, v in rows if v],
        "card_action": {"type": 1, "url": url or card_url(ticket)},
    }
    if emphasis is not None:
        card["emphasis_content"] = {"title": emphasis[0], "desc": emphasis[1]}
    return card


def _rows(ticket: Ticket) -> list[tuple[str, str]]:
    return [("工单号", ticket.number), ("优先级", PRIORITY_LABELS.get(ticket.priority, ticket.priority))]


class _Recipient(NamedTuple):
    """Who a card goes to: all a card needs of a staff member."""

    id: int
    userid: str


#: the recipients' read, made for every customer message on a ticket: SQL written once (`app.db.dialect_sql`),
#: two columns, as tortoise's query building and a whole staff row cost more CPU than the round trip
_ASSIGNEE = "SELECT {q}id{q},{q}userid{q} FROM {q}staff{q} WHERE {q}id{q}={m} AND {q}status{q}='active'"
_GROUP = ("SELECT s.{q}id{q},s.{q}userid{q} FROM {q}staff{q} s JOIN {q}skill_group_member{q} g ON "
          "g.{q}staff_id{q}=s.{q}id{q} WHERE g.{q}skill_group_id{q}={m} AND s.{q}status{q}='active' "
          "ORDER BY s.{q}id{q}")


async def _recipients(ticket: Ticket, *, exclude: int | None) -> list[_Recipient]:
    """The assignee, or the group's active members when nobody is assigned; never ``exclude``."""
    assignee_id: int | None = ticket.assignee_id  # type: ignore[attr-defined]
    if assignee_id is not None:
        template, key = _ASSIGNEE, assignee_id
    else:
        group_id: int | None = ticket.group_id  # type: ignore[attr-defined]
        if group_id is None:
            return []
        template, key = _GROUP, group_id
    conn: Any = Staff._meta.db
    rows = await conn.execute_query_dict(dialect_sql(template, conn.capabilities.dialect), [key])
    return [_Recipient(int(r["id"]), str(r["userid"])) for r in rows if r["id"] != exclude]


async def _card(*, userid: str, ticket: Ticket, payload: dict[str, Any], dedupe_key: str) -> None:
    await outbox.create(channel=CHANNEL, kind=KIND, recipient=userid, payload=payload, ticket_id=ticket.id,
                        dedupe_key=dedupe_key)


async def ticket_assigned(*, ticket: Ticket, actor_staff_id: int | None = None) -> None:
    """Tell the new assignee (unless they took it themselves)."""
    assignee_id: int | None = ticket.assignee_id  # type: ignore[attr-defined]
    if assignee_id is None or assignee_id == actor_staff_id:
        return
    people = await _recipients(ticket, exclude=None)  # the active assignee
    if not people:
        return
    staff = people[0]
    rows = _rows(ticket)
    # a bot hand-off's description is the conversation's extractive summary (app.assist.text): worth a glance
    summary = (ticket.description or "").strip().replace("\n", " ")
    if summary and summary != ticket.subject.strip():
        rows.append(("摘要", summary))
    card = _text_notice(ticket, title="新工单分配给你", desc=ticket.subject, rows=rows)
    await _card(userid=staff.userid, ticket=ticket, payload={"msgtype": "template_card", "template_card": card},
                dedupe_key=f"card:assigned:{ticket.id}:{assignee_id}:{ticket.version}")


#: a chatty customer's messages on one ticket reach each person as at most one card per window: nine lines in a
#: minute are one buzz on the agent's phone, and the card waiting to go out carries the newest line
MESSAGE_CARD_WINDOW_S = 60


#: (ticket, assignee, group, window) -> who that window's cards go to, read at the window's first message: a
#: burst's customer writes every few seconds, and each message re-read the same people. A person who joins the group
#: or leaves it mid-window is seen from the next window (within a minute)
_window_people: ExpiringMap[tuple[int, int | None, int | None, int], list[_Recipient]] = ExpiringMap(
    MESSAGE_CARD_WINDOW_S)


def invalidate() -> None:
    """Forget whom this process's card windows go to (tests: each has its own database)."""
    _window_people.clear()


async def customer_message(*, ticket: Ticket, text: str) -> None:
    """A new customer message on a ticket: a text card with it to the people working it, one per window."""
    window = int(utcnow().timestamp()) // MESSAGE_CARD_WINDOW_S
    memo = (ticket.id, ticket.assignee_id, ticket.group_id, window)  # type: ignore[attr-defined]
    people = _window_people.get(memo)
    if people is None:
        people = _window_people.put(memo, await _recipients(ticket, exclude=None))
    if not people:
        return
    body = _clip(f"<div class=\"gray\">{ticket.subject}</div><div class=\"normal\">{text}</div>", 512)
    card = {"title": _clip(f"客户新消息 · {ticket.number}", 128), "description": body, "url": card_url(ticket),
            "btntxt": "查看"}
    more = {**card, "title": _clip(f"客户连续发来多条消息 · {ticket.number}", 128)}
    for staff in people:
        await outbox.create_or_fold(channel=CHANNEL, kind=KIND, recipient=staff.userid,
                                    payload={"msgtype": "textcard", "textcard": card},
                                    folded={"msgtype": "textcard", "textcard": more}, ticket_id=ticket.id,
                                    dedupe_key=f"card:message:{ticket.id}:{staff.id}:{window}")


async def sla_warning(*, ticket: Ticket, clock: str, due_label: str) -> None:
    """An SLA clock is about to run out (``clock``: 首次响应 / 下次响应 / 解决; ``due_label``: when, local time)."""
    for staff in await _recipients(ticket, exclude=None):
        card = _text_notice(ticket, title="工单即将超时", desc=ticket.subject, rows=_rows(ticket),
                            emphasis=(due_label, f"{clock}截止"))
        await _card(userid=staff.userid, ticket=ticket, payload={"msgtype": "template_card", "template_card": card},
                    dedupe_key=f"card:sla:{ticket.id}:{clock}:{due_label}:{staff.id}")


async def ticket_card(*, staff: Staff, ticket: Ticket, title: str, description: str, dedupe_key: str,
                      btntxt: str = "查看") -> None:
    """Any other card about a ticket (an SLA escalation step, an approval decided) to one staff member."""
    card = {"title": _clip(title, 128), "description": _clip(description, 512), "url": card_url(ticket),
            "btntxt": btntxt[:4]}
    await _card(userid=staff.userid, ticket=ticket, payload={"msgtype": "textcard", "textcard": card},
                dedupe_key=dedupe_key[:191])


async def approval_waiting(*, ticket: Ticket, approver: Staff, approval_id: int, summary: str, level: int = 1) -> None:
    """An approval waits for ``approver`` at ``level``: the card opens the approval's H5 page."""
    card = _text_notice(ticket, title="有一个审批等你处理", desc=summary, rows=_rows(ticket),
                        url=approval_url(approval_id))
    await _card(userid=approver.userid, ticket=ticket, payload={"msgtype": "template_card", "template_card": card},
                dedupe_key=f"card:approval:{approval_id}:{level}:{approver.id}")


async def calendar_notice_missing(*, staff: Staff, year: int, message: str, day: date) -> None:
    """Remind an admin that a year's State Council holiday notice is not imported (one card per admin per day)."""
    target = "/h5/tickets"
    card = {"title": _clip(f"请导入 {year} 年节假日安排", 128), "description": _clip(message, 512),
            "url": f"{get_settings().public_url}/h5/auth/wecom?next={quote(target, safe='')}", "btntxt": "查看"}
    await outbox.create(channel=CHANNEL, kind=KIND, recipient=staff.userid,
                        payload={"msgtype": "textcard", "textcard": card},
                        dedupe_key=f"card:calendar_notice:{year}:{day.isoformat()}:{staff.id}")


async def webhook_disabled(*, staff: Staff, subscription_id: int, url: str, reason: str) -> None:
    """Tell a webhook subscription's owner it was switched off after a run of failed deliveries (one card each time
    it is switched off)."""
    host = urlsplit(url).netloc or url
    target = "/h5/tickets"
    card = {"title": _clip("事件推送订阅已停用", 128),
            "description": _clip(f"订阅 #{subscription_id}（{host}）{reason}。"
                                 "请检查接收方后在管理接口中重新启用。", 512),
            "url": f"{get_settings().public_url}/h5/auth/wecom?next={quote(target, safe='')}", "btntxt": "查看"}
    await outbox.create(channel=CHANNEL, kind=KIND, recipient=staff.userid,
                        payload={"msgtype": "textcard", "textcard": card},
                        dedupe_key=f"card:webhook_disabled:{subscription_id}:{int(utcnow().timestamp())}:{staff.id}")
