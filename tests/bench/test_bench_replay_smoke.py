"""The replay-guard benchmark's code path on small sizes, so `python -m bench.replay` cannot rot."""

from __future__ import annotations

import re

import pytest

from bench import replay


def test_the_replay_bench_prints_a_line_per_size_beside_the_bare_insert(capsys: pytest.CaptureFixture[str]) -> None:
    replay.main(["--sizes", "10,200", "--calls", "50", "--repeat", "1"])
    lines = capsys.readouterr().out.splitlines()
    pattern = r"\s*(\d+) remembered: first_seen\s+[\d.]+ µs per call, bare dict insert\s+[\d.]+ µs"
    assert [re.fullmatch(pattern, line).group(1) for line in lines] == ["10", "200"]  # type: ignore[union-attr]


async def test_the_guard_stays_at_the_window_size_while_the_bench_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.wecom import replay as guard_module

    made: list[guard_module.MemoryReplayGuard] = []
    original = guard_module.MemoryReplayGuard

    def keep(**kwargs: object) -> guard_module.MemoryReplayGuard:
        made.append(original(**kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(guard_module, "MemoryReplayGuard", keep)
    await replay._guard_us(100, 60)
    assert len(made[0]._expiry) == 100  # each call expired one old key: a steady stream, not a growing store
