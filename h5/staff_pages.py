"""Staff pages of the WeCom workbench: my tickets, queue (claim), search, the ticket page (timeline, reply, note,
changes with the version check, audited reveal), new ticket, the chat sidebar, approvals, JS-SDK config, media.

Every read and write goes through the ticket and customer services with the staff member's actor, so the department
scope applies exactly as in the API. JS-SDK: https://developer.work.weixin.qq.com/document/path/96909 (wx.config /
wx.agentConfig), 获取当前外部联系人userid https://developer.work.weixin.qq.com/document/path/96261.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from tortoise.exceptions import OperationalError
from tortoise.expressions import Q

from app import intake
from app.conversations.config import load_rules
from app.conversations.extract import extract
from app.conversations.models import Message
from app.customers import service as customers
from app.customers.models import Customer, CustomerIdentity
from app.errors import DomainError, InvalidTransition, NotFound, ValidationFailed, VersionConflict
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.security import service as security
from app.security.crypto import normalize_phone
from app.security.pii import mask_phone
from app.staff.models import SkillGroup, Staff
from app.tickets import closing, holiday_notice, ratings, states
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.tickets.service import PRIORITIES, PRIORITY_LABELS
from app.tickets.states import LIVE, STATUS_LABELS, TRANSITIONS, Status
from h5 import jssdk, platform, views
from h5.web import Ctx, redirect, render, staff_page

LIVE_STATUSES = [s.value for s in LIVE]
NOTICES = {
    "replied": "回复已提交，正在发送给客户。",
    "noted": "内部备注已保存。",
    "saved": "工单已更新。",
    "claimed": "已领取，工单已进入“我的工单”。",
    "claim_conflict": "这张工单刚被别人领取或修改了，请刷新后再看。",
    "created": "工单已创建。",
    "decided": "审批意见已提交。",
    "approval_requested": "审批申请已提交，等待审批。",
    "approval_applied": "该申请无需审批，已直接生效。",
    "resent": "已重新发送。",
    "resend_done": "这条消息的发送结果已确定，无需重发。",
    "assist_accepted": "已采纳建议。",
    "assist_dismissed": "已记录，谢谢反馈。",
    "assist_failed": "工单刚被他人修改，建议没有采纳，请刷新后再试。",
    "bot_verdict": "已记录机器人回答的对错，用于校准机器人。",
}
NAV = [("/h5/tickets", "我的工单"), ("/h5/queue", "队列"), ("/h5/search", "搜索"), ("/h5/new", "新建"),
       ("/h5/approvals", "审批")]


def _actor(ctx: Ctx) -> Any:
    assert ctx.actor is not None and ctx.staff is not None
    return ctx.actor


def _page(request: Request, ctx: Ctx, template: str, *, status: int = 200, **context: Any) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, ctx, template, status=status, nav=NAV, path=request.url.path, notice=notice, **context)


@staff_page
async def home(request: Request, ctx: Ctx) -> Response:
    """The workbench entry: my tickets."""
    return redirect("/h5/tickets")


@staff_page
async def my_tickets(request: Request, ctx: Ctx) -> Response:
    """我的工单: my live tickets, newest activity first, with priority, customer, channel and SLA."""
    actor = _actor(ctx)
    page = await tickets.list_tickets(actor=actor, assignee_id=actor.staff_id, status=LIVE_STATUSES,
                                      cursor=request.query_params.get("cursor") or None, limit=100)
    assert actor.staff_id is not None
    summary = await ratings.staff_summary(staff_id=actor.staff_id)
    return _page(request, ctx, "staff/list.html", title="我的工单", rows=await views.rows(page.items, actor=actor),
                 next_cursor=page.next_cursor, empty="没有待处理的工单，休息一下吧。", claim=False,
                 my_rating=views.rating_summary(summary), calendar_warning=await _calendar_warning(actor))


async def _calendar_warning(actor: Any) -> str | None:
    """For admins: the missing State Council holiday notice, if any (this year's, or next year's from 1 November)."""
    if not actor.is_admin:
        return None
    missing = await holiday_notice.missing_notice()
    return missing.message if missing else None


@staff_page
async def queue(request: Request, ctx: Ctx) -> Response:
    """队列: unassigned live tickets of my groups, each with one-tap 领取."""
    actor = _actor(ctx)
    page = await tickets.list_tickets(actor=actor, unassigned=True, status=LIVE_STATUSES,
                                      cursor=request.query_params.get("cursor") or None, limit=100)
    return _page(request, ctx, "staff/list.html", title="队列", rows=await views.rows(page.items, actor=actor),
                 next_cursor=page.next_cursor, empty="队列是空的。", claim=True)


@staff_page
async def claim(request: Request, ctx: Ctx) -> Response:
    """领取: assign an unassigned ticket to me, if nobody changed it since the list was shown."""
    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    try:
        version = int(ctx.field("version") or 0)
        if ticket.assignee_id is not None:  # type: ignore[attr-defined]
            raise VersionConflict("已被领取", details={})
        await tickets.update(actor=actor, ticket_id=ticket.id, expected_version=version,
                             changes={"assignee_id": actor.staff_id})
    except (VersionConflict, ValueError):
        return redirect("/h5/queue?notice=claim_conflict")
    return redirect(f"/h5/tickets/{ticket.number}?notice=claimed")


@staff_page
async def search(request: Request, ctx: Ctx) -> Response:
    """Search by ticket number, order number, subject or customer (name, phone, email, identity); a POST, so what
    was typed (often a phone number) never lands in a URL or a log."""
    actor = _actor(ctx)
    q = ctx.field("q")[:64]
    found: list[Ticket] = []
    if q:
        page = await tickets.list_tickets(actor=actor, text=q, limit=50)
        found = list(page.items)
        seen = {t.id for t in found}
        for customer in await customers.search(actor=actor, q=q, limit=5):
            more = await tickets.list_tickets(actor=actor, customer_id=customer.id, limit=20)
            found.extend(t for t in more.items if t.id not in seen)
            seen.update(t.id for t in more.items)
        found.sort(key=lambda t: (t.last_activity_at, t.id), reverse=True)
    return _page(request, ctx, "staff/search.html", title="搜索", q=q, searched=bool(q),
                 rows=await views.rows(found, actor=actor))


async def _assignees(ticket: Ticket, me: Staff) -> list[tuple[int, str]]:
    """Who the ticket can go to: members of its group, the group's lead, me, and whoever has it now."""
    ids: set[int] = {me.id}
    if ticket.assignee_id:  # type: ignore[attr-defined]
        ids.add(ticket.assignee_id)  # type: ignore[attr-defined]
    if ticket.group_id:  # type: ignore[attr-defined]
        group = await SkillGroup.get_or_none(id=ticket.group_id)  # type: ignore[attr-defined]
        if group is not None:
            ids.update(await group.members.all().values_list("id", flat=True))  # type: ignore[arg-type]
            if group.lead_id:  # type: ignore[attr-defined]
                ids.add(group.lead_id)  # type: ignore[attr-defined]
    people = await Staff.filter(Q(id__in=list(ids)), Q(status="active") | Q(id=ticket.assignee_id)).order_by("id")  # type: ignore[attr-defined]
    return [(p.id, p.name + ("（我）" if p.id == me.id else "")) for p in people]


