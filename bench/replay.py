"""The embedded replay guard's cost per callback as the window fills, beside a bare dict insert.

    python -m bench.replay                      # 1,000 / 20,000 / 100,000 remembered callbacks
    python -m bench.replay --sizes 300000

Without ``REDIS_URL`` every verified callback passes ``MemoryReplayGuard.first_seen`` (app/wecom/replay.py), which
remembers its signed triple for the callback window (300 s by default): at a steady N callbacks a second it holds
300·N keys. For each size the guard is filled with that many live keys and then timed on fresh keys under a clock
that moves on, so each call also expires one old key, as in a steady stream; the bare baseline is one dict
assignment of the same keys. Prints µs per call (best of --repeat runs).
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def _guard_us(size: int, calls: int) -> float:
    from app.wecom.replay import MemoryReplayGuard

    now = [0.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    for i in range(size):
        now[0] = i / size  # the window's keys remembered over its first second
        await guard.first_seen(f"old{i}", 1)
    started = time.perf_counter()
    for i in range(calls):
        now[0] = 1 + i / size  # one old key expires per call: the store stays at `size`
        await guard.first_seen(f"new{i}", 1)
    return (time.perf_counter() - started) / calls * 1e6


def _bare_us(size: int, calls: int) -> float:
    store = {f"old{i}": float(i) for i in range(size)}
    started = time.perf_counter()
    for i in range(calls):
        store[f"new{i}"] = 1.0 + i
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.replay", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--sizes", default="1000,20000,100000", help="remembered callbacks, comma-separated")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    for size in (int(s) for s in a.sizes.split(",")):
        guard = min(asyncio.run(_guard_us(size, a.calls)) for _ in range(a.repeat))
        bare = min(_bare_us(size, a.calls) for _ in range(a.repeat))
        print(f"{size:>8} remembered: first_seen {guard:8.2f} µs per call, bare dict insert {bare:6.2f} µs")


if __name__ == "__main__":
    main()
