"""Background CPU work runs on one thread that the kernel schedules only on CPU time nothing else wants."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from app import idle

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _where() -> tuple[int, int]:
    return threading.get_ident(), os.sched_getscheduler(0)


async def test_a_call_runs_on_another_thread_at_idle_priority_and_the_caller_keeps_its_own() -> None:
    ident, policy = await idle.run(_where)
    assert policy == os.SCHED_IDLE
    assert ident != threading.get_ident()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    # one thread serves every call
    assert (await idle.run(_where))[0] == ident


async def test_an_exception_reaches_the_caller_and_leaves_the_thread_free() -> None:
    def fail(text: str) -> None:
        raise ValueError(text)

    with pytest.raises(ValueError, match="坏了"):
        await idle.run(fail, "坏了")
    assert not idle.busy()


async def test_busy_while_a_call_runs_even_after_its_caller_gave_up() -> None:
    release = threading.Event()
    started = threading.Event()

    def hold() -> str:
        started.set()
        release.wait(30)
        return "done"

    task = asyncio.create_task(idle.run(hold))
    await asyncio.to_thread(started.wait, 30)
    assert idle.busy()
    # a call queued behind it and then cancelled never runs, and busy() does not count it afterwards
    queued = asyncio.create_task(idle.run(_where))
    await asyncio.sleep(0)
    queued.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert idle.busy()
    release.set()
    # the next call runs once the held one has finished (one thread), and then nothing is pending
    assert (await idle.run(_where))[1] == os.SCHED_IDLE
    assert not idle.busy()