async def _quick_replies(ticket: Ticket) -> list[dict[str, str]]:
    """Knowledge-base answers matching this ticket (app.kb), as one-tap quick replies."""
    try:
        from app.kb import service as kb
    except ImportError:  # the knowledge base is optional
        return []
    try:
        found = await kb.search(query=f"{ticket.subject} {ticket.description}"[:500], k=5)
    except DomainError:
        return []
    return [{"title": r.article.title, "answer": r.article.body} for r in found if r.article.body]


async def _canned_replies(ctx: Ctx, ticket: Ticket, customer: Customer) -> list[dict[str, str]]:
    """The agent's groups' and shared canned replies (app.replies), placeholders filled for this ticket."""
    from app.replies import service as replies

    assert ctx.staff is not None
    values = {"客户称呼": customer.name or "客户", "工单号": ticket.number, "客服姓名": ctx.staff.name}
    rows = await replies.list_for_reply_box(actor=_actor(ctx), ticket_group_id=ticket.group_id)  # type: ignore[attr-defined]
    return [{"title": r.title, "category": r.category, "shortcut": r.shortcut,
             "text": replies.fill_placeholders(body=r.body, values=values)} for r in rows]


async def _live_chat(ticket: Ticket) -> dict[str, Any] | None:
    """A web chat ticket's live link (typing and read state both ways) and its read marks, else None."""
    from app.channels.webchat import live

    chat = await live.chat_of(ticket=ticket)
    if chat is None:
        return None
    return {"url": f"/h5/tickets/{ticket.number}/live", **await live.chat_read_state(chat=chat)}


