"""The console's routes, mounted at ``/console`` by ``h5.routes``.

To add pages: write them in your own module (``h5/console/<area>.py``) and add ONE line to ``routes`` below,
``*<area>.routes`` (your module's own ``routes: list[BaseRoute]``, paths relative to ``/console``), or single
``Route`` lines. Keep your own paths under your own prefix (``/reports/...``, ``/settings/...``, ``/repair/...``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from h5.console import (
    auth,
    dashboards,
    home,
    intelligence,
    repair,
    settings_approvals,
    settings_canned,
    settings_channels,
    settings_groups,
    settings_kb,
    settings_rules,
    settings_sla,
    settings_staff,
)
from h5.console import channels as channel_pages
from h5.console import tickets as console_tickets

__all__ = ["routes"]

routes: list[BaseRoute] = [
    Route("/", home.home, methods=["GET"]),
    Route("/login", auth.login, methods=["GET"]),
    Route("/dev-login", auth.dev_login, methods=["POST"]),
    Route("/auth/wecom", auth.qr_start, methods=["GET"]),
    Route("/auth/callback", auth.callback, methods=["GET"]),
    Route("/logout", auth.logout, methods=["POST"]),
    *settings_rules.routes,
    *settings_channels.routes,
    *settings_staff.routes,
    *settings_groups.routes,
    *settings_sla.routes,
    *settings_kb.routes,
    *settings_canned.routes,
    *settings_approvals.routes,
    *dashboards.routes,
    *console_tickets.routes,
    *repair.routes,
    *channel_pages.routes,
    *intelligence.routes,
]
