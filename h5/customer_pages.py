"""Customer pages inside WeChat (我的工单 from the Official Account menu): the customer's own tickets with their
progress (受理 → 处理中 → 已解决), the replies, adding a message with photos, a new ticket, and rating a resolved one.

A customer is the holder of the ``mp_openid`` identity the Official Account's web authorisation returned
(网页授权 https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html). Every
ticket query is filtered by that customer (a ticket of anyone else is "not found"), and internal notes and staff-side
changes are never shown.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from app import intake
from app.channels.models import ChannelAccount
from app.conversations.models import Message
from app.customers import service as customers
from app.customers.models import Customer
from app.errors import DomainError, NotFound, ValidationFailed
from app.security import consent
from app.security.pii import render_tokens
from app.security.scope import customer_actor
from app.tickets import ratings
from app.tickets import service as tickets
from app.tickets.models import Ticket
from h5 import views
from h5.staff_pages import _media_response
from h5.web import Ctx, customer_page, redirect, render

MAX_TEXT = 2000
NOTICES = {"sent": "留言已发送，客服会尽快回复。", "rated": "感谢您的评价！", "created": "工单已提交，我们会尽快处理。"}


async def _customer(ctx: Ctx, *, create: bool = False) -> Customer | None:
    """The customer holding this session's openid (created on first need when ``create``)."""
    kind, scope, value = "mp_openid", ctx.session.account, ctx.session.openid
    if create:
        return await customers.resolve_identity(kind=kind, scope=scope, value=value)
    return await customers.find_by_identity(kind=kind, scope=scope, value=value)


async def _own_ticket(ctx: Ctx, number: str) -> tuple[Customer, Ticket]:
    customer = await _customer(ctx)
    if customer is None:
        raise NotFound("ticket not found")
    ticket = await tickets.get_by_number(actor=customer_actor(), number=number)
    if ticket.customer_id != customer.id:  # type: ignore[attr-defined]
        raise NotFound("ticket not found")
    return customer, ticket


def _page(request: Request, ctx: Ctx, template: str, *, status: int = 200, **context: Any) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, ctx, template, status=status, notice=notice, steps=views.CUSTOMER_STEPS, **context)


@customer_page
async def home(request: Request, ctx: Ctx) -> Response:
    """The customer entry."""
    return redirect("/h5/my/tickets")


@customer_page
async def my_tickets(request: Request, ctx: Ctx) -> Response:
    """我的工单: this customer's tickets, newest activity first."""
    customer = await _customer(ctx)
    items: list[Ticket] = []
    if customer is not None:
        items = (await tickets.list_tickets(actor=customer_actor(), customer_id=customer.id, limit=50)).items
    rows = [{"number": t.number, "subject": render_tokens(t.subject), "step": views.customer_step(t.status),
             "label": views.CUSTOMER_STEPS[views.customer_step(t.status)] if t.status != "closed" else "已关闭",
             "at": t.last_activity_at} for t in items]
    return _page(request, ctx, "customer/list.html", title="我的工单", rows=rows)


async def _detail(ctx: Ctx, customer: Customer, ticket: Ticket) -> dict[str, Any]:
    actor = customer_actor()
    messages = await tickets.list_messages(actor=actor, ticket_id=ticket.id, limit=500)
    timeline = await views.timeline(ticket, messages, [], actor=actor, media_prefix="/h5/my/media",
                                    customer_view=True)
    rating = await ratings.current_rating(ticket_id=ticket.id)
    return {"ticket": ticket, "subject": render_tokens(ticket.subject), "step": views.customer_step(ticket.status),
            "timeline": timeline, "consent_text": consent.CONSENT_TEXT,
            "closed": ticket.status in ("closed", "merged"),
            "can_rate": ticket.status in ("resolved", "closed"),
            "rating": {"score": rating.score, "comment": rating.comment} if rating else None}


@customer_page
async def ticket_page(request: Request, ctx: Ctx) -> Response:
    """One ticket: progress, the conversation, add a message, rate when resolved."""
    customer, ticket = await _own_ticket(ctx, request.path_params["number"])
    return _page(request, ctx, "customer/ticket.html", title="工单详情", **await _detail(ctx, customer, ticket))


def _photos(ctx: Ctx) -> list[UploadFile]:
    if ctx.form is None:
        return []
    return [f for f in ctx.form.getlist("photos") if isinstance(f, UploadFile)]