#: how the bot's earlier decisions read on the ticket page
BOT_OUTCOMES = {"answered": "机器人直接回答", "menu": "机器人推荐的第一个选项"}


async def _assist(ctx: Ctx, ticket: Ticket) -> dict[str, Any] | None:
    """智能助手: suggestions with their reasons (app.assist) and the bot's earlier answers to confirm."""
    try:
        return await _assist_card(ctx, ticket)
    except (DomainError, OperationalError):  # e.g. assistance's tables not migrated yet: the page still works
        return None


async def _assist_card(ctx: Ctx, ticket: Ticket) -> dict[str, Any] | None:
    from app.assist import service as assist
    from app.kb.models import Article, BotQuery

    found = await assist.suggestions(actor=_actor(ctx), ticket_id=ticket.id)
    choices = []
    for kind, labels in (("category", {}), ("priority", PRIORITY_LABELS)):
        s = found.get(kind)
        if s:
            choices.append({**s, "kind_label": assist.KIND_LABELS[kind],
                            "current_label": labels.get(s["current"], s["current"])})
    # the customer's questions the bot answered (or offered first) before this ticket: the agent's verdict is
    # the calibration's best label
    since = ticket.created_at - timedelta(days=1)
    queries = await BotQuery.filter(customer_id=ticket.customer_id, outcome__in=list(BOT_OUTCOMES),  # type: ignore[attr-defined]
                                    best_article_id__isnull=False, created_at__gte=since,
                                    created_at__lte=ticket.created_at + timedelta(minutes=1)).order_by("-id").limit(5)
    titles = dict(await Article.filter(id__in=[q.best_article_id for q in queries]).values_list("id", "title"))
    bot = [{"id": q.id, "text": q.text, "article_title": titles.get(q.best_article_id, ""), "verdict": q.verdict,
            "outcome_label": BOT_OUTCOMES[q.outcome]} for q in queries]
    if not (choices or found["similar"] or found["summary"] or found["emotion"] or bot):
        return None
    return {"vector_ready": found["vector_ready"], "choices": choices, "similar": found["similar"],
            "summary": found["summary"], "emotion": found["emotion"], "bot": bot}


async def _ticket_context(ctx: Ctx, ticket: Ticket, *, draft: dict[str, str] | None = None) -> dict[str, Any]:
    actor = _actor(ctx)
    messages = await tickets.list_messages(actor=actor, ticket_id=ticket.id, limit=500)
    events = await tickets.list_events(actor=actor, ticket_id=ticket.id)
    customer = await Customer.get(id=ticket.customer_id)  # type: ignore[attr-defined]
    notice, direct = await views.channel_notice(ticket)
    assert ctx.staff is not None
    draft = draft or {}
    phone = await security.ticket_contact(ticket=ticket, field="phone")
    return {
        "ticket": ticket,
        "row": (await views.rows([ticket], actor=actor))[0],
        "customer": customer,
        "phone_masked": mask_phone(phone) if phone else None,
        "timeline": await views.timeline(ticket, messages, events, actor=actor, media_prefix="/h5/media"),
        "channel_notice": notice,
        "channel_direct": direct,
        "statuses": [(ticket.status, STATUS_LABELS[Status(ticket.status)])] + [
            (s.value, STATUS_LABELS[s]) for s in TRANSITIONS[Status(ticket.status)] if s != Status.MERGED],
        "priorities": [(p, PRIORITY_LABELS[p]) for p in PRIORITIES],
        "assignees": await _assignees(ticket, ctx.staff),
        "quick_replies": await _quick_replies(ticket),
        "canned_replies": await _canned_replies(ctx, ticket, customer),
        "assist": await _assist(ctx, ticket),
        "can_reveal": actor.can_reveal,
        "approval": await _approval_form(ticket),
        "rating": views.rating_view(await ratings.current_rating(ticket_id=ticket.id)),
        "live_chat": await _live_chat(ticket),
        "draft": {
            "text": draft.get("text", ""),
            "status": draft.get("status", ticket.status),
            "priority": draft.get("priority", ticket.priority),
            "assignee_id": draft.get("assignee_id", str(ticket.assignee_id or "")),  # type: ignore[attr-defined]
            "reason": draft.get("reason", ""),
        },
    }


