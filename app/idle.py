"""CPU-heavy background work on one thread at the lowest CPU priority the kernel offers.

A ticket's sentence vector costs about 27 ms of CPU (the bundled e5 model), twenty times what creating the ticket
costs; a job that embedded a minute's new tickets at normal priority took a core from the callbacks, the intake and
the agents' pages for seconds. On Linux the thread is ``SCHED_IDLE``: it runs only on CPU time no other thread of
the machine wants, so it still keeps up on a quiet desk and waits during a burst. The policy is per thread on Linux,
so the process's other threads (the event loop, the API clients' threads) keep theirs. Where ``SCHED_IDLE`` does
not exist the thread runs at normal priority.

Callers ask ``busy()`` before they hand over more: a run that finds the thread still on an earlier batch (the
machine was busy) leaves its work to a later run instead of queueing behind it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from app.logs import get_logger

log = get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_state: dict[str, ThreadPoolExecutor | None] = {"executor": None}
_pending = [0]


def _lower_priority() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux: the thread keeps the normal priority
        log.info("idle.priority_unchanged", error=type(exc).__name__)


def _executor() -> ThreadPoolExecutor:
    with _lock:
        executor = _state["executor"]
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idle", initializer=_lower_priority)
            _state["executor"] = executor
        return executor


def busy() -> bool:
    """Whether the idle thread has work handed to it that it has not finished."""
    return _pending[0] > 0


async def run(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` on the idle-priority thread; its result or its exception."""
    future = _executor().submit(func, *args, **kwargs)
    with _lock:
        _pending[0] += 1
    # done when it ran or was cancelled before it began: a cancelled caller leaves a started call to finish on
    # its thread, and busy() says so until it has
    future.add_done_callback(_finished)
    return await asyncio.wrap_future(future)


def _finished(_: Future[Any]) -> None:
    with _lock:
        _pending[0] -= 1