def _consent_for(ctx: Ctx, *, phone: str = "") -> list[str]:
    """What this submission collects that needs the customer's consent; refused (422) without the ticked box."""
    wanted = (["phone"] if phone else []) + (["photos"] if any(f.filename for f in _photos(ctx)) else [])
    return consent.require(purposes=wanted, agreed=ctx.field("consent") == "1")


@customer_page
async def add_message(request: Request, ctx: Ctx) -> Response:
    """Add a message (and photos) to one of my tickets."""
    customer, ticket = await _own_ticket(ctx, request.path_params["number"])
    text = ctx.field("text")[:MAX_TEXT]
    error = None
    try:
        if ticket.status in ("closed", "merged"):
            raise ValidationFailed("工单已关闭，如有新问题请提交新工单。")
        purposes = _consent_for(ctx)
        media = await views.save_photos(_photos(ctx), ctx.settings.media_dir)
        if not text and not media:
            raise ValidationFailed("请填写留言内容或添加图片。")
        await intake.add_to_ticket(ticket=ticket, customer=customer, text=text, media=media, via="h5")
        await consent.record(customer_id=customer.id, purposes=purposes)
    except DomainError as exc:
        error = exc.message
    if error is None:
        return redirect(f"/h5/my/tickets/{ticket.number}?notice=sent")
    return _page(request, ctx, "customer/ticket.html", status=422, title="工单详情", error=error, draft=text,
                 **await _detail(ctx, customer, ticket))


@customer_page
async def rate(request: Request, ctx: Ctx) -> Response:
    """Rate a resolved ticket 1–5 with a comment; rating again replaces the earlier rating (chat or page)."""
    customer, ticket = await _own_ticket(ctx, request.path_params["number"])
    score_raw, comment = ctx.field("score"), ctx.field("comment")[:500]
    error = None
    if ticket.status not in ("resolved", "closed"):
        error = "工单解决后才能评价。"
    elif not score_raw.isdigit() or not 1 <= int(score_raw) <= 5:
        error = "请选择 1 到 5 星。"
    else:
        await ratings.record_rating(ticket_id=ticket.id, score=int(score_raw), comment=comment, channel="h5",
                                    source="h5_page")
    if error is None:
        return redirect(f"/h5/my/tickets/{ticket.number}?notice=rated")
    return _page(request, ctx, "customer/ticket.html", status=422, title="工单详情", error=error,
                 **await _detail(ctx, customer, ticket))


@customer_page
async def new_ticket(request: Request, ctx: Ctx) -> Response:
    """Submit a new ticket with a few fields and photos."""
    form = {k: ctx.field(k) for k in ("subject", "description", "order_no", "phone")}
    error = None
    if request.method == "POST":
        try:
            if not form["description"]:
                raise ValidationFailed("请描述您遇到的问题。")
            purposes = _consent_for(ctx, phone=form["phone"])
            media = await views.save_photos(_photos(ctx), ctx.settings.media_dir)
            ticket = await _create(ctx, form, media)
            await consent.record(customer_id=ticket.customer_id, purposes=purposes)  # type: ignore[attr-defined]
            return redirect(f"/h5/my/tickets/{ticket.number}?notice=created")
        except DomainError as exc:
            error = exc.message
    return _page(request, ctx, "customer/new.html", status=422 if error else 200, title="提交工单", form=form,
                 error=error, consent_text=consent.CONSENT_TEXT, consent_checked=ctx.field("consent") == "1")


async def _create(ctx: Ctx, form: dict[str, str], media: list[dict[str, Any]]) -> Ticket:
    customer = await _customer(ctx, create=True)
    assert customer is not None
    account = await ChannelAccount.get_or_none(key=ctx.session.account)
    return await intake.customer_ticket(
        customer=customer, account=account, subject=form["subject"], description=form["description"],
        order_no=form["order_no"][:64] or None, phone=form["phone"] or None, media=media)


@customer_page
async def media(request: Request, ctx: Ctx) -> Response:
    """A photo on one of my tickets (never a note's attachment)."""
    message = await Message.get_or_none(id=int(request.path_params["message_id"]))
    if message is None or message.ticket_id is None or message.direction == "internal":  # type: ignore[attr-defined]
        raise NotFound("no such media")
    ticket = await Ticket.get(id=message.ticket_id)  # type: ignore[attr-defined]
    await _own_ticket(ctx, ticket.number)
    return _media_response(ctx, message, int(request.path_params["index"]))