@staff_page
async def ticket_page(request: Request, ctx: Ctx) -> Response:
    """The ticket: timeline of everything, reply / note / changes in one thumb-sized form."""
    ticket = await tickets.get_by_number(actor=_actor(ctx), number=request.path_params["number"])
    return _page(request, ctx, "staff/ticket.html", title=ticket.number, **await _ticket_context(ctx, ticket))


def _draft(ctx: Ctx) -> dict[str, str]:
    return {k: ctx.field(k) for k in ("text", "status", "priority", "assignee_id", "reason")}


@staff_page
async def ticket_act(request: Request, ctx: Ctx) -> Response:
    """Reply, note and/or change status, priority, assignee; a stale version gets the conflict message and the
    page comes back with everything the person typed."""
    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    draft = _draft(ctx)
    action, text = ctx.field("action"), draft["text"]
    changes: dict[str, Any] = {}
    if draft["priority"] and draft["priority"] != ctx.field("orig_priority"):
        changes["priority"] = draft["priority"]
    if draft["assignee_id"] != ctx.field("orig_assignee_id"):
        changes["assignee_id"] = int(draft["assignee_id"]) if draft["assignee_id"].isdigit() else None
    status = draft["status"] if draft["status"] and draft["status"] != ctx.field("orig_status") else None
    error: str | None = None
    conflict: dict[str, Any] | None = None
    try:
        version = int(ctx.field("version") or "0")
        if action in ("reply", "note") and not text:
            raise _Invalid("请先填写内容。")
        if not text and not changes and status is None:
            raise _Invalid("没有需要保存的修改。")
        if (changes or status) and ticket.version != version:
            raise states.conflict(ticket)
        warning = closing.close_warning(ticket=ticket, to=status) if status else None
        if warning is not None and ctx.field("confirm") != "1":
            # a close is applied only after the confirmation dialog: nothing of the form is saved before
            raise _Confirm(warning[1])
        if changes:
            ticket = await tickets.update(actor=actor, ticket_id=ticket.id, expected_version=version,
                                          changes={**changes, "reason": draft["reason"]})
        if action == "reply":
            await tickets.reply(actor=actor, ticket_id=ticket.id, text=text, status=status)
            notice = "replied"
        else:
            if action == "note":
                await tickets.add_note(actor=actor, ticket_id=ticket.id, text=text)
            if status:
                await tickets.update(actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                                     changes={"status": status, "reason": draft["reason"]})
            notice = "noted" if action == "note" else "saved"
    except VersionConflict as exc:
        conflict = dict(exc.details.get("current") or {})
    except _Confirm as exc:
        context = await _ticket_context(ctx, ticket, draft=draft)
        context["confirm"] = {"question": str(exc), "action": action or "save"}
        return _page(request, ctx, "staff/ticket.html", title=ticket.number, **context)
    except _Invalid as exc:
        error = str(exc)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        error = exc.message
    except ValueError:
        error = "提交的内容不完整，请刷新页面后重试。"
    else:
        return redirect(f"/h5/tickets/{ticket.number}?notice={notice}")
    fresh = await tickets.get(actor=actor, ticket_id=ticket.id)
    context = await _ticket_context(ctx, fresh, draft=draft)
    if conflict is not None:
        context["conflict"] = await _conflict_text(fresh)
    return _page(request, ctx, "staff/ticket.html", status=409 if conflict is not None else 422, title=fresh.number,
                 error=error, **context)


@staff_page
async def assist_decide(request: Request, ctx: Ctx) -> Response:
    """采纳 / 忽略 a suggestion of the 智能助手 card (accepting a category or priority changes the ticket)."""
    from app.assist import service as assist
    from app.assist.models import Suggestion

    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    decision = ctx.field("decision")
    raw = ctx.field("suggestion_id")
    row = await Suggestion.get_or_none(id=int(raw), ticket_id=ticket.id) if raw.isdigit() else None
    if row is None:
        raise NotFound("建议不存在")
    try:
        await assist.decide(actor=actor, suggestion_id=row.id, decision=decision)
    except (VersionConflict, ValidationFailed):
        return redirect(f"/h5/tickets/{ticket.number}?notice=assist_failed#assist")
    notice = "assist_accepted" if decision == "accepted" else "assist_dismissed"
    return redirect(f"/h5/tickets/{ticket.number}?notice={notice}#assist")


