"""Every WeCom API route: each module of ``simulator.wecom`` that defines ``routes`` is mounted.

A helper adding an API (kf, approvals) drops a module next to these with ``routes = [wecom_route(...), ...]``; no
list to edit. Modules are mounted in name order, and a path mounted twice is an error (it would shadow silently).
"""

from __future__ import annotations

import importlib
import pkgutil

from starlette.routing import BaseRoute, Route

import simulator.wecom as package

__all__ = ["wecom_routes"]

#: modules of simulator.wecom that are not route modules
_SKIP = {"api", "driver", "errors", "orggen", "routes", "store"}


def wecom_routes() -> list[BaseRoute]:
    """Collect ``routes`` from every module of the package."""
    out: list[BaseRoute] = []
    seen: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for route in getattr(module, "routes", []):
            if isinstance(route, Route):
                for method in sorted(route.methods or ()):
                    key = f"{method} {route.path}"
                    if key in seen:
                        raise RuntimeError(f"{key} is mounted by both {seen[key]} and {info.name}")
                    seen[key] = info.name
            out.append(route)
    return out
