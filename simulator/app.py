"""The simulator as one ASGI app: MP API routes at ``/cgi-bin/``, inspection API and chat page at ``/_sim/``.

WeCom (``qyapi``) routes will mount beside the MP ones; both platforms share the state, faults and clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from simulator.admin import admin_routes
from simulator.chat import chat_routes
from simulator.kfchat import kf_chat_routes
from simulator.mp.routes import mp_routes
from simulator.oauth import oauth_routes
from simulator.shop import shop_routes
from simulator.sms import sms_routes
from simulator.state import SimulatorState
from simulator.wecom.routes import wecom_routes
from simulator.wwlogin import wwlogin_routes

__all__ = ["create_simulator_app"]


def create_simulator_app(state: SimulatorState | None = None) -> Starlette:
    """Build the ASGI app; ``app.state.sim`` is the ``SimulatorState`` (a new one if none is given)."""
    sim = state or SimulatorState()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # Scheduled callbacks (TEMPLATESENDJOBFINISH) belong to this server's loop; do not leave them dangling.
        tasks = list(sim.background_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    routes: list[BaseRoute] = [*mp_routes(), *wecom_routes(), *oauth_routes(), *wwlogin_routes(), *admin_routes(),
                               *chat_routes(), *kf_chat_routes(), *sms_routes(), *shop_routes()]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return app