@staff_page
async def bot_verdict(request: Request, ctx: Ctx) -> Response:
    """答对了 / 答错了: an agent's verdict on the bot's earlier answer to this ticket's customer."""
    from app.kb import service as kb
    from app.kb.models import BotQuery

    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    raw = ctx.field("query_id")
    row = await BotQuery.get_or_none(id=int(raw), customer_id=ticket.customer_id) if raw.isdigit() else None  # type: ignore[attr-defined]
    if row is None:
        raise NotFound("没有这条机器人记录")
    try:
        await kb.set_verdict(actor=actor, query_id=row.id, verdict=ctx.field("verdict"))
    except ValidationFailed:
        return redirect(f"/h5/tickets/{ticket.number}#assist")
    return redirect(f"/h5/tickets/{ticket.number}?notice=bot_verdict#assist")


class _Invalid(Exception):
    """A form that cannot be saved as it is."""


class _Confirm(Exception):
    """A change that needs the confirmation dialog first (a close); carries the question."""


async def _conflict_text(ticket: Ticket) -> str:
    assignee = await Staff.get_or_none(id=ticket.assignee_id) if ticket.assignee_id else None  # type: ignore[attr-defined]
    who = assignee.name if assignee else "无"
    return (f"工单已被他人修改：现在是「{STATUS_LABELS[Status(ticket.status)]}」、优先级"
            f"「{PRIORITY_LABELS.get(ticket.priority, ticket.priority)}」、处理人「{who}」。"
            "你填写的内容已保留，请确认后再次提交。")


@staff_page
async def resend(request: Request, ctx: Ctx) -> Response:
    """重新发送: send a reply whose outcome is unknown once more (one tap, after checking with the customer)."""
    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    row = await OutboxMessage.get_or_none(id=request.path_params["outbox_id"], ticket_id=ticket.id)
    if row is None:
        raise NotFound("消息不存在")
    try:
        await outbox.resend(actor=actor, outbox_id=row.id)
    except InvalidTransition:
        return redirect(f"/h5/tickets/{ticket.number}?notice=resend_done")
    return redirect(f"/h5/tickets/{ticket.number}?notice=resent")


@staff_page
async def reveal(request: Request, ctx: Ctx) -> Response:
    """显示: show the unmasked phone number once, after recording who asked and why (every role)."""
    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    phone = await security.reveal(actor=actor, object_type="ticket", object_id=str(ticket.id), field="phone",
                                  reason=ctx.field("reason") or "联系客户处理工单",
                                  value=await security.ticket_contact(ticket=ticket, field="phone"))
    context = await _ticket_context(ctx, ticket)
    return _page(request, ctx, "staff/ticket.html", title=ticket.number, revealed_phone=phone, **context)


@staff_page
async def new_ticket(request: Request, ctx: Ctx) -> Response:
    """新建工单: customer, problem, order number, priority; the new ticket is mine."""
    actor = _actor(ctx)
    form = {k: ctx.field(k) for k in ("customer", "customer_id", "subject", "description", "order_no", "priority")}
    form["priority"] = form["priority"] or "normal"
    choices: list[Customer] = []
    error: str | None = None
    if request.method == "POST":
        try:
            customer = await _pick_customer(ctx, form)
            if isinstance(customer, list):
                choices, error = customer, "找到多位客户，请选择一位。"
            else:
                ticket = await intake.staff_ticket(
                    actor=actor, customer=customer, subject=form["subject"] or form["description"][:60],
                    description=form["description"], priority=form["priority"], order_no=form["order_no"] or None,
                    source="staff_h5")
                return redirect(f"/h5/tickets/{ticket.number}?notice=created")
        except DomainError as exc:
            error = exc.message
    return _page(request, ctx, "staff/new.html", status=422 if error else 200, title="新建工单", form=form,
                 choices=choices, error=error, priorities=[(p, PRIORITY_LABELS[p]) for p in PRIORITIES],
                 action="/h5/new", external_userid="")


async def _pick_customer(ctx: Ctx, form: dict[str, str]) -> Customer | list[Customer]:
    actor = _actor(ctx)
    if form["customer_id"].isdigit():
        return await customers.get(customer_id=int(form["customer_id"]), actor=actor)
    query = form["customer"]
    if not query:
        raise _invalid("请填写客户姓名或手机号")
    found = await customers.search(actor=actor, q=query, limit=5)
    if len(found) == 1:
        return found[0]
    if found:
        return found
    phone = query if normalize_phone(query) else None
    # a number staff type in is one they got from the customer: verified (it may suggest a customer merge)
    return await customers.create(name="" if phone else query, phone=phone, verified=phone is not None,
                                  staff_id=actor.staff_id)


