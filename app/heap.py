"""How a long-running process's garbage collector spends its time: start-up objects frozen out of it, and the young
generation collected less often than CPython's default.

A web process holds about 200,000 objects once the app is built (modules, routes, models, settings). CPython's full
collection walks all of them, about 25-40 ms on this machine kind, and every request in flight waits for it: the
callback p99 at c=64 carried those pauses (issue 15). ``gc.freeze`` moves what is alive at the end of start-up to
the permanent generation, so later collections walk only what requests and jobs made. Start-up objects live as long
as the process anyway; a cycle among them that became garbage before the freeze is collected first.

CPython collects the young generation every 700 net allocations of container objects, and every tenth of those
collections walks the middle generation too. A job that holds many objects for a while (the WeCom sync keeps up to
30 pages of parsed JSON, about 30,000 dicts and lists, between the read-ahead and the writes) has them walked again
at each of those collections. In the first external-contact sync of 200,000 contacts (``python -m bench.sync --db
mysql``, timed with ``gc.callbacks``) the collector took 4.8 s of 21 s of CPU as CPython leaves it, 2.1 s with
start-up frozen (5,633 young, 512 middle and 47 full collections) and 0.85 s with ``YOUNG_OBJECTS`` as well (220, 20
and 2). The price is a longer pause per young collection, which walks what is still alive of the last 10,000
allocations: 3.2 ms on average in that sync, where most of it is alive; a web process's requests leave little alive
(callbacks at c=64 while the workers process: p99 19.7 and 24.0 ms, against 22.8 ms before). Memory held by
unreachable cycles waits at most that many allocations longer.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["YOUNG_OBJECTS", "paused", "settle"]

#: net container allocations between two young collections (CPython's default: 700)
YOUNG_OBJECTS = 10_000


def settle() -> int:
    """Collect once, freeze every object alive now out of later collections, and collect the young generation every
    ``YOUNG_OBJECTS`` allocations; how many objects are frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, old)
    return gc.get_freeze_count()


#: holders of ``paused`` now, and whether the collector was on when the first of them came
_pause = {"holders": 0, "was_enabled": False}


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection while a bulk job applies one batch: what it allocates is alive until the batch ends
    (its rows, their literals, the pages read ahead), and each collection walked it all for nothing. In the first
    external-contact sync the young collections found nothing to free and took 1.4 s of 23 s of CPU (221 of them,
    6.4 ms each: a list of 1,000 rows is walked whole). Holders nest and overlap (two syncs in one worker): the
    collector comes back as it was when the last one leaves, and a collection is then due by the usual count."""
    if _pause["holders"] == 0:
        _pause["was_enabled"] = gc.isenabled()
        gc.disable()
    _pause["holders"] += 1
    try:
        yield
    finally:
        _pause["holders"] -= 1
        if _pause["holders"] == 0 and _pause["was_enabled"]:
            gc.enable()
