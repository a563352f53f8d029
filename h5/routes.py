"""The H5 routes ``app.main`` mounts: staff pages under ``/h5/``, customer pages under ``/h5/my/``, and ``/static``.

Staff ticket page (the link WeCom cards open): ``/h5/tickets/{number}``. Customer ticket page (the link template
messages open): ``/h5/my/tickets/{number}``. Approval page (the link approval cards open): ``/h5/approvals/{id}``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from h5 import auth, customer_pages, merge_pages, staff_pages, ticket_live
from h5.console import routes as console_routes
from h5.web import STATIC_DIR

__all__ = ["routes", "staff_ticket_path"]


def staff_ticket_path(number: str) -> str:
    """Path of the staff ticket page (WeCom cards link to it, through the OAuth login when needed)."""
    return f"/h5/tickets/{number}"


_h5: list[BaseRoute] = [
    Route("/", staff_pages.home, methods=["GET"]),
    Route("/login", auth.staff_login, methods=["GET"]),
    Route("/dev-login", auth.staff_dev_login, methods=["POST"]),
    Route("/auth/wecom", auth.wecom_start, methods=["GET"]),
    Route("/auth/wecom/callback", auth.wecom_callback, methods=["GET"]),
    Route("/logout", auth.logout, methods=["POST"]),
    Route("/tickets", staff_pages.my_tickets, methods=["GET"]),
    Route("/queue", staff_pages.queue, methods=["GET"]),
    Route("/search", staff_pages.search, methods=["GET", "POST"]),
    Route("/new", staff_pages.new_ticket, methods=["GET", "POST"]),
    Route("/sidebar", staff_pages.sidebar, methods=["GET", "POST"]),
    Route("/sidebar/create", staff_pages.sidebar_create, methods=["POST"]),
    Route("/approvals", staff_pages.approvals, methods=["GET"]),
    Route("/approvals/{approval_id:int}", staff_pages.approval_page, methods=["GET"]),
    Route("/approvals/{approval_id:int}", staff_pages.approval_decide, methods=["POST"]),
    Route("/jssdk", staff_pages.jssdk_config, methods=["GET"]),
    Route("/media/{message_id:int}/{index:int}", staff_pages.media, methods=["GET"]),
    Route("/tickets/{number}", staff_pages.ticket_page, methods=["GET"]),
    Route("/tickets/{number}", staff_pages.ticket_act, methods=["POST"]),
    Route("/tickets/{number}/claim", staff_pages.claim, methods=["POST"]),
    Route("/tickets/{number}/approval", staff_pages.request_approval, methods=["POST"]),
    Route("/tickets/{number}/reveal", staff_pages.reveal, methods=["POST"]),
    Route("/tickets/{number}/resend/{outbox_id:int}", staff_pages.resend, methods=["POST"]),
    Route("/tickets/{number}/assist", staff_pages.assist_decide, methods=["POST"]),
    Route("/tickets/{number}/bot-verdict", staff_pages.bot_verdict, methods=["POST"]),
    Route("/merges", merge_pages.suggestions, methods=["GET"]),
    Route("/merges", merge_pages.merge, methods=["POST"]),
    Route("/merges/{merge_id:int}", merge_pages.merge_page, methods=["GET"]),
    Route("/merges/{merge_id:int}/undo", merge_pages.undo, methods=["POST"]),
    WebSocketRoute("/tickets/{number}/live", ticket_live.ticket_live),
    # customers (WeChat)
    Route("/my/", customer_pages.home, methods=["GET"]),
    Route("/my/login", auth.customer_login, methods=["GET"]),
    Route("/my/dev-login", auth.customer_dev_login, methods=["POST"]),
    Route("/my/auth", auth.mp_start, methods=["GET"]),
    Route("/my/auth/callback", auth.mp_callback, methods=["GET"]),
    Route("/my/tickets", customer_pages.my_tickets, methods=["GET"]),
    Route("/my/new", customer_pages.new_ticket, methods=["GET", "POST"]),
    Route("/my/media/{message_id:int}/{index:int}", customer_pages.media, methods=["GET"]),
    Route("/my/tickets/{number}", customer_pages.ticket_page, methods=["GET"]),
    Route("/my/tickets/{number}/message", customer_pages.add_message, methods=["POST"]),
    Route("/my/tickets/{number}/rate", customer_pages.rate, methods=["POST"]),
]

routes: list[BaseRoute] = [
    Mount("/h5", routes=_h5),
    Mount("/console", routes=console_routes.routes),  # the manager's console (h5/console/)
    Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
]