def _invalid(message: str) -> DomainError:
    return ValidationFailed(message)


async def _contact_customer(external_userid: str) -> Customer | None:
    ident = await CustomerIdentity.filter(kind="external_userid", value=external_userid).order_by("id").first()
    if ident is None:
        return None
    return await customers.find_by_identity(kind="external_userid", value=external_userid, scope=ident.scope)


@staff_page
async def sidebar(request: Request, ctx: Ctx) -> Response:
    """聊天工具栏: the customer in the current chat, their tickets, and a pre-filled new-ticket form.

    Inside WeCom the page script asks ``getCurExternalContact`` for the contact's external_userid and posts it here
    (a POST: the id stays out of URLs and logs); in a plain browser the id can be typed (development)."""
    actor = _actor(ctx)
    external_userid = ctx.field("external_userid")[:64]
    context: dict[str, Any] = {"external_userid": external_userid, "customer": None, "rows": [], "history": [],
                               "form": {}, "priorities": [(p, PRIORITY_LABELS[p]) for p in PRIORITIES]}
    if external_userid:
        customer = await _contact_customer(external_userid)
        context["customer"] = customer
        prefill = ""
        if customer is not None:
            live = await tickets.list_tickets(actor=actor, customer_id=customer.id, status=LIVE_STATUSES, limit=20)
            done = await tickets.list_tickets(actor=actor, customer_id=customer.id,
                                              status=["resolved", "closed"], limit=10)
            context["rows"] = await views.rows(live.items, actor=actor)
            context["history"] = await views.rows(done.items, actor=actor)
            recent = await Message.filter(customer_id=customer.id, direction="in", ticket_id=None).order_by(
                "-id").limit(5)
            prefill = "\n".join(m.text for m in reversed(recent) if m.text)
        found = extract(prefill, load_rules()) if prefill else None
        context["form"] = {"subject": prefill.split("\n")[-1][:60] if prefill else "", "description": prefill,
                           "order_no": (found.order_no or "") if found else "", "priority": "normal",
                           "customer": "", "customer_id": ""}
    return _page(request, ctx, "staff/sidebar.html", title="聊天工具栏", **context)


@staff_page
async def sidebar_create(request: Request, ctx: Ctx) -> Response:
    """Create a ticket for the external contact of the current chat."""
    actor = _actor(ctx)
    external_userid = ctx.field("external_userid")[:64]
    if not external_userid:
        raise _invalid("没有识别到当前聊天的客户，请在客户聊天中打开。")
    customer = await _contact_customer(external_userid) or await customers.resolve_identity(
        kind="external_userid", value=external_userid)
    ticket = await intake.staff_ticket(
        actor=actor, customer=customer, subject=ctx.field("subject") or ctx.field("description")[:60],
        description=ctx.field("description"), priority=ctx.field("priority") or "normal",
        order_no=ctx.field("order_no") or None, source="sidebar")
    return redirect(f"/h5/tickets/{ticket.number}?notice=created")


@staff_page
async def approvals(request: Request, ctx: Ctx) -> Response:
    """审批: escalation approvals waiting for me (empty until the approvals package is installed)."""
    items: list[Any] = []
    service = _approvals()
    if service is not None and hasattr(service, "list_pending"):
        items = list(await service.list_pending(actor=_actor(ctx)))
    return _page(request, ctx, "staff/approvals.html", title="审批", items=items, installed=service is not None)


@staff_page
async def approval_decide(request: Request, ctx: Ctx) -> Response:
    """Approve or reject with a comment."""
    service = _approvals()
    if service is None or not hasattr(service, "decide"):
        raise NotFound("approvals are not installed")
    await service.decide(actor=_actor(ctx), approval_id=int(request.path_params["approval_id"]),
                         approve=ctx.field("decision") == "approve", comment=ctx.field("comment"))
    return redirect("/h5/approvals?notice=decided")


@staff_page
async def approval_page(request: Request, ctx: Ctx) -> Response:
    """One approval (the page an approval card opens): what is asked, the steps so far, my decision when it is my
    turn."""
    service = _approvals()
    if service is None or not hasattr(service, "view"):
        raise NotFound("approvals are not installed")
    item = await service.view(actor=_actor(ctx), approval_id=int(request.path_params["approval_id"]))
    return _page(request, ctx, "staff/approval.html", title="审批", a=item)


async def _approval_form(ticket: Ticket, *, form: dict[str, str] | None = None,
                         error: str | None = None) -> dict[str, Any]:
    """The 申请审批 form of the ticket page: kinds, transfer targets, what was typed and the error."""
    service = _approvals()
    if service is None or not hasattr(service, "KIND_LABELS"):
        return {"installed": False}
    query = SkillGroup.all().order_by("id")
    if ticket.group_id is not None:  # type: ignore[attr-defined]
        query = query.exclude(id=ticket.group_id)  # type: ignore[attr-defined]
    groups = [(int(i), str(n)) for i, n in await query.values_list("id", "name")]
    return {"installed": True, "kinds": list(service.KIND_LABELS.items()), "groups": groups, "error": error,
            "form": {k: (form or {}).get(k, "") for k in ("kind", "amount", "group_id", "reason")}}


@staff_page
async def request_approval(request: Request, ctx: Ctx) -> Response:
    """申请审批: ask for a transfer, urgent priority, refund or compensation through the approvals service; a bad
    form comes back with what was typed and the reason, and nothing is asked."""
    service = _approvals()
    if service is None or not hasattr(service, "request"):
        raise NotFound("approvals are not installed")
    actor = _actor(ctx)
    ticket = await tickets.get_by_number(actor=actor, number=request.path_params["number"])
    form = {k: ctx.field(k)[:500] for k in ("kind", "amount", "group_id", "reason")}
    try:
        if form["kind"] not in service.KIND_LABELS:
            raise _invalid("请选择审批类型")
        params: dict[str, Any] = {}
        if form["kind"] == "transfer":
            params["group_id"] = int(form["group_id"]) if form["group_id"].isdigit() else None
        elif form["kind"] in service.MONEY_KINDS:
            params["amount"] = form["amount"].strip()
        created = await service.request(actor=actor, ticket_id=ticket.id, kind=form["kind"], reason=form["reason"],
                                        params=params)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        context = await _ticket_context(ctx, ticket)
        context["approval"] = await _approval_form(ticket, form=form, error=exc.message)
        return _page(request, ctx, "staff/ticket.html", status=422, title=ticket.number, **context)
    notice = "approval_requested" if created is not None else "approval_applied"
    return redirect(f"/h5/tickets/{ticket.number}?notice={notice}")


def _approvals() -> Any:
    try:
        from approvals import service  # type: ignore[import-not-found]
    except ImportError:
        return None
    return service


@staff_page
async def jssdk_config(request: Request, ctx: Ctx) -> Response:
    """``wx.config`` and ``wx.agentConfig`` arguments for the page URL the script is on (our own pages only)."""
    url = request.query_params.get("url", "")
    if not url.startswith(ctx.settings.public_url + "/h5/"):
        return JSONResponse({"error": {"code": "bad_url", "message": "只能为本站页面签名"}}, status_code=400)
    corp_ticket, agent_ticket = await platform.jsapi_tickets(ctx.settings)
    wecom = ctx.settings.wecom
    return JSONResponse({
        "config": jssdk.wx_config(corp_id=wecom.corp_id, ticket=corp_ticket, url=url),
        "agentConfig": jssdk.agent_config(corp_id=wecom.corp_id, agent_id=wecom.agent_id, ticket=agent_ticket,
                                          url=url),
    })


@staff_page
async def media(request: Request, ctx: Ctx) -> Response:
    """A photo or file of a message on a ticket the staff member may see."""
    message = await Message.get_or_none(id=int(request.path_params["message_id"]))
    if message is None or message.ticket_id is None:  # type: ignore[attr-defined]
        raise NotFound("no such media")
    await tickets.get(actor=_actor(ctx), ticket_id=message.ticket_id)  # type: ignore[attr-defined]
    return _media_response(ctx, message, int(request.path_params["index"]))


def _media_response(ctx: Ctx, message: Message, index: int) -> Response:
    items = message.media or []
    found = views.media_file(ctx.settings.media_dir, items[index]) if 0 <= index < len(items) else None
    if found is None:
        raise NotFound("no such media")
    path, content_type = found
    return FileResponse(path, media_type=content_type, headers={"cache-control": "private, max-age=3600"})
